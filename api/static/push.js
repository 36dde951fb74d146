// @ts-check
// Browser notifications (Web Push): this browser subscribes with the hub's VAPID key and the hub keeps the
// subscription for the signed-in user (POST /api/push/subscriptions); a webpush uplink naming the user (or the
// user's role) then reaches this browser even when the console is closed. The service worker is sw.js.
import { api } from "./api.js";

export const SW_URL = "/static/sw.js";
export const SCOPE = "/static/console-push/";
const STORE = "sharpeye.push";

export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** @param {string} text base64url @returns {Uint8Array<ArrayBuffer>} */
function bytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** @param {ArrayBuffer | null} buffer @param {Uint8Array} key */
function sameKey(buffer, key) {
  if (!buffer) return false;
  const have = new Uint8Array(buffer);
  return have.length === key.length && have.every((b, i) => b === key[i]);
}

/** The service worker's registration, waiting until it is active. */
export async function registration() {
  const reg = await navigator.serviceWorker.register(SW_URL, { scope: SCOPE });
  const worker = reg.installing || reg.waiting;
  if (worker && !reg.active) {
    await new Promise((resolve) => {
      worker.addEventListener("statechange", () => { if (worker.state === "activated") resolve(null); });
    });
  }
  return reg;
}

/**
 * Keep a subscription for the signed-in user at the hub.
 * @param {PushSubscriptionJSON} json
 */
export async function sendSubscription(json) {
  return api("/api/push/subscriptions", { method: "POST", json });
}

/**
 * Whether the hub pushes to this user at all: a webpush channel names them or their role (GET /api/push/key's
 * ``enabled``); a node without Web Push answers 503.
 */
export async function pushEnabled() {
  try {
    return Boolean((await api("/api/push/key")).enabled);
  } catch {
    return false;
  }
}

/** "on" | "off" | "denied" | "unsupported" | "unavailable" (the hub sends this user no push) */
export async function pushState() {
  if (!supported()) return "unsupported";
  if (!(await pushEnabled())) return "unavailable";
  if (Notification.permission === "denied") return "denied";
  if (localStorage.getItem(STORE) !== "1") return "off";
  const reg = await navigator.serviceWorker.getRegistration(SCOPE);
  return reg && (await reg.pushManager.getSubscription()) ? "on" : "off";
}

/** Ask for permission, subscribe with the hub's key (again if the key changed) and tell the hub. */
export async function enablePush() {
  if (!supported()) throw new Error("unsupported");
  if ((await Notification.requestPermission()) !== "granted") return "denied";
  const reg = await registration();
  const { public_key: publicKey, enabled } = await api("/api/push/key");
  if (!enabled) return "unavailable";
  const key = bytes(publicKey);
  let sub = await reg.pushManager.getSubscription();
  if (sub && !sameKey(sub.options.applicationServerKey, key)) { await sub.unsubscribe(); sub = null; }
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await sendSubscription(sub.toJSON());
  localStorage.setItem(STORE, "1");
  return "on";
}

/** Forget this browser's subscription, at the hub and in the browser. */
export async function disablePush() {
  localStorage.removeItem(STORE);
  const reg = supported() ? await navigator.serviceWorker.getRegistration(SCOPE) : undefined;
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  if (!sub) return "off";
  await api("/api/push/subscriptions", { method: "DELETE", json: { endpoint: sub.endpoint } }).catch(() => null);
  await sub.unsubscribe();
  return "off";
}

/**
 * Where a clicked notification leads ("alarm:<id>" or "case:<id>"): on the page opened by the click (?open=...),
 * or a message from the service worker to a console already open.
 * @param {(view: string, id: string) => void} go
 */
export function onOpen(go) {
  /** @param {string} target */
  const follow = (target) => {
    const [kind, ...rest] = target.split(":");
    const id = rest.join(":");
    if (id && (kind === "alarm" || kind === "case")) go(kind === "alarm" ? "alarms" : "cases", id);
  };
  const params = new URLSearchParams(location.search);
  const first = params.get("open");
  if (first) { history.replaceState(null, "", "/"); follow(first); }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", (ev) => {
      if (ev.data && ev.data.type === "sharpeye.open") follow(String(ev.data.open || ""));
    });
    navigator.serviceWorker.startMessages();
  }
}
