// @ts-check
/// <reference lib="webworker" />
// The field app's service worker (scope /field/): the app's own files are kept in a cache so the app opens
// without a network; calls to the hub's API always go to the network (the outbox in IndexedDB keeps what could
// not be sent). The console's service worker (/static/sw.js, scope
// /static/console-push/, for Web Push only) is another one.

const CACHE = "sharpeye-field-v2";
const SHELL = [
  "/field/",
  "/field/app.js",
  "/field/dom.js",
  "/field/i18n.js",
  "/field/queue.js",
  "/field/photo.js",
  "/field/voice.js",
  "/field/style.css",
  "/field/manifest.webmanifest",
  "/field/icon-192.png",
  "/field/icon-512.png",
];

const worker = /** @type {{ skipWaiting(): Promise<void>, clients: { claim(): Promise<void> },
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
