// @ts-check
/// <reference lib="webworker" />
// The console's service worker, only for Web Push: it shows the hub's notifications (alarms, cases, 督办) and a
// click brings the console forward on that alarm or case. Registered by push.js with the narrow scope
// /static/console-push/ (it controls no page, so it never stands between the console and the hub).
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/**
 * What the hub sends (governance/channel.py push_payload).
 * @typedef {{ title?: string, body?: string, tag?: string, open?: string, severity?: string, type?: string }} Push
 */

/** @param {PushEvent} event @returns {Push} */
function payload(event) {
  if (!event.data) return {};
  try { return event.data.json(); } catch { return { body: event.data.text() }; }
}

sw.addEventListener("install", () => { sw.skipWaiting(); });
sw.addEventListener("activate", (event) => { event.waitUntil(sw.clients.claim()); });

sw.addEventListener("push", (event) => {
  const msg = payload(event);
  event.waitUntil(sw.registration.showNotification(msg.title || "SharpEye 综治指挥台：新消息", {
    body: msg.body || "",
    tag: msg.tag || undefined,
    lang: "zh-CN",
    dir: "ltr",
    data: { open: msg.open || "" },
    requireInteraction: msg.severity === "critical",
  }));
});

sw.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const open = String((event.notification.data && event.notification.data.open) || "");
  const url = new URL(open ? `/?open=${encodeURIComponent(open)}` : "/", sw.location.origin).href;
  event.waitUntil((async () => {
    const windows = await sw.clients.matchAll({ type: "window", includeUncontrolled: true });
    const console = windows.find((w) => new URL(w.url).pathname === "/");
    if (console) {
      await console.focus();
      console.postMessage({ type: "sharpeye.open", open });
      return;
    }
    await sw.clients.openWindow(url);
  })());
});
