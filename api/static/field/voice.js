// @ts-check
// A voice note (语音备注) recorded on the phone with MediaRecorder: hold nothing, tap to start, tap to stop; it stops by
// itself at the hub's limit. Kept as a Blob with the report in the outbox, sent as the form's ``voice`` file.
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

export const MAX_VOICE_S = 60;

/** The recorder's container: what the browser records in, WebM/Opus first (Chromium, Firefox), else MP4/AAC (Safari). */
function mimeType() {
  for (const type of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"]) {
    if (typeof MediaRecorder !== "undefined" && MediaRecorder.isTypeSupported(type)) return type;
  }
  return "";
}

/**
 * The voice-note control of a form: a record/stop button, a player of what was recorded and a remove button.
 * ``take()`` gives the note (or null) and clears the control.
 * @returns {{ element: HTMLElement, take: () => Blob | null }}
 */
export function voiceControl() {
  /** @type {Blob | null} */
  let note = null;
  /** @type {MediaRecorder | null} */
  let recorder = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let limit = null;
  const status = h("span", { class: "voice-status", "data-testid": "voice-status" });
  const player = h("div", { class: "voice-player" });
  const button = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "voice", "data-testid": "voice",
    onclick: () => { if (recorder) stop(); else start().catch((err) => fill(status, `${t("voice_failed")}: ${err.message || err}`)); } },
  t("voice_record")));

  async function start() {
    if (!navigator.mediaDevices || typeof MediaRecorder === "undefined") throw new Error(t("voice_unsupported"));
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = mimeType();
    const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    /** @type {Blob[]} */
    const parts = [];
    rec.ondataavailable = (e) => { if (e.data.size) parts.push(e.data); };
    rec.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      note = new Blob(parts, { type: rec.mimeType || type || "audio/webm" });
      show();
    };
    recorder = rec;
    rec.start();
    fill(button, t("voice_stop"));
    fill(status, t("voice_recording"));
    limit = setTimeout(stop, MAX_VOICE_S * 1000 - 500); // the hub refuses notes longer than its limit
  }

  function stop() {
    if (limit) { clearTimeout(limit); limit = null; }
    if (recorder && recorder.state !== "inactive") recorder.stop();
    recorder = null;
    fill(button, t("voice_record"));
  }

  function show() {
    if (!note) { fill(player); fill(status); return; }
    fill(status, `${t("voice_note")} ${Math.round(note.size / 1024)} KB`);
    fill(player, h("audio", { controls: true, src: URL.createObjectURL(note) }),
      h("button", { type: "button", class: "link", "data-testid": "voice-remove", onclick: () => { note = null; show(); } }, t("delete")));
  }

  return {
    element: h("div", { class: "voice-control" }, button, status, player),
    take: () => { stop(); const taken = note; note = null; show(); return taken; },
  };
}

/**
 * The file name a voice note is sent under (the hub reads the type from the bytes; the name only helps people).
 * @param {Blob} blob
 */
export function voiceName(blob) {
  return blob.type.includes("mp4") ? "voice.m4a" : blob.type.includes("ogg") ? "voice.ogg" : "voice.webm";
}
