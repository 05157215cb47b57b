// The PWA's dedicated worker: owns the replica (SQLite on OPFS through the wasm spoke core), the tokens,
// device-code login through the hub's relay, and background sync. The UI talks to it with
// {id, method, params} messages and gets {id, ok} or {id, err: {code, message, hint}} back; it also
// receives {event, ...} notifications (ready, open_failed, sync).
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
  } catch (e) {
    spoke = null;
    openError = parseErr(e);
    post({ event: 'open_failed', error: openError });
  }
}

const loaded = init().then(open, (e) => {
  openError = parseErr(e);
  post({ event: 'open_failed', error: openError });
});

/** Calls the spoke core; throws an error body. */
export function call(method, params) {
  if (!spoke) throw (openError || { code: 'storage', message: 'the replica is not open', hint: 'Reload the page.' });
  const out = spoke.call(method, JSON.stringify(params ?? null));
  return JSON.parse(out);
}

const local = {
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
  'auth.status': () => auth.status(),
  'auth.start': (p) => auth.start(p),
  'auth.poll': (p) => auth.poll(p),
  'auth.paste': (p) => auth.paste(p),
  'auth.logout': () => auth.logout(),
};

self.onmessage = async (ev) => {
  const { id, method, params } = ev.data || {};
  await loaded;
  try {
    let ok;
    if (local[method]) ok = await local[method](params || {});
    else ok = call(method, params);
    post({ id, ok });
  } catch (e) {
    post({ id, err: parseErr(e) });
  }
};

self.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  post({ event: 'error', error: parseErr(ev.reason) });
});
