// @ts-check
// The video wall: 1, 4, 9 or 16 tiles, each a camera chosen by the operator (kept in localStorage); a new alarm's
// cameras take the first tiles, marked with the alarm.
import { html, render } from "../html.js";
import { t } from "../i18n/index.js";
import { register } from "../nav.js";
import { LivePlayer } from "../player.js";
import { deviceName, state } from "../state.js";
import { $, closest } from "../ui.js";

/** @typedef {{ layout: number, cameras: string[] }} Wall */

/** @type {Wall} */
const wall = JSON.parse(localStorage.getItem("sharpeye.wall") || "null") || { layout: 4, cameras: [] };
/** @type {(LivePlayer | null)[]} */
const players = [];
/** @type {Map<number, string>} tile index -> alarm title that popped it */
const popped = new Map();

function cameraIds() {
  return (state.site?.devices || []).filter((d) => d.kind === "camera").map((d) => d.id);
}

function saveWall() { localStorage.setItem("sharpeye.wall", JSON.stringify(wall)); }

function renderWall() {
  const { layout } = wall;
  const grid = $("wall-grid");
  grid.style.setProperty("--cols", String(Math.sqrt(layout)));
  document.querySelectorAll("[data-layout]").forEach((b) => {
    if (b instanceof HTMLElement) b.classList.toggle("active", Number(b.dataset.layout) === layout);
  });
  const cams = cameraIds();
  if (!wall.cameras.length) wall.cameras = cams.slice(0, layout);
  const wanted = Array.from({ length: layout }, (_, i) => wall.cameras[i] || "");
  // keep players whose tile still shows the same camera
  const tiles = [...grid.children];
  wanted.forEach((cam, i) => {
    let tile = tiles[i];
    if (!tile) {
      const made = document.createElement("div"); made.className = "tile"; made.dataset.index = String(i); grid.append(made);
      render(made, html`<select class="tile-camera"></select><div class="tile-video"></div><span class="tile-alarm"></span>`);
      tile = made;
    }
    const select = tile.querySelector("select");
    const video = tile.querySelector(".tile-video");
    const label = tile.querySelector(".tile-alarm");
    if (!select || !(video instanceof HTMLElement) || !label) return;
    render(select, html`<option value="">${t("ui.choose_camera")}</option>${cams.map((c) =>
      html`<option value="${c}" ${c === cam ? html`selected` : ""}>${deviceName(c)}</option>`)}`);
    label.textContent = popped.get(i) || "";
    tile.classList.toggle("popped", popped.has(i));
    const current = players[i];
    if (current && current.cameraId !== cam) { current.close(); players[i] = null; }
    if (cam && !players[i]) {
      const p = new LivePlayer(cam, video); p.setLabel(deviceName(cam));
      players[i] = p;
    }
    if (!cam) video.dataset.empty = t("ui.empty_tile");
  });
  tiles.slice(layout).forEach((tile, j) => {
    const p = players[layout + j]; if (p) p.close(); tile.remove();
  });
  players.length = layout;
}

/**
 * An alarm's cameras take the first tiles.
 * @param {import("../types.js").Alarm} alarm
 */
export function popToWall(alarm) {
  const cams = alarm.cameras.slice(0, wall.layout);
  const base = wall.cameras.some(Boolean) ? wall.cameras : cameraIds();
  const rest = base.filter((c) => c && !cams.includes(c));
  wall.cameras = [...cams, ...rest].slice(0, wall.layout);
  popped.clear();
  cams.forEach((_, i) => popped.set(i, `${t(`severity.${alarm.severity}`)} ${alarm.title}`));
  saveWall();
  // players are only started while the wall has been opened once or is on screen
  if (state.view === "wall" || $("wall-grid").children.length) renderWall();
}

$("wall").addEventListener("click", (ev) => {
  const b = closest(ev, "[data-layout]");
  if (b) { wall.layout = Number(b.dataset.layout); popped.clear(); saveWall(); renderWall(); }
});
$("wall-grid").addEventListener("change", (ev) => {
  const tile = closest(ev, ".tile");
  if (tile && ev.target instanceof HTMLSelectElement) {
    const index = Number(tile.dataset.index);
    wall.cameras[index] = ev.target.value; popped.delete(index); saveWall(); renderWall();
  }
});

register("wall", {
  refresh: renderWall,
  reset: () => { players.forEach((p) => p?.close()); players.length = 0; render($("wall-grid"), html``); },
});
