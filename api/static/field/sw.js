// @ts-check
/// <reference lib="webworker" />
// The field app's service worker (scope /field/): the app's own files are kept in a cache so the app opens
// without a network; calls to the hub's API always go to the network (the outbox in IndexedDB keeps what could
// not be sent). It also shows task notifications (任务提醒, Web Push from the hub: governance/channel.py
// push_payload) and opens the task they name when tapped. The console's service worker (/static/sw.js, scope
// /static/console-push/, for Web Push only) is another one.

const CACHE = "sharpeye-field-v3";
const SHELL = [
  "/field/",
  "/field/app.js",
  "/field/dom.js",
  "/field/i18n.js",
  "/field/queue.js",
  "/field/photo.js",
  "/field/voice.js",
  "/field/push.js",
  "/field/style.css",
  "/field/manifest.webmanifest",
  "/field/icon-192.png",
  "/field/icon-512.png",
];

const worker = /** @type {{ skipWaiting(): Promise<void>, registration: ServiceWorkerRegistration, location: Location,
  clients: { claim(): Promise<void>, matchAll(o: object): Promise<WindowClient[]>, openWindow(url: string): Promise<unknown> },
  addEventListener(type: string, listener: (event: any) => void): void }} */ (/** @type {unknown} */ (self));

worker.addEventListener("install", (/** @type {ExtendableEvent} */ event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => worker.skipWaiting()));
});

worker.addEventListener("activate", (/** @type {ExtendableEvent} */ event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("sharpeye-field-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => worker.clients.claim()),
  );
});

worker.addEventListener("fetch", (/** @type {FetchEvent} */ event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith("/field/")) return;
  // the app's files: the network first (a new version shows at once), the cache when offline
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(event.request, copy));
        }
        return response;
      })
      .catch(() => caches.match(event.request, { ignoreSearch: true }).then((hit) => hit || Response.error())),
  );
});

worker.addEventListener("push", (/** @type {PushEvent} */ event) => {
  /** @type {{ title?: string, body?: string, tag?: string, open?: string, severity?: string }} */
  let msg;
  try { msg = event.data ? event.data.json() : {}; } catch { msg = { body: event.data ? event.data.text() : "" }; }
  event.waitUntil(worker.registration.showNotification(msg.title || "网格通：新任务", {
    body: msg.body || "",
    tag: msg.tag || undefined,
    lang: "zh-CN",
    icon: "/field/icon-192.png",
    data: { open: msg.open || "" },
    requireInteraction: msg.severity === "critical",
  }));
});

worker.addEventListener("notificationclick", (/** @type {NotificationEvent} */ event) => {
  event.notification.close();
  const open = String((event.notification.data && event.notification.data.open) || "");
  const task = open.startsWith("case:") ? open.slice(5) : "";
  const url = new URL(task ? `/field/?task=${encodeURIComponent(task)}` : "/field/", worker.location.origin).href;
  event.waitUntil((async () => {
    const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
    const app = windows.find((w) => new URL(w.url).pathname.startsWith("/field/"));
    if (app) {
      await app.focus();
      app.postMessage({ type: "sharpeye.task", task });
      return;
    }
    await worker.clients.openWindow(url);
  })());
});
