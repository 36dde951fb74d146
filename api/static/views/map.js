// @ts-check
// The site plan with every placed device, coloured by its health; devices in alarm blink. A click shows the
// device and its camera live.
import { html, render } from "../html.js";
import { fmtTime, t } from "../i18n/index.js";
import { register } from "../nav.js";
import { LivePlayer } from "../player.js";
import { ptzFor } from "../ptz.js";
import { deviceName, loadAlarms, loadDeviceHealth, loadSite, state } from "../state.js";
import { $, closest } from "../ui.js";

/** @type {LivePlayer | null} */
let player = null;
/** @type {import("../ptz.js").PtzPanel | null} */
let ptz = null;

function closeLive() {
  if (player) { player.close(); player = null; }
  if (ptz) { ptz.close(); ptz = null; }
}

async function renderMap() {
  const [site] = await Promise.all([loadSite(), loadDeviceHealth(), state.alarms.size ? null : loadAlarms()]);
  const plan = site.plan;
  const img = $("map-plan");
  if (plan && img instanceof HTMLImageElement && !img.dataset.loaded) {
    const res = await fetch(plan.url, { credentials: "same-origin" });
    if (res.ok) { img.src = URL.createObjectURL(await res.blob()); img.dataset.loaded = "1"; }
  }
  render($("map-marks"), html`${site.devices.filter((d) => d.x !== null && d.y !== null).map((d) => html`
    <button class="mark kind-${d.kind} state-${state.devices.get(d.id)?.state || "unknown"}" data-device="${d.id}"
      style="left:${(d.x ?? 0) * 100}%;top:${(d.y ?? 0) * 100}%" title="${d.name}"><span>${d.name}</span></button>`)}`);
  markAlarms();
}

/** Blink the devices and cameras of alarms not yet cleared. */
export function markAlarms() {
  /** @type {Set<string>} */
  const hot = new Set();
  for (const a of state.alarms.values()) {
    if (a.state.startsWith("cleared")) continue;
    hot.add(a.device_id); a.cameras.forEach((c) => hot.add(c));
  }
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

$("map-marks").addEventListener("click", (ev) => {
  const m = closest(ev, "[data-device]");
  if (m) showDevice(m.dataset.device || "");
});

register("map", {
  refresh: renderMap,
  reset: closeLive,
});
