// @ts-check
// 任务提醒: this phone subscribes to Web Push with the hub's key through the field app's own service worker (sw.js,
// scope /field/), and the hub keeps the subscription for the signed-in worker (POST /api/push/subscriptions). A
// webpush uplink sending to task:assignees then tells the phone of each new task, even with the app closed.

const STORE = "field-push";

export function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** @param {string} text base64url @returns {Uint8Array<ArrayBuffer>} */
function bytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/**
 * @param {(path: string, options?: { method?: string, json?: unknown }) => Promise<Response>} call
 * @returns {Promise<{ state: "on" | "off" | "denied" | "unsupported", enabled: boolean }>} ``enabled``: whether
 * the hub sends task notifications to this worker at all
 */
export async function pushState(call) {
  const res = await call("/api/push/key").catch(() => null);
  const enabled = Boolean(res && res.ok && (await res.json()).enabled);
  if (!supported()) return { state: "unsupported", enabled };
  if (Notification.permission === "denied") return { state: "denied", enabled };
  const reg = await navigator.serviceWorker.getRegistration("/field/");
  const on = localStorage.getItem(STORE) === "1" && reg && (await reg.pushManager.getSubscription());
  return { state: on ? "on" : "off", enabled };
}

/**
 * Ask for permission, subscribe with the hub's key and tell the hub.
 * @param {(path: string, options?: { method?: string, json?: unknown }) => Promise<Response>} call
 */
export async function enablePush(call) {
  if (!supported()) throw new Error("unsupported");
  if ((await Notification.requestPermission()) !== "granted") return "denied";
  const reg = await navigator.serviceWorker.register("/field/sw.js", { scope: "/field/" });
  await navigator.serviceWorker.ready;
  const keyRes = await call("/api/push/key");
  if (!keyRes.ok) throw new Error(`HTTP ${keyRes.status}`);
  const key = bytes((await keyRes.json()).public_key);
  let sub = await reg.pushManager.getSubscription();
  if (!sub) sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  await sendSubscription(call, sub.toJSON());
  return "on";
}

/**
 * Keep this phone's subscription at the hub for the signed-in worker.
 * @param {(path: string, options?: { method?: string, json?: unknown }) => Promise<Response>} call
 * @param {PushSubscriptionJSON} json
 */
export async function sendSubscription(call, json) {
  const res = await call("/api/push/subscriptions", { method: "POST", json });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  localStorage.setItem(STORE, "1");
}

/**
 * Forget this phone's subscription, at the hub and in the browser.
 * @param {(path: string, options?: { method?: string, json?: unknown }) => Promise<Response>} call
 */
export async function disablePush(call) {
  localStorage.removeItem(STORE);
  const reg = supported() ? await navigator.serviceWorker.getRegistration("/field/") : undefined;
  const sub = reg ? await reg.pushManager.getSubscription() : null;
  if (!sub) return "off";
  await call("/api/push/subscriptions", { method: "DELETE", json: { endpoint: sub.endpoint } }).catch(() => null);
  await sub.unsubscribe();
  return "off";
}
