// @ts-check
// A WHEP player: one RTCPeerConnection receiving one camera's H.264 from the hub. Reconnects on failure and
// leaves (DELETE) when closed.
import { authHeaders } from "./api.js";
import { t } from "./i18n/index.js";

/** @type {Set<LivePlayer>} every open player, to relabel them when the language changes */
const open = new Set();

export class LivePlayer {
  /**
   * @param {string} cameraId
   * @param {Element} container
   */
  constructor(cameraId, container) {
    this.cameraId = cameraId;
    this.el = document.createElement("div");
    this.el.className = "player";
    this.el.dataset.camera = cameraId;
    this.video = document.createElement("video");
    Object.assign(this.video, { muted: true, autoplay: true, playsInline: true });
    this.video.dataset.camera = cameraId;
    this.status = document.createElement("span");
    this.status.className = "player-status";
    this.label = document.createElement("span");
    this.label.className = "player-label";
    this.label.textContent = cameraId;
    this.el.append(this.video, this.label, this.status);
    container.append(this.el);
    this.closed = false;
    this.retrying = false;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {string | null} */
    this.resource = null;
    open.add(this);
    // time from opening the player to its first picture, for operators' support and the browser tests
    const started = performance.now();
    const first = () => { this.video.dataset.firstFrameMs = String(Math.round(performance.now() - started)); };
    if ("requestVideoFrameCallback" in this.video) this.video.requestVideoFrameCallback(first);
    else /** @type {HTMLVideoElement} */ (this.video).addEventListener("playing", first, { once: true });
    this.connect();
  }

  /** @param {string} text */
  setLabel(text) { this.label.textContent = text; }

  /** @param {"connecting" | "live" | "failed"} key */
  setStatus(key) { this.status.textContent = t(`player.${key}`); this.el.dataset.state = key; }

  async connect() {
    if (this.closed) return;
    this.setStatus("connecting");
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
    const caps = RTCRtpReceiver.getCapabilities("video");
    const h264 = caps ? caps.codecs.filter((c) => /video\/(h264|rtx)/i.test(c.mimeType)) : [];
    if (h264.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(h264);
    pc.ontrack = (ev) => { this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") this.setStatus("live");
      if (["failed", "closed", "disconnected"].includes(pc.connectionState) && this.pc === pc) this.retry();
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 1000);
      const res = await fetch(`/api/cameras/${encodeURIComponent(this.cameraId)}/whep`, {
        method: "POST", body: pc.localDescription?.sdp,
        headers: authHeaders("POST", { "Content-Type": "application/sdp" }), credentials: "same-origin",
      });
      if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
      this.resource = res.headers.get("Location");
      await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    } catch (err) {
      console.warn("live view", this.cameraId, err);
      this.retry();
    }
  }

  retry() {
    if (this.closed || this.retrying) return;
    this.retrying = true;
    this.setStatus("failed");
    this.leave();
    setTimeout(() => { this.retrying = false; this.connect(); }, 3000);
  }

  /** @returns {Promise<void>} settled once the hub has been told (DELETE), if it had a session to end */
  leave() {
    const pc = this.pc; this.pc = null;
    if (!this.resource) { pc?.close(); return Promise.resolve(); }
    // the peer connection closes once the hub has ended the session: closed first, the hub would drop the session
    // on its own and answer the DELETE with 404
    const left = fetch(this.resource, { method: "DELETE", headers: authHeaders("DELETE"), credentials: "same-origin" })
      .then(() => {}, () => {}).finally(() => pc?.close());
    this.resource = null;
    return left;
  }

  /** @returns {Promise<void>} see ``leave`` */
  close() {
    this.closed = true; open.delete(this);
    const left = this.leave();
    this.video.srcObject = null; this.el.remove();
    return left;
  }
}

/** Close every player and wait until the hub knows (before signing out, while the session still holds). */
export async function closeAllPlayers() {
  await Promise.all([...open].map((p) => p.close()));
}

/** Show every open player's status in the current language. */
export function relabelPlayers() {
  open.forEach((p) => { const key = p.el.dataset.state; if (key === "connecting" || key === "live" || key === "failed") p.setStatus(key); });
}

/**
 * @param {RTCPeerConnection} pc
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);
  });
}
