// @ts-check
// 地图: the geographic map (一张图: cameras, GB/T 28181 channels, sensors, open cases, grid workers and their patrols,
// mobile devices' tracks, heat of cases, the site plan as an offline layer; geomap.js), or the site plan with every
// placed device as fractions of the drawing (when the site gives the plan no bounds, or the map's library is not
// installed). Devices are coloured by their health; devices in alarm blink. A click shows the device and its camera
// live, or the case.
import { api } from "../api.js";
import { GeoMap, libraryState, loadLeaflet } from "../geomap.js";
import { html, render } from "../html.js";
import { fmtTime, lang, t } from "../i18n/index.js";
import { open, register } from "../nav.js";
import { LivePlayer } from "../player.js";
import { ptzFor } from "../ptz.js";
import { deviceName, loadAlarms, loadDeviceHealth, loadSite, state } from "../state.js";
import { $, closest, control, report } from "../ui.js";

/** @typedef {import("../types.js").Case} Case */
/** @typedef {import("../types.js").DeviceSpot} DeviceSpot */
/** @typedef {import("../geomap.js").LatLon} LatLon */
/** @typedef {import("../geomap.js").Spot} Spot */

const CLOSED = new Set(["closed", "cancelled", "merged"]);
const MAX_CASES = 5000; // newest first, in pages of 500
const MAX_LINES = 50; // patrols and mobile devices drawn with their tracks
const REFRESH_MS = 30_000; // cases, workers and tracks are read again while the map is on screen

/** @type {LivePlayer | null} */
let player = null;
/** @type {import("../ptz.js").PtzPanel | null} */
let ptz = null;
/** @type {GeoMap | null} */
let geo = null;
/** @type {{ ok: boolean, hint: string } | null} */
let library = null;
/** @type {"geo" | "plan" | null} */
let mode = null;
/** @type {string | null} */
let planUrl = null;
/** @type {Map<string, Case>} */
let cases = new Map();
let drawing = false;

function closeLive() {
  if (player) { player.close(); player = null; }
  if (ptz) { ptz.close(); ptz = null; }
}

/** The plan drawing as a blob URL (it needs the session, so no plain <img src>). @returns {Promise<string | null>} */
async function planImage() {
  const plan = state.site?.plan;
  if (!plan) return null;
  if (!planUrl) {
    const res = await fetch(plan.url, { credentials: "same-origin" });
    if (res.ok) planUrl = URL.createObjectURL(await res.blob());
  }
  return planUrl;
}

/** Devices of uncleared alarms (and their cameras). */
function hotDevices() {
  /** @type {Set<string>} */
  const hot = new Set();
  for (const a of state.alarms.values()) {
    if (a.state.startsWith("cleared")) continue;
    hot.add(a.device_id); a.cameras.forEach((c) => hot.add(c));
  }
  return hot;
}

async function renderMap() {
  const [site] = await Promise.all([loadSite(), loadDeviceHealth(), state.alarms.size ? null : loadAlarms()]);
  library ??= await libraryState().catch(() => ({ ok: false, hint: "" }));
  const geographic = Boolean(site.map?.tiles || site.plan?.bounds || site.devices.some((d) => d.lat != null));
  mode ??= library.ok && geographic ? "geo" : "plan";
  const geoButton = $("map-mode").querySelector("[data-mode=geo]");
  if (geoButton instanceof HTMLButtonElement) geoButton.disabled = !library.ok;
  $("map-note").textContent = library.ok ? "" : `${t("ui.map_lib_missing")} ${library.hint}`;
  $("map-mode").querySelectorAll("[data-mode]").forEach((b) => {
    if (b instanceof HTMLElement) b.classList.toggle("active", b.dataset.mode === mode);
  });
  $("map-geo").hidden = mode !== "geo";
  $("map-box").hidden = mode !== "plan";
  $("map-heat").hidden = mode !== "geo";
  if (mode === "geo") {
    try {
      await renderGeo(site);
      return;
    } catch (err) {
      report(err);
      mode = "plan";
      $("map-geo").hidden = true; $("map-box").hidden = false;
    }
  }
  await renderPlan(site);
}

/** @param {import("../types.js").Site} site */
async function renderPlan(site) {
  const img = $("map-plan");
  if (site.plan && img instanceof HTMLImageElement && !img.dataset.loaded) {
    const url = await planImage();
    if (url) { img.src = url; img.dataset.loaded = "1"; }
  }
  render($("map-marks"), html`${site.devices.filter((d) => d.x != null && d.y != null).map((d) => html`
    <button class="mark kind-${d.kind} state-${state.devices.get(d.id)?.state || "unknown"}" data-device="${d.id}"
      style="left:${(d.x ?? 0) * 100}%;top:${(d.y ?? 0) * 100}%" title="${d.name}"><span>${d.name}</span></button>`)}`);
  markAlarms();
}

/** Where a device is: its own lon/lat, else its place on the plan laid on the plan's bounds.
 * @param {DeviceSpot} d @param {import("../geomap.js").GeoBounds | null | undefined} b @returns {LatLon | null} */
function whereIs(d, b) {
  if (d.lat != null && d.lon != null) return [d.lat, d.lon];
  if (b && d.x != null && d.y != null) return [b.north - d.y * (b.north - b.south), b.west + d.x * (b.east - b.west)];
  return null;
}

/** Up to MAX_CASES cases, newest first. @returns {Promise<Case[]>} */
async function loadCases() {
  /** @type {Case[]} */
  const all = [];
  let after = "";
  while (all.length < MAX_CASES) {
    /** @type {{ items: Case[], next: string | null }} */
    const page = await api(`/api/cases?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    all.push(...page.items);
    if (!page.next) break;
    after = page.next;
  }
  return all;
}

/** @param {import("../types.js").Site} site */
async function renderGeo(site) {
  const L = await loadLeaflet();
  const kept = geo && geo.lang !== lang ? geo.view() : null;
  if (kept) { geo?.remove(); geo = null; }
  if (!geo) {
    geo = new GeoMap(L, $("map-geo"), site.map || { tiles: null, center: null, zoom: 15 },
      { device: showDevice, case: showCase });
    if (kept) geo.restore(kept);
  }
  await fillGeo(geo, site);
}

/**
 * Draw the site on a geographic map: the plan on its bounds, devices, open cases and their heat, grid workers and
 * their patrols, mobile GB/T 28181 devices' tracks. The map view's own map, and the command screen's (大屏).
 * @param {GeoMap} map @param {import("../types.js").Site} site
 */
export async function fillGeo(map, site) {
  const bounds = site.plan?.bounds;
  const url = bounds ? await planImage() : null;
  if (url && bounds) map.setPlan(url, bounds);
  const hot = hotDevices();
  /** @type {Record<"cameras" | "channels" | "sensors", Spot[]>} */
  const spots = { cameras: [], channels: [], sensors: [] };
  /** @type {LatLon[]} */
  const everything = [];
  for (const d of site.devices) {
    const at = whereIs(d, bounds);
    if (!at) continue;
    const layer = d.source === "gb28181" || d.kind === "gb28181" ? "channels" : d.kind === "camera" ? "cameras" : "sensors";
    const health = state.devices.get(d.id)?.state || "unknown";
    spots[layer].push({ id: d.id, at, label: d.name, cls: `kind-${d.kind} state-${health}${hot.has(d.id) ? " alarm" : ""}` });
    everything.push(at);
  }
  map.setDevices("cameras", spots.cameras);
  map.setDevices("channels", spots.channels);
  map.setDevices("sensors", spots.sensors);

  const [found, workers] = await Promise.all([
    loadCases(),
    /** @type {Promise<{ username: string, patrol_id: string, patrolling: boolean, position: { lat: number, lon: number } }[]>} */
    (api("/api/patrols/positions").catch(() => [])),
  ]);
  if (map === geo) cases = new Map(found.map((c) => [c.id, c]));
  const located = found.filter((c) => c.location);
  map.setCases(located.filter((c) => !CLOSED.has(c.stage)).map((c) => ({
    id: c.id, at: /** @type {LatLon} */ ([c.location?.lat ?? 0, c.location?.lon ?? 0]), label: c.title,
    cls: `case light-${c.light || "none"}`,
  })));
  if (map === geo) { heatChoices(located); drawHeat(); }
  else map.setHeat(located.map((c) => /** @type {LatLon} */ ([c.location?.lat ?? 0, c.location?.lon ?? 0])));
  map.setWorkers(workers.map((w) => ({
    id: w.username, at: /** @type {LatLon} */ ([w.position.lat, w.position.lon]), label: w.username,
    cls: `worker${w.patrolling ? " patrolling" : ""}`,
  })));
  everything.push(...located.map((c) => /** @type {LatLon} */ ([c.location?.lat ?? 0, c.location?.lon ?? 0])));
  map.place(everything);
  map.resize();

  // tracks: the workers' latest patrols, and the mobile GB/T 28181 devices' positions of the last hour
  const patrols = await Promise.all(workers.slice(0, MAX_LINES).map((w) =>
    api(`/api/patrols/${encodeURIComponent(w.patrol_id)}`).then(
      /** @param {{ track: { lat: number, lon: number }[] }} p */
      (p) => ({ id: w.patrol_id, label: w.username, points: p.track.map((q) => /** @type {LatLon} */ ([q.lat, q.lon])) }),
    ).catch(() => null)));
  map.setLines("patrols", patrols.filter((p) => p !== null));
  const mobile = site.devices.filter((d) => d.kind === "gb28181").slice(0, MAX_LINES);
  const tracks = await Promise.all(mobile.map((d) =>
    api(`/api/gb28181/devices/${encodeURIComponent(d.id)}/track`).then(
      /** @param {{ latitude: number, longitude: number }[]} points */
      (points) => ({ id: d.id, label: d.name, points: points.map((q) => /** @type {LatLon} */ ([q.latitude, q.longitude])) }),
    ).catch(() => null)));
  map.setLines("tracks", tracks.filter((x) => x !== null));
}

/** The heat layer's category choice: every category of the located cases. @param {Case[]} located */
function heatChoices(located) {
  const select = control("map-heat-category");
  if (!(select instanceof HTMLSelectElement)) return;
  const chosen = select.value;
  const categories = [...new Set(located.map((c) => c.category))].sort();
  render(select, html`<option value="">${t("ui.filter_all")}</option>${categories.map((c) => html`
    <option value="${c}">${t(`category.${c}`)}</option>`)}`);
  select.value = categories.includes(chosen) ? chosen : "";
}

/** Heat of the located cases (all stages, up to MAX_CASES newest) of the chosen category. */
function drawHeat() {
  const select = control("map-heat-category");
  const chosen = select instanceof HTMLSelectElement ? select.value : "";
  /** @type {LatLon[]} */
  const points = [];
  for (const c of cases.values()) {
    if (c.location && (!chosen || c.category === chosen)) points.push([c.location.lat, c.location.lon]);
  }
  geo?.setHeat(points);
}

/** Blink the devices and cameras of alarms not yet cleared. */
export function markAlarms() {
  const hot = hotDevices();
  geo?.markAlarms(hot);
  document.querySelectorAll("#map-marks .mark").forEach((m) => {
    if (m instanceof HTMLElement) m.classList.toggle("alarm", hot.has(m.dataset.device || ""));
  });
}

/** @param {string} id */
function showDevice(id) {
  const d = state.site?.devices.find((x) => x.id === id);
  if (!d) return;
  const h = state.devices.get(id);
  closeLive();
  const box = $("map-device");
  render(box, html`<h3>${d.name}</h3><dl class="facts">
    <dt>ID</dt><dd>${d.id}</dd><dt>${t("ui.kind")}</dt><dd>${t(`kind.${d.kind}`)}</dd>
    <dt>${t("ui.state")}</dt><dd>${t(`device_state.${h?.state || "unknown"}`)}</dd>
    <dt>${t("ui.last_seen")}</dt><dd>${fmtTime(h?.last_seen)}</dd>
    <dt>${t("ui.errors")}</dt><dd>${h?.errors ?? ""}</dd></dl>
    ${d.zones.length ? html`<ul>${d.zones.map((z) => html`<li>${z.name}</li>`)}</ul>` : ""}
    <div class="map-camera"></div>`);
  const cam = d.kind === "camera" ? d.id : d.cameras[0];
  const slot = box.querySelector(".map-camera");
  if (cam && slot) { player = new LivePlayer(cam, slot); player.setLabel(deviceName(cam)); }
  // a GB/T 28181 channel turns from here, for users allowed to (the hub checks role and unit again)
  if (cam && slot) ptz = ptzFor(cam, slot);
}

/** @param {string} id */
function showCase(id) {
  const c = cases.get(id);
  if (!c) return;
  closeLive();
  render($("map-device"), html`<h3>${c.title}</h3><dl class="facts">
    <dt>${t("ui.case_no")}</dt><dd>${c.id}</dd><dt>${t("ui.category")}</dt><dd>${t(`category.${c.category}`)}</dd>
    <dt>${t("ui.stage")}</dt><dd>${t(`stage.${c.stage}`)}</dd>
    <dt>${t("ui.created")}</dt><dd>${fmtTime(c.created_at)}</dd></dl>
    <button type="button" class="map-open-case" data-case="${c.id}">${t("ui.open_case")}</button>`);
}

$("map-marks").addEventListener("click", (ev) => {
  const m = closest(ev, "[data-device]");
  if (m) showDevice(m.dataset.device || "");
});
$("map-device").addEventListener("click", (ev) => {
  const b = closest(ev, "[data-case]");
  if (b) open("cases", b.dataset.case || "").catch(report);
});
$("map-mode").addEventListener("click", (ev) => {
  const b = closest(ev, "[data-mode]");
  if (!b || b.dataset.mode === mode) return;
  mode = b.dataset.mode === "geo" ? "geo" : "plan";
  closeLive();
  renderMap().catch(report);
});
control("map-heat-category").addEventListener("change", drawHeat);

// new cases, workers' moves and tracks reach the map without a click (the live stream carries alarms only)
setInterval(() => {
  if (state.view !== "map" || mode !== "geo" || drawing || document.hidden) return;
  drawing = true;
  renderMap().catch(report).finally(() => { drawing = false; });
}, REFRESH_MS);

register("map", {
  refresh: renderMap,
  reset: () => { closeLive(); cases = new Map(); library = null; mode = null; },
});
