// In-app login against the real test IdP (npm oidc-provider, tests/node/idp.mjs) through the real hub's
// login relay (POST /auth/device, /auth/token): the test approves the device code on the IdP's real pages;
// then a capture syncs with the bearer token and a native spoke (with a token minted by the IdP) sees it.
// An expired token is reported in the UI and the captures stay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let idp = null;
let hub = null;
const ready = h.chromiumPath() && h.webRootBuilt() && h.binPath('hephd') && h.binPath('heph')
  && h.fs.existsSync(h.path.join(h.ROOT, 'tests/node/node_modules/oidc-provider'));
const need = (t) => h.requireTool(t, 'chromium, the web root, hephd, heph and tests/node/node_modules (npm install)', ready);

before(async () => {
  if (!ready) return;
  idp = await h.startIdp();
  hub = await h.startHub({ issuer: idp.issuer });
});
after(async () => {
  if (hub) await hub.stop();
  if (idp) await idp.stop();
});

const rpc = (page, m, p) => page.evaluate(([m, p]) => window.heph.rpc(m, p), [m, p]);

async function waitFor(fn, what, timeout = 30000) {
  const end = Date.now() + timeout;
  while (Date.now() < end) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function mint(claims = {}) {
  const res = await fetch(`${idp.issuer}/__test/mint`, { method: 'POST', body: JSON.stringify({ claims }) });
  return (await res.json()).token;
}

function tokenFile(dir, token) {
  const file = h.path.join(dir, 'token.json');
  const exp = JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).exp;
  h.fs.writeFileSync(file, JSON.stringify({
    version: 1, hub_url: hub.base, issuer: idp.issuer, client_id: 'heph', token_endpoint: '',
    access_token: token, expires_at: exp, refresh_token: null, id_token: null, scope: null,
  }), { mode: 0o600 });
  return file;
}

test('in-app device-code login through the hub relay, then sync with the bearer token', async (t) => {
  if (!need(t)) return;
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.fill('#capture-text', 'Captured before logging in');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => /log in/.test(document.querySelector('#sync-pill').textContent), null, { timeout: 15000 });
    await b.page.click('#open-settings');
    await b.page.waitForFunction(() => /Not logged in/.test(document.querySelector('#auth-state').textContent));
    await b.page.click('#login');
    await b.page.waitForSelector('#device-login:not([hidden])');
    const code = await b.page.textContent('#device-code');
    const uri = await b.page.evaluate(() => document.body.dataset.verificationUri);
    assert.match(code, /\S{4,}/);
    assert.ok(uri.startsWith(idp.issuer), `verification page on the IdP: ${uri}`);
    await h.shot(b.page, 'login');
    assert.equal(h.approveDevice(uri, code, 'alice'), 'approved');
    await b.page.waitForFunction(() => /Logged in as Alice Owner/.test(document.querySelector('#auth-state').textContent), null, { timeout: 30000 });
    // The capture made before login goes out with the token.
    await waitFor(async () => { const s = await rpc(b.page, 'sync.status'); return !s.problem && s.pending_local_ops === 0 && s.last_success_ms; }, 'sync after login');
    const st = await rpc(b.page, 'auth.status');
    assert.equal(st.sub, 'alice-sub-0001');
    assert.equal(st.refreshable, true, 'offline_access gave a refresh token');

    const native = h.tempDir('heph-native-');
    const file = tokenFile(native, await mint());
    h.heph(native, ['sync', '--hub-url', hub.base, '--token-file', file]);
    assert.ok(h.heph(native, ['list', '--json'], { json: true }).some((x) => x.title === 'Captured before logging in'));
    await b.page.click('#settings-close');
    await h.shot(b.page, 'logged-in');
  } finally {
    await b.close();
  }
});

test('an expired token: the UI says to log in again and keeps the changes', async (t) => {
  if (!need(t)) return;
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'ready');
    const now = Math.floor(Date.now() / 1000);
    const short = await mint({ exp: now + 4 });
    await rpc(b.page, 'auth.paste', { token: short });
    await waitFor(async () => { const s = await rpc(b.page, 'sync.status'); return !s.problem && s.last_success_ms; }, 'sync with the pasted token');
    await new Promise((r) => setTimeout(r, 5000));
    await rpc(b.page, 'task.add', { title: 'written after the token expired', do_date: 'today' });
    const s = await waitFor(async () => { const s = await rpc(b.page, 'sync.status'); return s.problem && s.pending_local_ops > 0 && s; }, 'an auth problem');
    assert.match(s.problem.code, /auth/);
    assert.match(`${s.problem.message} ${s.problem.hint}`, /expired|log in/i);
    await b.page.waitForFunction(() => /log in/.test(document.querySelector('#sync-pill').textContent), null, { timeout: 10000 });
    await b.page.click('#sync-pill');
    await b.page.waitForFunction(() => /Log in again|expired/.test(document.querySelector('#sync-detail').textContent + document.querySelector('#auth-state').textContent));
    await h.shot(b.page, 'expired');
    const all = await rpc(b.page, 'task.list', {});
    assert.ok(all.some((x) => x.title === 'written after the token expired'), 'the change is kept');
  } finally {
    await b.close();
  }
});
