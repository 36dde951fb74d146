// @ts-check
// PTZ of a GB/T 28181 channel beside its live view: direction pad, zoom/focus/iris, a speed slider and the presets.
// Hold-to-move: a button (or an arrow key, + and -) starts the move when pressed and stops it when released; while
// held, the move is repeated every 2 s, because the hub stops a move by itself 5 s after its last command (a closed
// tab cannot leave a camera turning).
import { api } from "./api.js";
import { html, render } from "./html.js";
import { t } from "./i18n/index.js";
import { state } from "./state.js";
import { report } from "./ui.js";
import { can } from "./views/cases.js";

const PAD = ["upleft", "up", "upright", "left", "stop", "right", "downleft", "down", "downright"];
const LENS = ["zoom_in", "zoom_out", "focus_near", "focus_far", "iris_open", "iris_close"];
/** @type {Record<string, string>} */
const KEYS = { ArrowUp: "up", ArrowDown: "down", ArrowLeft: "left", ArrowRight: "right", "+": "zoom_in", "=": "zoom_in", "-": "zoom_out" };
const REPEAT_MS = 2000;
const ARROWS = { upleft: "↖", up: "↑", upright: "↗", left: "←", stop: "■", right: "→", downleft: "↙", down: "↓", downright: "↘" };

/**
 * Whether a camera is a GB/T 28181 channel (its URL, from /api/devices).
 * @param {string} cameraId
 */
export function isGbChannel(cameraId) {
  const url = state.devices.get(cameraId)?.config?.url;
  return typeof url === "string" && url.startsWith("gb28181:");
}

/**
 * A PTZ panel for the camera if it is a GB/T 28181 channel and the user may turn it (the hub checks role and unit
 * again), else null.
 * @param {string} cameraId
 * @param {Element} container
 */
export function ptzFor(cameraId, container) {
  return isGbChannel(cameraId) && can("ptz:control") ? new PtzPanel(cameraId, container) : null;
}

export class PtzPanel {
  /**
   * @param {string} cameraId
   * @param {Element} container
   */
  constructor(cameraId, container) {
    this.cameraId = cameraId;
    this.base = `/api/gb28181/channels/${encodeURIComponent(cameraId)}`;
    this.el = document.createElement("div");
    this.el.className = "ptz";
    this.el.tabIndex = 0;
    this.el.dataset.camera = cameraId;
    container.append(this.el);
    /** @type {string | null} the move held now */
    this.held = null;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    /** @type {{ number: number, name: string }[]} */
    this.presets = [];
    this.draw();
    this.el.addEventListener("pointerdown", (ev) => {
      const b = ev.target instanceof Element ? ev.target.closest("[data-ptz]") : null;
      if (!(b instanceof HTMLElement)) return;
      ev.preventDefault();
      b.setPointerCapture?.(ev.pointerId);
      const action = b.dataset.ptz || "stop";
      if (action === "stop") this.release(); else this.hold(action);
    });
    for (const name of ["pointerup", "pointercancel", "lostpointercapture"]) {
      this.el.addEventListener(name, () => { if (this.held) this.release(); });
    }
    this.el.addEventListener("keydown", (ev) => {
      const action = KEYS[ev.key];
      if (!action) return;
      ev.preventDefault();
      if (!ev.repeat && this.held !== action) this.hold(action);
    });
    this.el.addEventListener("keyup", (ev) => { if (KEYS[ev.key] && this.held) { ev.preventDefault(); this.release(); } });
    this.el.addEventListener("click", (ev) => {
      const b = ev.target instanceof Element ? ev.target.closest("[data-preset-act]") : null;
      if (!(b instanceof HTMLElement)) return;
      const act = b.dataset.presetAct || "";
      const input = this.el.querySelector(".ptz-preset-number");
      const number = act === "set" && input instanceof HTMLInputElement ? Number(input.value) : Number(b.dataset.number);
      this.preset(act, number).catch(report);
    });
    this.loadPresets().catch((err) => { console.warn("presets", cameraId, err); this.status(t("ptz.no_device")); });
  }

  get speed() {
    const input = this.el.querySelector(".ptz-speed");
    return input instanceof HTMLInputElement ? Number(input.value) : 128;
  }

  draw() {
    render(this.el, html`<div class="ptz-pad">${PAD.map((a) =>
      html`<button type="button" data-ptz="${a}" title="${t(`ptz.${a}`)}" aria-label="${t(`ptz.${a}`)}">${ARROWS[/** @type {keyof typeof ARROWS} */ (a)]}</button>`)}</div>
      <div class="ptz-lens">${LENS.map((a) => html`<button type="button" data-ptz="${a}">${t(`ptz.${a}`)}</button>`)}</div>
      <label class="ptz-speed-label">${t("ptz.speed")} <input class="ptz-speed" type="range" min="1" max="255" value="128"></label>
      <div class="ptz-presets"><h4>${t("ptz.presets")}</h4><ul class="ptz-preset-list"></ul>
        <label>${t("ptz.number")} <input class="ptz-preset-number" type="number" min="1" max="255" value="1"></label>
        <button type="button" data-preset-act="set">${t("ptz.set")}</button></div>
      <p class="ptz-status" aria-live="polite"></p>`);
    this.drawPresets();
  }

  /** Only the list: what the operator is typing or the speed they chose stay as they are. */
  drawPresets() {
    const list = this.el.querySelector(".ptz-preset-list");
    if (!list) return;
    render(list, html`${this.presets.length ? this.presets.map((p) => html`<li data-preset="${p.number}">
      <span>${p.number}. ${p.name || t("ptz.preset_unnamed")}</span>
      <button type="button" data-preset-act="call" data-number="${p.number}">${t("ptz.call")}</button>
      <button type="button" data-preset-act="delete" data-number="${p.number}">${t("ptz.delete")}</button></li>`)
      : html`<li class="muted">${t("ptz.no_presets")}</li>`}`);
  }

  /** @param {string} text */
  status(text) { const s = this.el.querySelector(".ptz-status"); if (s) s.textContent = text; }

  /** @param {string} action */
  async send(action) {
    await api(`${this.base}/ptz`, { method: "POST", json: { action, speed: this.speed } });
    this.el.dataset.last = action;
  }

  /** @param {string} action */
  hold(action) {
    this.held = action;
    clearInterval(this.timer);
    this.el.dataset.held = action;
    this.send(action).catch((err) => { this.release(false); this.status(t("ptz.failed")); report(err); });
    this.timer = setInterval(() => { if (this.held) this.send(this.held).catch(report); }, REPEAT_MS);
  }

  release(stop = true) {
    clearInterval(this.timer);
    this.timer = undefined;
    this.held = null;
    delete this.el.dataset.held;
    if (stop) this.send("stop").catch(report);
  }

  async loadPresets() {
    this.presets = await api(`${this.base}/presets`);
    this.drawPresets();
  }

  /**
   * @param {string} act call, set or delete
   * @param {number} number
   */
  async preset(act, number) {
    if (!(number >= 1 && number <= 255)) { this.status(t("ptz.bad_number")); return; }
    if (act === "delete") await api(`${this.base}/presets/${number}`, { method: "DELETE" });
    else await api(`${this.base}/presets`, { method: "POST", json: { action: act, number } });
    this.status(`${t(`ptz.done_${act}`)} ${number}`);
    if (act !== "call") await this.loadPresets();
  }

  close() {
    if (this.held) this.release();
    this.el.remove();
  }
}
