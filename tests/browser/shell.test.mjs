// The PWA shell and the browser replica in real Chromium against the real hub (`hephd --mode server`, dev
// mode, serving the web root): views and screenshots, restart persistence, offline shell from the service
// worker, bad input (no OPFS, corrupted OPFS database, bad pasted token).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let hub = null;
const ready = h.chromiumPath() && h.webRootBuilt() && h.binPath('hephd');

function need(t) {
  return h.requireTool(t, 'chromium, the built web root (cargo xtask pwa) and hephd', ready);
}

before(async () => { if (ready) hub = await h.startHub(); });
after(async () => { if (hub) await hub.stop(); });

async function openApp(profile, opts) {
  const b = await h.launch(profile, opts);
  await b.page.goto(hub.url);
  const state = await h.appState(b.page);
  return { ...b, state };
}

async function listTitles(page) {
  return page.$$eval('#list li .title', (els) => els.map((e) => e.textContent));
}

test('views render, capture shows at once, detail and settings work (screenshots)', async (t) => {
  if (!need(t)) return;
  const b = await openApp(h.tempDir('heph-prof-'));
  try {
    assert.equal(b.state, 'ready', `worker state: ${b.state}; errors: ${b.errors.join('; ')}`);
    const rpc = (m, p) => b.page.evaluate(([m, p]) => window.heph.rpc(m, p), [m, p]);
    await rpc('task.add', { title: 'Renew the passport', do_date: 'today', project: 'admin', attention: 'a1' });
    await rpc('task.add', { title: 'Sharpen the chisels', do_date: 'today', project: 'workshop', attention: 'a2', tags: ['tools'] });
    await rpc('task.add', { title: 'Plan the garden beds', project: 'home', attention: 'a4' });
    await rpc('task.add', { title: 'Call the plumber about the leak', do_date: 'yesterday', project: 'home' });
    await b.page.click('.tabs button[data-view=next]');
    await b.page.click('.tabs button[data-view=today]');
    await b.page.waitForSelector('#list li');
    // Quick capture: the row is in the list right after submit (optimistic), then confirmed by the worker.
    await b.page.fill('#capture-text', 'Buy sandpaper');
    await b.page.click('#capture-add');
    const titles = await listTitles(b.page);
    assert.ok(titles.includes('Buy sandpaper'), `capture visible at once: ${titles}`);
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('Buy sandpaper')));
    assert.equal(await b.page.locator('#outbox').isHidden(), true, 'outbox drained');
    await h.shot(b.page, 'today');

    await b.page.click('.tabs button[data-view=next]');
    await b.page.waitForFunction(() => document.querySelectorAll('#list li').length >= 4);
    await h.shot(b.page, 'next');

    await b.page.click('.tabs button[data-view=projects]');
    await b.page.waitForSelector('#project-bar button');
    await b.page.click('#project-bar button:has-text("home")');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list .title')].every((e) => /garden|plumber/.test(e.textContent)) && document.querySelectorAll('#list li').length === 2);
    await h.shot(b.page, 'projects');

    await b.page.click('.tabs button[data-view=search]');
    await b.page.fill('#search-text', 'chisels');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list .title')].some((e) => e.textContent.includes('chisels')));
    assert.deepEqual(await listTitles(b.page), ['Sharpen the chisels']);
    await h.shot(b.page, 'search');

    // Detail: context, log, edit, done.
    await b.page.click('#list li');
    await b.page.waitForSelector('#detail:not([hidden])');
    await b.page.fill('#context', '# Chisels\n\n- 6 mm\n- 12 mm\n');
    await b.page.click('#context-save');
    await b.page.fill('#log-text', 'honed the 6 mm one');
    await b.page.click('#log-add button');
    await b.page.waitForFunction(() => document.querySelector('#log').textContent.includes('honed the 6 mm one'));
    assert.match(await b.page.inputValue('#context'), /12 mm/);
    await h.shot(b.page, 'detail');
    await b.page.fill('#edit-title', 'Sharpen all the chisels');
    await b.page.click('#edit button[type=submit]');
    await b.page.waitForSelector('#detail', { state: 'hidden' });
    const shown = await rpc('search', { query: 'chisels' });
    assert.equal(shown[0].title, 'Sharpen all the chisels');

    await b.page.click('#open-settings');
    await b.page.waitForFunction(() => document.querySelector('#device-info').textContent.includes('App version'));
    const info = await b.page.textContent('#device-info');
    assert.match(info, /App version0\.1\.0-[0-9a-f]{8}/, 'version shown in settings');
    assert.match(info, /Origin[0-9A-Z]{26}/);
    await h.shot(b.page, 'settings');
    await b.page.click('#settings-close');

    // Done from the list.
    await b.page.click('.tabs button[data-view=today]');
    // Wait for the today list itself: the search result shown before may still be on screen.
    await b.page.waitForSelector('#list li:has-text("Renew the passport")');
    const before = (await listTitles(b.page)).length;
    await b.page.click('#list li:has-text("Renew the passport") .check');
    await b.page.waitForFunction((n) => document.querySelectorAll('#list li').length === n - 1, before);
    const done = await rpc('task.list', { state: 'done' });
    assert.ok(done.some((x) => x.title === 'Renew the passport'));
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});

test('the replica survives a browser restart with the same profile', async (t) => {
  if (!need(t)) return;
  const profile = h.tempDir('heph-prof-');
  let b = await openApp(profile);
  let origin;
  try {
    assert.equal(b.state, 'ready');
    await b.page.fill('#capture-text', 'Persist me across restarts');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => !localStorage.getItem('heph-outbox') || localStorage.getItem('heph-outbox') === '[]');
    origin = (await b.page.evaluate(() => window.heph.rpc('store.info'))).origin;
  } finally {
    await b.close();
  }
  b = await openApp(profile);
  try {
    assert.equal(b.state, 'ready');
    const all = await b.page.evaluate(() => window.heph.rpc('task.list', {}));
    assert.ok(all.some((x) => x.title === 'Persist me across restarts'), JSON.stringify(all));
    assert.equal((await b.page.evaluate(() => window.heph.rpc('store.info'))).origin, origin, 'same origin after restart');
  } finally {
    await b.close();
  }
});

test('the shell loads offline from the service worker, which never caches API responses', async (t) => {
  if (!need(t)) return;
  const profile = h.tempDir('heph-prof-');
  const b = await openApp(profile);
  try {
    await b.page.evaluate(async () => { await navigator.serviceWorker.ready; });
    await b.page.reload();
    await h.appState(b.page);
    assert.ok(await b.page.evaluate(() => !!navigator.serviceWorker.controller), 'page controlled by the SW');
    await b.page.evaluate(() => fetch('/config').then((r) => r.json()));
    await b.page.evaluate(() => window.heph.rpc('task.add', { title: 'Written before going offline', do_date: 'today' }));
    const caches = await b.page.evaluate(async () => {
      const out = {};
      for (const k of await caches.keys()) out[k] = (await (await caches.open(k)).keys()).map((r) => new URL(r.url).pathname);
      return out;
    });
    const names = Object.keys(caches);
    assert.equal(names.length, 1, `one cache: ${names}`);
    assert.match(names[0], /^heph-pwa-v0\.1\.0-[0-9a-f]{8}$/);
    const paths = caches[names[0]];
    assert.ok(paths.includes('/pkg/heph_pwa_bg.wasm') && paths.includes('/worker.js') && paths.includes('/'), paths.join(' '));
    assert.ok(!paths.some((p) => p.startsWith('/sync/') || p === '/config' || p.startsWith('/auth/')), `no API responses cached: ${paths}`);

    await b.context.setOffline(true);
    await b.page.reload();
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.waitForSelector('#list li');
    assert.ok((await listTitles(b.page)).includes('Written before going offline'));
    await b.page.fill('#capture-text', 'Captured while offline');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('Captured while offline')));
    await h.shot(b.page, 'offline');
    await b.context.setOffline(false);
  } finally {
    await b.close();
  }
});

test('a new build evicts the old cache on the next load', async (t) => {
  if (!need(t)) return;
  // Two web roots differing in one asset: the second's sw.js carries a new version.
  const rootA = h.tempDir('heph-webA-');
  const rootB = h.tempDir('heph-webB-');
  h.fs.cpSync(h.WEB_ROOT, rootA, { recursive: true });
  h.fs.cpSync(h.WEB_ROOT, rootB, { recursive: true });
  const swB = h.path.join(rootB, 'sw.js');
  const verA = h.fs.readFileSync(swB, 'utf8').match(/const VERSION = "([^"]+)"/)[1];
  h.fs.writeFileSync(swB, h.fs.readFileSync(swB, 'utf8').replace(verA, `${verA}x`));
  h.fs.appendFileSync(h.path.join(rootB, 'app.css'), '\n/* b */\n');
  const hubA = await h.startHub({ webRoot: rootA });
  const port = hubA.port;
  const profile = h.tempDir('heph-prof-');
  let b = await h.launch(profile);
  try {
    await b.page.goto(hubA.url);
    await h.appState(b.page);
    await b.page.evaluate(async () => { await navigator.serviceWorker.ready; });
    assert.deepEqual(await b.page.evaluate(() => caches.keys()), [`heph-pwa-v${verA}`]);
  } finally {
    await b.close();
    await hubA.stop();
  }
  const hubB = await h.startHub({ webRoot: rootB, port, dir: hubA.dir });
  b = await h.launch(profile);
  try {
    await b.page.goto(hubB.url);
    await h.appState(b.page);
    const end = Date.now() + 15000;
    let keys = [];
    while (Date.now() < end) {
      keys = await b.page.evaluate(() => caches.keys());
      if (keys.length === 1 && keys[0] === `heph-pwa-v${verA}x`) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(keys, [`heph-pwa-v${verA}x`], 'only the new cache is left');
  } finally {
    await b.close();
    await hubB.stop();
  }
});

test('no OPFS: the page says so, keeps the capture, and never goes blank', async (t) => {
  if (!need(t)) return;
  const b = await h.launch(h.tempDir('heph-prof-'), { serviceWorkers: 'block' });
  try {
    // Serve a worker whose global scope has no OPFS (as in browsers without it).
    await b.context.route('**/worker.js', async (route) => {
      const res = await route.fetch();
      const body = `delete StorageManager.prototype.getDirectory;\n${await res.text()}`;
      await route.fulfill({ response: res, body });
    });
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'failed');
    const banner = await b.page.textContent('#banner');
    assert.match(banner, /no persistent storage \(OPFS\)/);
    assert.match(banner, /Captures are kept/);
    await b.page.fill('#capture-text', 'Do not lose me');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => !document.querySelector('#outbox').hidden);
    assert.match(await b.page.textContent('#outbox'), /1 capture is waiting/);
    assert.deepEqual(JSON.parse(await b.page.evaluate(() => localStorage.getItem('heph-outbox'))).map((x) => x.title), ['Do not lose me']);
    assert.ok((await b.page.textContent('body')).includes('Today'), 'the shell is still rendered');
    await h.shot(b.page, 'no-opfs');
    assert.deepEqual(b.errors.filter((e) => e.startsWith('pageerror')), []);
  } finally {
    await b.close();
  }
});

test('a corrupted OPFS database: clear message, captures kept, reset recovers', async (t) => {
  if (!need(t)) return;
  const profile = h.tempDir('heph-prof-');
  let b = await openApp(profile);
  try {
    await b.page.evaluate(() => window.heph.rpc('task.add', { title: 'before corruption' }));
  } finally {
    await b.close();
  }
  // Overwrite the database pages inside the pool's slot files from a same-origin worker, with the app closed.
  b = await h.launch(profile, { serviceWorkers: 'block' });
  try {
    await b.page.goto(`${hub.url}icons/icon-192.png`);
    const touched = await b.page.evaluate(async () => {
      const src = `onmessage = async () => {
        const root = await navigator.storage.getDirectory();
        const dir = await (await root.getDirectoryHandle('.heph-pool')).getDirectoryHandle('.opaque');
        let n = 0;
        for await (const [name, handle] of dir.entries()) {
          if (handle.kind !== 'file') continue;
          const ah = await handle.createSyncAccessHandle();
          if (ah.getSize() > 4096 + 100) {
            const junk = new Uint8Array(4096).fill(0x5a);
            ah.write(junk, { at: 4096 });
            n += 1;
          }
          ah.flush(); ah.close();
        }
        postMessage(n);
      };`;
      const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
      return new Promise((resolve, reject) => { w.onmessage = (e) => resolve(e.data); w.onerror = (e) => reject(e.message); w.postMessage(0); });
    });
    assert.ok(touched >= 1, `corrupted ${touched} slot files`);
  } finally {
    await b.close();
  }
  b = await openApp(profile);
  try {
    assert.equal(b.state, 'failed');
    const banner = await b.page.textContent('#banner');
    assert.match(banner, /damaged/);
    assert.match(banner, /Reset the local replica/);
    await b.page.fill('#capture-text', 'captured while damaged');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => !document.querySelector('#outbox').hidden);
    await h.shot(b.page, 'corrupt');
    b.page.once('dialog', (d) => d.accept());
    await b.page.click('#banner button');
    await b.page.waitForFunction(() => window.heph.state() === 'ready' && document.querySelector('#outbox').hidden, null, { timeout: 20000 });
    const all = await b.page.evaluate(() => window.heph.rpc('task.list', {}));
    assert.deepEqual(all.map((x) => x.title), ['captured while damaged']);
  } finally {
    await b.close();
  }
});

test('a pasted token that is garbage or expired is refused with a clear message', async (t) => {
  if (!need(t)) return;
  const b = await openApp(h.tempDir('heph-prof-'));
  try {
    await b.page.click('#open-settings');
    await b.page.click('summary');
    await b.page.fill('#paste-token', 'not a token');
    await b.page.click('#paste button');
    await b.page.waitForSelector('#banner:not([hidden])');
    assert.match(await b.page.textContent('#banner'), /not a JWT access token/);
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const expired = `${b64({ alg: 'RS256' })}.${b64({ sub: 'x', exp: 1000 })}.sig`;
    await b.page.fill('#paste-token', expired);
    await b.page.click('#paste button');
    await b.page.waitForFunction(() => document.querySelector('#banner').textContent.includes('already expired'));
    assert.equal((await b.page.evaluate(() => window.heph.rpc('auth.status'))).logged_in, false);
  } finally {
    await b.close();
  }
});

test('a second tab of the same profile says the app is open elsewhere and keeps its captures', async (t) => {
  if (!need(t)) return;
  const b = await openApp(h.tempDir('heph-prof-'));
  try {
    assert.equal(b.state, 'ready');
    const second = await b.context.newPage();
    await second.goto(hub.url);
    assert.equal(await h.appState(second), 'failed');
    assert.match(await second.textContent('#banner'), /already open in another tab/);
    await second.fill('#capture-text', 'from the second tab');
    await second.click('#capture-add');
    await second.waitForFunction(() => !document.querySelector('#outbox').hidden);
    await second.close();
    // The first tab still works, and picks the outbox capture up on its next load (same localStorage).
    await b.page.reload();
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list .title')].some((e) => e.textContent === 'from the second tab'), null, { timeout: 15000 });
  } finally {
    await b.close();
  }
});

test('voice capture is offered only where the Web Speech API exists', async (t) => {
  if (!need(t)) return;
  let b = await openApp(h.tempDir('heph-prof-'));
  try {
    const has = await b.page.evaluate(() => !!(window.SpeechRecognition || window.webkitSpeechRecognition));
    assert.equal(await b.page.locator('#capture-voice').isVisible(), has);
  } finally {
    await b.close();
  }
  b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.context.addInitScript(() => { delete window.SpeechRecognition; delete window.webkitSpeechRecognition; });
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'ready');
    assert.equal(await b.page.locator('#capture-voice').isVisible(), false, 'hidden without the API');
    assert.equal(await b.page.locator('#capture-add').isVisible(), true, 'text capture still there');
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
});

test('storage quota exhausted: the page says storage is full and what to do, keeps captures, and recovers', async (t) => {
  if (!need(t)) return;
  const outboxTitles = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('heph-outbox') || '[]').map((x) => x.title));
  const titlesOf = async (page) => (await page.evaluate(() => window.heph.rpc('task.list', {}))).map((x) => x.title).sort();
  // The origin's quota is made tiny through the DevTools protocol (the same limit a full disk or a small
  // browser quota puts on OPFS writes); omitting quotaSize gives the real quota back.
  const setQuota = (cdp, quotaSize) => cdp.send('Storage.overrideQuotaForOrigin', quotaSize === undefined ? { origin: own.base } : { origin: own.base, quotaSize });
  // A hub of its own, so the replica holds only what this test writes.
  const own = await h.startHub();
  t.after(() => own.stop());

  // 1. The quota runs out while the app is open.
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(own.url);
    assert.equal(await h.appState(b.page), 'ready');
    const cdp = await b.context.newCDPSession(b.page);
    await b.page.fill('#capture-text', 'stored before the storage filled up');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('stored before')));
    await setQuota(cdp, 1);
    // Writes that fit in space the files already hold (or the browser granted ahead) still succeed: write
    // large tasks, then small ones, until SQLite is refused space; a capture then needs more than is left.
    const fill = (prefix, contextBytes) => b.page.evaluate(async ([prefix, contextBytes]) => {
      const context = contextBytes ? Array.from({ length: contextBytes / 32 }, (_, i) => `${i.toString(36).padStart(31, '.')}\n`).join('') : undefined;
      for (let i = 0; i < 4000; i += 1) {
        try { await window.heph.rpc('task.add', { title: `${prefix} ${i}`, context }); } catch (e) { return { n: i, e }; }
      }
      return { n: 4000, e: null };
    }, [prefix, contextBytes]);
    const big = await fill('big filler', 256 << 10);
    assert.equal(big.e && big.e.code, 'quota', `a large write is refused once the quota is used up: ${JSON.stringify(big)}`);
    const small = await fill('filler', 0);
    assert.equal(small.e && small.e.code, 'quota', `a small write is refused once the quota is used up: ${JSON.stringify(small)}`);
    const stored = ['stored before the storage filled up', ...Array.from({ length: big.n }, (_, i) => `big filler ${i}`),
      ...Array.from({ length: small.n }, (_, i) => `filler ${i}`)].sort();
    await b.page.fill('#capture-text', 'captured while the storage is full');
    await b.page.click('#capture-add');
    await b.page.waitForSelector('#banner:not([hidden]) #storage-retry');
    const banner = await b.page.textContent('#banner');
    assert.match(banner, /storage is full/);
    assert.match(banner, /Free some space on this device or allow this site more storage/);
    assert.match(banner, /Unsent captures are kept/);
    assert.match(await b.page.textContent('#outbox'), /1 capture is waiting/);
    assert.deepEqual(await outboxTitles(b.page), ['captured while the storage is full']);
    assert.ok((await listTitles(b.page)).includes('captured while the storage is full'), 'the capture stays visible');
    assert.match(await b.page.textContent('#list'), /not saved yet · kept on this page/);
    await b.page.waitForFunction(() => /storage full/.test(document.querySelector('#sync-pill').textContent));
    // Other writes are refused the same way and change nothing.
    const edit = await b.page.evaluate(() => window.heph.rpc('task.add', { title: 'another write', context: 'x'.repeat(100000) }).then(() => null, (e) => e));
    assert.equal(edit && edit.code, 'quota', JSON.stringify(edit));
    assert.deepEqual(await titlesOf(b.page), stored);
    await h.shot(b.page, 'storage-full');

    // 2. A reload while still full: the replica opens (reads need no space), the list renders, the capture stays.
    await b.page.reload();
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.waitForSelector('#banner:not([hidden]) #storage-retry');
    assert.match(await b.page.textContent('#banner'), /storage is full/);
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list .title')].some((e) => e.textContent.includes('stored before')));
    assert.deepEqual(await outboxTitles(b.page), ['captured while the storage is full']);
    // "Try again" while still full changes nothing and says so again.
    await b.page.click('#storage-retry');
    await b.page.waitForSelector('#banner:not([hidden]) #storage-retry');
    assert.deepEqual(await outboxTitles(b.page), ['captured while the storage is full']);

    // 3. Space is back: "Try again" stores the capture, the banner goes, nothing is duplicated.
    const cdp2 = await b.context.newCDPSession(b.page);
    await setQuota(cdp2, undefined);
    await b.page.click('#storage-retry');
    await b.page.waitForFunction(() => document.querySelector('#banner').hidden && document.querySelector('#outbox').hidden);
    await b.page.waitForFunction(() => !/storage full/.test(document.querySelector('#sync-pill').textContent));
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('captured while the storage is full')));
    assert.deepEqual(await titlesOf(b.page), [...stored, 'captured while the storage is full'].sort());
    await b.page.fill('#capture-text', 'captured after space was freed');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('after space was freed')));
    assert.deepEqual(b.errors.filter((e) => e.startsWith('pageerror')), []);
  } finally {
    await b.close();
  }

  // 4. No space at all from the first start: the pool cannot even be created. The shell renders, captures are
  // kept, and "Try again" opens the replica once space is back.
  const c = await h.launch(h.tempDir('heph-prof-'));
  try {
    const cdp = await c.context.newCDPSession(c.page);
    await setQuota(cdp, 1);
    await c.page.goto(own.url);
    assert.equal(await h.appState(c.page), 'failed');
    await c.page.waitForSelector('#banner:not([hidden]) #storage-retry');
    assert.match(await c.page.textContent('#banner'), /storage is full/);
    assert.ok((await c.page.textContent('body')).includes('Today'), 'the shell is still rendered');
    await c.page.fill('#capture-text', 'first capture on a full device');
    await c.page.click('#capture-add');
    await c.page.waitForFunction(() => !document.querySelector('#outbox').hidden);
    assert.deepEqual(await outboxTitles(c.page), ['first capture on a full device']);
    await h.shot(c.page, 'storage-full-at-start');
    await setQuota(cdp, undefined);
    await c.page.click('#storage-retry');
    await c.page.waitForFunction(() => window.heph.state() === 'ready' && document.querySelector('#outbox').hidden && document.querySelector('#banner').hidden, null, { timeout: 20000 });
    assert.deepEqual(await titlesOf(c.page), ['first capture on a full device']);
    assert.deepEqual(c.errors.filter((e) => e.startsWith('pageerror')), []);
  } finally {
    await c.close();
  }
});
