// The PWA's dedicated worker: owns the replica (SQLite on OPFS through the wasm spoke core), the tokens,
// device-code login through the hub's relay, and background sync. The UI talks to it with
// {id, method, params} messages and gets {id, ok} or {id, err: {code, message, hint}} back; it also
// receives {event, ...} notifications (ready, open_failed, sync).
// write-batch.js wraps the OPFS access handles before the wasm module opens any (see that file).
import * as io from './write-batch.js';
import init, { WorkerSpoke } from './pkg/heph_pwa.js';
import * as auth from './auth.js';

let spoke = null;
let openError = null;

function post(msg) { self.postMessage(msg); }

function parseErr(e) {
  if (e && typeof e === 'object' && e.code && e.message) return e;
  const text = typeof e === 'string' ? e : (e && e.message) || String(e);
  try {
    const v = JSON.parse(text);
    if (v && v.code) return v;
  } catch (_) { /* not JSON */ }
  return { code: 'internal', message: text, hint: 'Reload the page.' };
}

async function open() {
  try {
    if (!self.navigator || !self.navigator.storage || !self.navigator.storage.getDirectory) {
      throw { code: 'no_opfs', message: 'this browser offers no persistent storage (OPFS)',
              hint: 'Use a current Chrome, Edge, Safari or Firefox outside private browsing. Captures are kept on this page until storage works.' };
    }
    spoke = await WorkerSpoke.open();
    openError = null;
    post({ event: 'ready' });
    schedule(0);
  } catch (e) {
    spoke = null;
    openError = parseErr(e);
    post({ event: 'open_failed', error: openError });
  }
}

// One worker per profile owns the OPFS pool: a second tab waits for nothing and says why instead of
// failing on the pool's access handles. The lock is held for the worker's whole life.
function exclusive() {
  if (!self.navigator.locks) return Promise.resolve(true);
  return new Promise((resolve) => {
    self.navigator.locks.request('heph-replica', { ifAvailable: true }, (lock) => {
      resolve(!!lock);
      return lock ? new Promise(() => {}) : undefined;
    });
  });
}

async function start() {
  if (!(await exclusive())) {
    openError = { code: 'other_tab', message: 'heph is already open in another tab or window of this browser',
                  hint: 'Use that tab, or close it and reload this one. Captures made here are kept.' };
    post({ event: 'open_failed', error: openError });
    return;
  }
  await open();
}

const loaded = init().then(start, (e) => {
  openError = parseErr(e);
  post({ event: 'open_failed', error: openError });
});

/** Calls the spoke core; throws an error body. */
export function call(method, params) {
  if (!spoke) throw (openError || { code: 'storage', message: 'the replica is not open', hint: 'Reload the page.' });
  const out = spoke.call(method, JSON.stringify(params ?? null));
  return JSON.parse(out);
}

// ------------------------------------------------------------------------------------------------ sync
// One sync at a time; a request while one runs is folded into a follow-up run. After a success the worker
// long-polls the hub (`/sync/v1/wait`) and syncs again when the heads change; failures back off up to 30 s.
let syncing = null;
let again = false;
let problem = null;
let lastTag = null;
let backoffMs = 0;
let timer = null;
let waitCtl = null;
let lastRun = null; // {duration_ms, pushed_ops, pulled_ops} of the last successful sync (benchmarks, settings)
const READS = new Set(['task.list', 'task.next', 'task.show', 'task.history', 'project.list', 'search', 'conflicts',
  'export', 'store.info', 'methods', 'sync.status', 'pwa.ping', 'pwa.storage']);

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => { syncNow().catch(() => {}); }, ms);
}

async function bearer() {
  const cfg = await auth.hubConfig();
  if (cfg.dev_mode) return '';
  return auth.accessToken();
}

async function syncOnce() {
  let token;
  token = await bearer();
  try {
    return JSON.parse(await spoke.sync(self.location.origin, token));
  } catch (e) {
    const err = parseErr(e);
    if (err.code === 'sync_auth' && token) {
      // The hub refused the token: renew it once (refresh token) and retry.
      await auth.markRejected();
      return JSON.parse(await spoke.sync(self.location.origin, await bearer()));
    }
    throw err;
  }
}

async function syncNow() {
  if (!spoke) throw openError;
  if (syncing) { again = true; return syncing; }
  syncing = (async () => {
    try {
      const started = performance.now();
      const out = await syncOnce();
      lastRun = { duration_ms: Math.round(performance.now() - started), pushed_ops: out.pushed_ops, pulled_ops: out.pulled_ops };
      problem = null;
      backoffMs = 0;
      lastTag = out.tag || null;
      post({ event: 'sync', status: await status(), changed: out.pulled_ops > 0 });
      return out;
    } catch (e) {
      problem = parseErr(e);
      post({ event: 'sync', status: await status() });
      throw problem;
    } finally {
      drainWrites();
      syncing = null;
      if (again) { again = false; schedule(0); } else if (problem) {
        // Retry by itself only when waiting can help (network, hub down); auth problems need the person.
        if (!/auth/.test(problem.code)) { backoffMs = Math.min(30000, Math.max(1000, backoffMs * 2)); schedule(backoffMs); }
      } else { longPoll(); }
    }
  })();
  return syncing;
}

async function longPoll() {
  if (waitCtl) waitCtl.abort();
  const ctl = new AbortController();
  waitCtl = ctl;
  try {
    const token = await bearer();
    const q = new URLSearchParams({ timeout_secs: '25' });
    if (lastTag) q.set('tag', lastTag);
    const res = await fetch(`/sync/v1/wait?${q}`, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store', signal: ctl.signal });
    if (!res.ok) throw new Error(`wait answered ${res.status}`);
    const body = await res.json();
    if (waitCtl !== ctl) return;
    if (body.changed || body.tag !== lastTag) schedule(0); else longPoll();
  } catch (e) {
    if (ctl.signal.aborted || waitCtl !== ctl) return;
    schedule(5000); // a failed long-poll falls back to a plain sync soon
  }
}

async function status() {
  let s = {};
  try { s = call('sync.status', {}); } catch (_) { /* replica not open */ }
  let a = { logged_in: false };
  try { a = await auth.status(); } catch (_) { /* no IndexedDB */ }
  let dev = false;
  try { dev = !!(await auth.hubConfig()).dev_mode; } catch (_) { /* offline */ }
  return { ...s, logged_in: a.logged_in, dev_mode: dev, problem, syncing: !!syncing, last_run: lastRun };
}

self.addEventListener('online', () => schedule(0));

const local = {
  'sync.now': async () => { try { await syncNow(); } catch (_) { /* reported in the status */ } return status(); },
  'sync.status': () => status(),
  // Storage recovery: wipe the OPFS pool and open a fresh replica.
  async 'pwa.reset'() {
    if (spoke) { spoke.resetReplica(); spoke.free(); spoke = null; } else { await WorkerSpoke.resetStorage(); }
    await open();
    if (!spoke) throw openError;
    return { reset: true };
  },
  async 'pwa.reopen'() { await open(); if (!spoke) throw openError; return { open: true }; },
  async 'pwa.quota'() {
    const est = self.navigator.storage && self.navigator.storage.estimate ? await self.navigator.storage.estimate() : {};
    return { usage: est.usage ?? null, quota: est.quota ?? null };
  },
  // Write batching counters: calls SQLite made vs calls that reached OPFS (benchmarks).
  'pwa.io': () => ({ ...io.stats }),
  'auth.status': () => auth.status(),
  'auth.start': (p) => auth.start(p),
  'auth.poll': async (p) => { const r = await auth.poll(p); if (r.state === 'done') { problem = null; schedule(0); } return r; },
  'auth.paste': async (p) => { const r = await auth.paste(p); problem = null; schedule(0); return r; },
  'auth.logout': async () => { if (waitCtl) waitCtl.abort(); return auth.logout(); },
};

self.onmessage = async (ev) => {
  const { id, method, params } = ev.data || {};
  await loaded;
  try {
    let ok;
    if (local[method]) ok = await local[method](params || {});
    else {
      ok = call(method, params);
      if (!READS.has(method)) schedule(150);
    }
    post({ id, ok });
  } catch (e) {
    post({ id, err: parseErr(e) });
  }
  drainWrites();
};

// Every commit syncs, which writes the batched runs out; anything left (a write outside a transaction) goes
// out here, after each request and each sync.
function drainWrites() {
  try {
    io.drainAll();
  } catch (e) {
    post({ event: 'error', error: { code: 'storage', message: `storage error: ${e && e.message ? e.message : e}`, hint: 'Reload the page. If it persists, reset the local replica in Settings.' } });
  }
}

self.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  post({ event: 'error', error: parseErr(ev.reason) });
});
