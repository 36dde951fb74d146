// @ts-check
// Look-back (录像回放): a camera's own recordings on a 24-hour timeline for one day, played from the moment clicked
// (the segments one after another in a <video>: MP4 H.264 plays in the browser as it is), and a range downloaded as
// one MP4. An alarm's detail opens this view at 10 s before the alarm (``openAt``).
import { api } from "../api.js";
import { html, render } from "../html.js";
import { t } from "../i18n/index.js";
import { register, open } from "../nav.js";
import { deviceName, state } from "../state.js";
import { $, report } from "../ui.js";

/** @typedef {{ start: string, end: string, start_ms: number, end_ms: number, bytes: number, url: string }} Segment */
/** @typedef {{ state: string, mode: string, reason: string | null, segments: number, errors: number }} Recorder */

const DAY_MS = 86400000;
/** @type {Segment[]} */
let queue = [];
/** @type {Segment | null} */
let playing = null;
let pendingOffset = 0;
let generation = 0;
/** @type {Segment[]} the segments drawn on the timeline */
let drawn = [];
/** @typedef {{ start_ms: number, end_ms: number }} DeviceRecord */
/** @type {DeviceRecord[]} recordings the camera's GB/T 28181 device holds, drawn on the timeline */
let deviceDrawn = [];
/** @type {Map<string, string>} camera id -> its URL (gb28181:<device>/<channel> for GB channels) */
const urls = new Map();
const CLIP_MS = 30000;  // a device's recording is fetched 30 s at a time (Download INVITE at 8x, remuxed)

/** @param {string} cam */
const isGb = (cam) => (urls.get(cam) || "").startsWith("gb28181:");

function cameraIds() {
  return (state.site?.devices || []).filter((d) => d.kind === "camera").map((d) => d.id);
}

/** Local midnight of the chosen day, in ms. */
function dayStart() {
  const value = /** @type {HTMLInputElement} */ ($("pb-day")).value;
  const d = value ? new Date(`${value}T00:00:00`) : new Date();
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** @param {Date} d */
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
/** @param {number} ms */
const hhmmss = (ms) => new Date(ms).toLocaleTimeString("zh-CN", { hour12: false });
/** @param {number} ms  the value of a datetime-local input */
const localInput = (ms) => {
  const d = new Date(ms);
  return `${isoDay(d)}T${hhmmss(ms)}`;
};

function camera() { return /** @type {HTMLSelectElement} */ ($("pb-camera")).value; }

async function loadUrls() {
  /** @type {{ id: string, config?: { url?: string } }[]} */
  const cams = await api("/api/devices?kind=camera").catch(() => []);
  cams.forEach((c) => urls.set(c.id, c.config?.url || ""));
}

async function refresh() {
  if (!urls.size) await loadUrls();
  const sel = /** @type {HTMLSelectElement} */ ($("pb-camera"));
  const cams = cameraIds();
  const current = sel.value || cams[0] || "";
  render(sel, html`${cams.map((c) => html`<option value="${c}" ${c === current ? html`selected` : ""}>${deviceName(c)}</option>`)}`);
  const day = /** @type {HTMLInputElement} */ ($("pb-day"));
  if (!day.value) day.value = isoDay(new Date());
  await drawTimeline();
}

async function drawTimeline() {
  const cam = camera();
  const bar = $("pb-timeline");
  if (!cam) { render(bar, html``); return; }
  const from = dayStart();
  const to = from + DAY_MS;
  /** @type {{ segments: Segment[], recorder: Recorder | null }} */
  const body = await api(`/api/cameras/${encodeURIComponent(cam)}/recordings?start=${from / 1000}&end=${to / 1000}`);
  deviceDrawn = [];
  let deviceNote = "";
  if (isGb(cam)) {
    try {
      /** @type {{ records: DeviceRecord[], complete: boolean, error: string | null }} */
      const dev = await api(`/api/cameras/${encodeURIComponent(cam)}/device-records?start=${from / 1000}&end=${to / 1000}`);
      deviceDrawn = dev.records;
      deviceNote = ` · ${t("ui.device_records")} ${dev.records.length}${dev.complete ? "" : `（${t("ui.partial")}）`}`;
    } catch {
      deviceNote = ` · ${t("ui.device_records_failed")}`;
    }
  }
  drawn = body.segments;
  const ticks = Array.from({ length: 13 }, (_, i) => i * 2);
  render(bar, html`${ticks.map((h) => html`<span class="pb-tick" style="left:${(h / 24) * 100}%">${String(h).padStart(2, "0")}</span>`)}
    ${body.segments.map((s) => {
      const left = Math.max(0, (s.start_ms - from) / DAY_MS) * 100;
      const width = Math.max(0.05, ((Math.min(s.end_ms, to) - Math.max(s.start_ms, from)) / DAY_MS) * 100);
      return html`<i class="pb-seg" style="left:${left}%;width:${width}%" title="${hhmmss(s.start_ms)}–${hhmmss(s.end_ms)}"></i>`;
    })}${deviceDrawn.map((r) => {
      const left = Math.max(0, (r.start_ms - from) / DAY_MS) * 100;
      const width = Math.max(0.05, ((Math.min(r.end_ms, to) - Math.max(r.start_ms, from)) / DAY_MS) * 100);
      return html`<i class="pb-dev" style="left:${left}%;width:${width}%" title="${hhmmss(r.start_ms)}–${hhmmss(r.end_ms)}"></i>`;
    })}<b class="pb-cursor" hidden></b>`);
  const rec = body.recorder;
  const status = !rec ? t("ui.no_recorder")
    : `${t(`recorder_state.${rec.state}`)}（${t(`record_mode.${rec.mode}`)}）${rec.reason ? `：${rec.reason}` : ""}`;
  $("pb-status").textContent = `${status} · ${t("ui.segments")} ${body.segments.length}${deviceNote}`;
  bar.dataset.from = String(from);
  moveCursor();
}

/** The playback on screen stops and its moments are no longer shown (a new one is being fetched). */
function stopShowing() {
  playing = null;
  queue = [];
  /** @type {HTMLVideoElement} */ ($("pb-video")).pause();
  delete $("pb-now").dataset.ms;
  delete $("pb-now").dataset.startMs;
}

/** @param {number} ms */
async function playFrom(ms) {
  const cam = camera();
  if (!cam) return;
  stopShowing();
  const mine = ++generation;  // a later request (another click) wins over this one
  $("pb-now").dataset.askedMs = String(Math.round(ms));
  /** @type {{ offset_s: number, segments: Segment[] }} */
  let body;
  try {
    body = await api(`/api/cameras/${encodeURIComponent(cam)}/recordings/play?t=${ms / 1000}`);
  } catch {
    if (mine !== generation) return;
    if (isGb(cam)) { playDevice(cam, ms); return; }
    $("pb-now").textContent = t("ui.no_recording_then"); return;
  }
  if (isGb(cam) && body.segments[0].start_ms > ms + 2000) { playDevice(cam, ms); return; }  // the device has it
  if (mine !== generation) return;
  queue = body.segments.slice(1);
  pendingOffset = body.offset_s;
  $("pb-now").dataset.startMs = String(Math.round(body.segments[0].start_ms + body.offset_s * 1000));
  start(body.segments[0]);
  const from = /** @type {HTMLInputElement} */ ($("pb-from"));
  const to = /** @type {HTMLInputElement} */ ($("pb-to"));
  from.value = localInput(ms); to.value = localInput(ms + 60000);
}

/**
 * Play a GB/T 28181 channel's own device recording from ``ms``: a minute fetched at a time (Download INVITE).
 * @param {string} cam
 * @param {number} ms
 */
function playDevice(cam, ms) {
  const end = ms + CLIP_MS;
  const q = `start=${ms / 1000}&end=${end / 1000}&speed=8`;
  const seg = { start: "", end: "", start_ms: ms, end_ms: end, bytes: 0,
    url: `/api/cameras/${encodeURIComponent(cam)}/device-clip?${q}` };
  const next = deviceDrawn.some((r) => r.start_ms < end + CLIP_MS && r.end_ms > end);
  queue = next ? [{ ...seg, start_ms: end, end_ms: end + CLIP_MS,
    url: `/api/cameras/${encodeURIComponent(cam)}/device-clip?start=${end / 1000}&end=${(end + CLIP_MS) / 1000}&speed=8` }] : [];
  pendingOffset = 0;
  $("pb-now").dataset.startMs = String(Math.round(ms));
  $("pb-now").textContent = t("ui.fetching_device");
  start(seg);
}

/** @param {Segment | undefined} seg */
function start(seg) {
  const video = /** @type {HTMLVideoElement} */ ($("pb-video"));
  if (!seg) { playing = null; video.pause(); $("pb-now").textContent = t("ui.playback_end"); return; }
  playing = seg;
  video.src = seg.url;
  video.play().catch(() => { /* autoplay refused: the controls are there */ });
}

function moveCursor() {
  const bar = $("pb-timeline");
  const cursor = bar.querySelector(".pb-cursor");
  const video = /** @type {HTMLVideoElement} */ ($("pb-video"));
  if (!(cursor instanceof HTMLElement) || !playing || pendingOffset > 0) return;  // not before the seek into it
  const now = playing.start_ms + video.currentTime * 1000;
  const from = Number(bar.dataset.from || 0);
  cursor.hidden = now < from || now > from + DAY_MS;
  cursor.style.left = `${((now - from) / DAY_MS) * 100}%`;
  $("pb-now").textContent = `${t("ui.playing_at")} ${new Date(now).toLocaleString("zh-CN", { hour12: false })}`;
  $("pb-now").dataset.ms = String(Math.round(now));
}

const video = /** @type {HTMLVideoElement} */ ($("pb-video"));
video.addEventListener("loadedmetadata", () => {
  if (pendingOffset > 0) { video.currentTime = Math.min(pendingOffset, Math.max(0, video.duration - 0.1)); pendingOffset = 0; }
});
video.addEventListener("timeupdate", moveCursor);
video.addEventListener("ended", () => { if (playing && video.currentSrc.endsWith(playing.url)) start(queue.shift()); });

$("pb-timeline").addEventListener("click", (ev) => {
  const bar = $("pb-timeline");
  const rect = bar.getBoundingClientRect();
  let ms = Number(bar.dataset.from || dayStart()) + ((ev.clientX - rect.left) / rect.width) * DAY_MS;
  // A pixel of a day's timeline is about a minute: a click plays from the earliest recording under the pixel
  // clicked (or within two pixels of it), so a short recording can be hit at all.
  const px = DAY_MS / Math.max(1, rect.width);
  /** @type {{ start_ms: number, end_ms: number }[]} */
  const spans = [...drawn, ...deviceDrawn].sort((x, y) => x.start_ms - y.start_ms);
  const under = spans.find((s) => s.start_ms < ms + px && s.end_ms > ms - px);
  if (under) {
    ms = Math.max(under.start_ms, ms - px);
  } else {
    const near = spans.filter((s) => s.start_ms < ms + 2 * px && s.end_ms > ms - 2 * px);
    if (near.length) ms = ms < near[0].start_ms ? near[0].start_ms : Math.max(near[0].start_ms, near[near.length - 1].end_ms - 1000);
  }
  playFrom(ms).catch(report);
});
$("pb-camera").addEventListener("change", () => drawTimeline().catch(report));
$("pb-day").addEventListener("change", () => drawTimeline().catch(report));
$("pb-download").addEventListener("click", () => {
  const from = new Date(/** @type {HTMLInputElement} */ ($("pb-from")).value).getTime();
  const to = new Date(/** @type {HTMLInputElement} */ ($("pb-to")).value).getTime();
  if (!(to > from)) { $("pb-now").textContent = t("ui.bad_range"); return; }
  const a = document.createElement("a");
  a.href = `/api/cameras/${encodeURIComponent(camera())}/recordings/download?start=${from / 1000}&end=${to / 1000}`;
  a.download = "";
  document.body.append(a); a.click(); a.remove();
});

/**
 * Open the look-back view on a camera at a moment (``<camera>@<ISO time or ms>``), playing from there.
 * @param {string} target
 */
async function openAt(target) {
  const at = target.lastIndexOf("@");
  const cam = target.slice(0, at);
  const raw = target.slice(at + 1);
  const ms = /^\d+$/.test(raw) ? Number(raw) : new Date(raw).getTime();
  const sel = /** @type {HTMLSelectElement} */ ($("pb-camera"));
  if (![...sel.options].some((o) => o.value === cam)) {
    render(sel, html`${[...cameraIds(), cam].filter((c, i, all) => all.indexOf(c) === i).map((c) => html`<option value="${c}">${deviceName(c)}</option>`)}`);
  }
  sel.value = cam;
  /** @type {HTMLInputElement} */ ($("pb-day")).value = isoDay(new Date(ms));
  await drawTimeline();
  await playFrom(ms);
}

/**
 * From another view: play a camera from ``seconds`` before a moment.
 * @param {string} cameraId
 * @param {string} when  ISO time
 * @param {number} [seconds]
 */
export function lookBack(cameraId, when, seconds = 10) {
  stopShowing();
  open("playback", `${cameraId}@${new Date(when).getTime() - seconds * 1000}`).catch(report);
}

register("playback", {
  refresh,
  open: openAt,
  reset: () => { queue = []; playing = null; video.removeAttribute("src"); video.load(); },
});
