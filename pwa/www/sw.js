// The PWA's service worker: precaches the shell under a versioned cache (heph-pwa-v<version>), serves it
// offline, deletes every other heph-pwa-* cache when a new version activates, and never caches API
// responses (/sync/, /auth/, /config, /healthz, /metrics always go to the network).
// `cargo xtask pwa` replaces the version and the asset list below.
const VERSION = "__HEPH_PWA_VERSION__";
const ASSETS = ["__HEPH_PWA_ASSETS__"];
const CACHE = `heph-pwa-v${VERSION}`;
const API = [/^\/sync\//, /^\/auth\//, /^\/config$/, /^\/healthz$/, /^\/metrics$/];

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(ASSETS.map((a) => new Request(a, { cache: 'reload' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('heph-pwa-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'version' && event.source) event.source.postMessage({ sw_version: VERSION, cache: CACHE });
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (API.some((re) => re.test(url.pathname))) return; // network only, never cached
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const key = req.mode === 'navigate' ? './' : req;
    const hit = await cache.match(key, { ignoreSearch: req.mode === 'navigate' });
    if (hit) return hit;
    try {
      return await fetch(req);
    } catch (e) {
      if (req.mode === 'navigate') {
        const shell = await cache.match('./');
        if (shell) return shell;
      }
      return new Response('offline and not cached', { status: 503, headers: { 'content-type': 'text/plain' } });
    }
  })());
});
