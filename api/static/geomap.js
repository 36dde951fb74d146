// @ts-check
// The geographic map (一张图) on Leaflet with marker clustering and a heat layer. The libraries are not part of the
// console: `sharpeye assets install` puts the pinned npm tarballs into the hub's data dir and the hub serves them
// under /assets/ (GET /api/assets says which are there). Positions are WGS-84 everywhere; when the site's tiles are
// GCJ-02 (AutoNavi/Gaode) every point is shifted for display (geo.js).
import { api } from "./api.js";
import { wgsToGcj } from "./geo.js";
import { lang, t } from "./i18n/index.js";

const LIBRARIES = ["leaflet", "leaflet.markercluster", "leaflet.heat"];
const SCRIPTS = [
  "/assets/leaflet/dist/leaflet.js",
  "/assets/leaflet.markercluster/dist/leaflet.markercluster.js",
  "/assets/leaflet.heat/dist/leaflet-heat.js",
];
const STYLES = [
  "/assets/leaflet/dist/leaflet.css",
  "/assets/leaflet.markercluster/dist/MarkerCluster.css",
  "/assets/leaflet.markercluster/dist/MarkerCluster.Default.css",
];

/**
 * @typedef {object} MapTiles
 * @property {string} url
 * @property {string} subdomains
 * @property {string} attribution
 * @property {number} min_zoom
 * @property {number} max_zoom
 * @property {boolean} gcj02
 */
/** @typedef {{ south: number, west: number, north: number, east: number }} GeoBounds */
/**
 * @typedef {object} MapSettings
 * @property {MapTiles | null} tiles
 * @property {{ lon: number, lat: number } | null} center
 * @property {number} zoom
 */
/** @typedef {[number, number]} LatLon  WGS-84 latitude, longitude */
/**
 * @typedef {object} Spot  one thing on the map
 * @property {string} id
 * @property {LatLon} at
 * @property {string} label  shown as the marker's title
 * @property {string} cls  CSS classes of the marker (kind, state, alarm)
 */
/** @typedef {"cameras" | "channels" | "sensors" | "cases" | "workers" | "patrols" | "tracks" | "heat" | "plan"} LayerName */

const LAYERS_KEY = "sharpeye.map.layers";
/** @type {LayerName[]} */
const DEFAULT_LAYERS = ["plan", "cameras", "channels", "sensors", "cases", "workers", "patrols", "tracks"];

/** @type {Promise<unknown> | null} */
let loading = null;

/** The layers to show: the browser's last choice, else all but the heat. @returns {Set<string>} */
function shownLayers() {
  try {
    const kept = JSON.parse(localStorage.getItem(LAYERS_KEY) || "null");
    if (Array.isArray(kept)) return new Set(kept.filter((n) => typeof n === "string"));
  } catch { /* a damaged entry: the defaults */ }
  return new Set(DEFAULT_LAYERS);
}

/** Whether the hub has the map's libraries (`sharpeye assets install`); the hint says how to install them.
 * @returns {Promise<{ ok: boolean, hint: string }>} */
export async function libraryState() {
  /** @type {{ packages: { name: string, installed: boolean }[], hint: string }} */
  const found = await api("/api/assets");
  const have = new Set(found.packages.filter((p) => p.installed).map((p) => p.name));
  return { ok: LIBRARIES.every((n) => have.has(n)), hint: found.hint };
}

/** @param {string} src */
function script(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src;
    el.onload = () => resolve(undefined);
    el.onerror = () => reject(new Error(`${src}: ${t("ui.map_lib_failed")}`));
    document.head.append(el);
  });
}

/** Load Leaflet and its plugins once (in order: the plugins extend the global L). @returns {Promise<any>} */
export function loadLeaflet() {
  loading ??= (async () => {
    for (const href of STYLES) {
      const link = document.createElement("link");
      link.rel = "stylesheet"; link.href = href;
      document.head.append(link);
    }
    for (const src of SCRIPTS) await script(src);
    return /** @type {any} */ (window).L;
  })().catch((err) => { loading = null; throw err; });
  return loading;
}

/**
 * A marker's icon: a small coloured glyph, its data attributes naming what it is and where it is drawn (in the
 * tiles' datum), which tests and clicks use.
 * @param {any} L @param {string} cls @param {string} attr @param {string} id @param {LatLon} [shown]
 */
function glyph(L, cls, attr, id, shown) {
  const el = document.createElement("span");
  el.className = "geo-glyph";
  el.setAttribute(`data-${attr}`, id);
  if (shown) el.dataset.shown = `${shown[0].toFixed(6)},${shown[1].toFixed(6)}`;
  return L.divIcon({ className: `geo-mark ${cls}`, html: el, iconSize: [16, 16], iconAnchor: [8, 8] });
}

export class GeoMap {
  /**
   * @param {any} L  Leaflet with markercluster and heat
   * @param {HTMLElement} box
   * @param {MapSettings} settings
   * @param {{ device: (id: string) => void, case: (id: string) => void }} on  clicks
   */
  constructor(L, box, settings, on) {
    this.L = L;
    this.on = on;
    this.settings = settings;
    this.gcj = Boolean(settings.tiles?.gcj02);
    this.lang = lang; // the layer names are drawn in it: a switch of language builds the map again
    const tiles = settings.tiles;
    this.map = L.map(box, { maxZoom: tiles?.max_zoom ?? 19, minZoom: tiles?.min_zoom ?? 1, zoomSnap: 1 });
    box.dataset.datum = this.gcj ? "gcj02" : "wgs84";
    /** @type {Record<string, any>} */
    const base = {};
    if (tiles) {
      base[t("ui.map_base")] = L.tileLayer(tiles.url, {
        subdomains: tiles.subdomains || "abc", attribution: tiles.attribution, maxZoom: tiles.max_zoom,
        minZoom: tiles.min_zoom,
      }).addTo(this.map);
    }
    const cluster = () => L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 50 });
    /** @type {Record<LayerName, any>} */
    this.layers = {
      plan: L.layerGroup(),
      cameras: cluster(),
      channels: cluster(),
      sensors: cluster(),
      cases: cluster(),
      heat: L.heatLayer([], { radius: 25, blur: 20, minOpacity: 0.35 }),
      workers: L.layerGroup(),
      patrols: L.layerGroup(),
      tracks: L.layerGroup(),
    };
    /** @type {Record<string, any>} */
    const overlays = {};
    const shown = shownLayers();
    for (const name of /** @type {LayerName[]} */ (Object.keys(this.layers))) {
      overlays[t(`ui.map_layer_${name}`)] = this.layers[name];
      if (shown.has(name)) this.layers[name].addTo(this.map);
    }
    L.control.layers(base, overlays, { collapsed: false }).addTo(this.map);
    // the operator's choice of layers is kept by the browser
    const remember = () => {
      const on = Object.entries(this.layers).filter(([, layer]) => this.map.hasLayer(layer)).map(([name]) => name);
      localStorage.setItem(LAYERS_KEY, JSON.stringify(on));
    };
    this.map.on("overlayadd overlayremove", remember);
    L.control.scale({ imperial: false }).addTo(this.map);
    /** @type {Map<string, any>} device id -> marker */
    this.deviceMarks = new Map();
    this.placed = false;
  }

  /** WGS-84 to what the tiles are drawn in. @param {LatLon} p @returns {LatLon} */
  show(p) { return this.gcj ? wgsToGcj(p[0], p[1]) : p; }

  /** Lay the site plan over the map on its bounds (the offline layer: no tiles needed).
   * @param {string} url @param {GeoBounds} b */
  setPlan(url, b) {
    this.layers.plan.clearLayers();
    const corners = [this.show([b.south, b.west]), this.show([b.north, b.east])];
    this.L.imageOverlay(url, corners, { opacity: 0.85, className: "geo-plan" }).addTo(this.layers.plan);
    this.planBounds = corners;
  }

  /** @param {"cameras" | "channels" | "sensors"} layer @param {Spot[]} spots */
  setDevices(layer, spots) {
    const L = this.L;
    const group = this.layers[layer];
    group.clearLayers();
    group.addLayers(spots.map((s) => {
      const at = this.show(s.at);
      const m = L.marker(at, { icon: glyph(L, s.cls, "device", s.id, at), title: s.label, alt: s.label });
      m.on("click", () => this.on.device(s.id));
      m.spot = s;
      m.shown = at;
      this.deviceMarks.set(s.id, m);
      return m;
    }));
  }

  /** Blink the devices of uncleared alarms. @param {Set<string>} hot */
  markAlarms(hot) {
    for (const [id, m] of this.deviceMarks) {
      /** @type {Spot} */
      const s = m.spot;
      const cls = s.cls.replace(/ ?alarm\b/g, "") + (hot.has(id) ? " alarm" : "");
      if (cls !== s.cls) { s.cls = cls; m.setIcon(glyph(this.L, cls, "device", id, m.shown)); }
    }
  }

  /** @param {Spot[]} spots */
  setCases(spots) {
    const L = this.L;
    this.layers.cases.clearLayers();
    this.layers.cases.addLayers(spots.map((s) => {
      const m = L.marker(this.show(s.at), { icon: glyph(L, s.cls, "case", s.id), title: s.label, alt: s.label });
      m.on("click", () => this.on.case(s.id));
      return m;
    }));
  }

  /** @param {LatLon[]} points */
  setHeat(points) { this.layers.heat.setLatLngs(points.map((p) => this.show(p))); }

  /** Grid workers' last positions. @param {Spot[]} spots */
  setWorkers(spots) {
    const L = this.L;
    this.layers.workers.clearLayers();
    for (const s of spots) {
      L.marker(this.show(s.at), { icon: glyph(L, s.cls, "worker", s.id), title: s.label, alt: s.label })
        .addTo(this.layers.workers);
    }
  }

  /** Lines: patrol tracks or GB/T 28181 MobilePosition tracks.
   * @param {"patrols" | "tracks"} layer @param {{ id: string, points: LatLon[], label: string }[]} lines */
  setLines(layer, lines) {
    const L = this.L;
    this.layers[layer].clearLayers();
    for (const line of lines) {
      if (line.points.length < 1) continue;
      L.polyline(line.points.map((p) => this.show(p)), { className: `geo-line geo-${layer}`, weight: 3 })
        .bindTooltip(line.label).addTo(this.layers[layer]);
    }
  }

  /** The first time there is something to show: the configured view, else the plan, else everything placed.
   * @param {LatLon[]} everything */
  place(everything) {
    if (this.placed) return;
    this.placed = true;
    const c = this.settings.center;
    if (c) this.map.setView(this.show([c.lat, c.lon]), this.settings.zoom);
    else if (this.planBounds) this.map.fitBounds(this.planBounds);
    else if (everything.length) this.map.fitBounds(everything.map((p) => this.show(p)), { maxZoom: 17, padding: [20, 20] });
    else this.map.setView([35, 105], 4); // China
  }

  /** The map's view, to keep across a rebuild. @returns {{ center: any, zoom: number }} */
  view() { return { center: this.map.getCenter(), zoom: this.map.getZoom() }; }

  /** @param {{ center: any, zoom: number }} view */
  restore(view) { this.placed = true; this.map.setView(view.center, view.zoom); }

  remove() { this.map.remove(); }

  /** After the map's box was hidden and shown again. */
  resize() { this.map.invalidateSize(); }
}
