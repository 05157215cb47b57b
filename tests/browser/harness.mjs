// Browser test harness: launches the real Debian Chromium through playwright-core with a fresh (or given)
// profile directory, serves a web root over loopback when no hub is used, saves screenshots, and starts
// the real processes the PWA scenarios need (hub, IdP, native `heph`).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../node/package.json', import.meta.url));
const { chromium } = require('playwright-core');

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEB_ROOT = process.env.HEPH_WEB_ROOT || path.join(ROOT, 'target/web');
export const SHOTS = path.join(ROOT, 'artifacts/screenshots');

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

export function chromiumPath() {
  for (const p of [process.env.HEPH_CHROMIUM, '/usr/bin/chromium', '/usr/lib/chromium/chromium']) {
    if (p && fs.existsSync(p)) return p;
  }
  return null;
}

/** Skips (when CI is unset) or fails (CI=true) when a tool is missing. */
export function requireTool(t, what, ok) {
  if (ok) return true;
  if (process.env.CI === 'true') throw new Error(`${what} is missing and CI=true: install it (see .ci/run)`);
  t.skip(`${what} is missing (set CI=true to make this a failure)`);
  return false;
}

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A persistent Chromium context on `profile` (a directory); returns {context, page, close}. */
export async function launch(profile, opts = {}) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    ...opts,
  });
  const errors = [];
  const watch = (page) => {
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  };
  context.on('page', watch);
  const page = context.pages()[0] || (await context.newPage());
  watch(page);
  return { context, page, errors, close: () => context.close() };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.webmanifest': 'application/manifest+json',
  '.png': 'image/png', '.json': 'application/json',
};

/** A minimal static server for the web root on 127.0.0.1:0 (used only where no hub is needed). */
export async function staticServer(root = WEB_ROOT) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    let p = path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, '');
    if (p.endsWith('/')) p += 'index.html';
    const file = path.join(root, p);
    if (!file.startsWith(root) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":"not_found"}');
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
      'cache-control': path.basename(file) === 'sw.js' ? 'no-cache' : 'no-cache',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)), server };
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

/** Waits until the app's worker reports ready (or failed); returns the state. */
export async function appState(page, timeout = 20000) {
  await page.waitForFunction(() => window.heph && window.heph.state() !== 'starting', null, { timeout });
  return page.evaluate(() => window.heph.state());
}

export function webRootBuilt() {
  return fs.existsSync(path.join(WEB_ROOT, 'pkg/heph_pwa_bg.wasm'));
}

export { spawn, spawnSync, fs, path };

// ------------------------------------------------------------------------------------------- processes
export function binPath(name) {
  const envName = `HEPH_BIN_${name.toUpperCase()}`;
  if (process.env[envName]) return process.env[envName];
  for (const dir of ['target/debug', 'target/release']) {
    const p = path.join(ROOT, dir, name);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch (_) { /* gone */ } } });

/** Reads lines of a child's stream until `match` returns a value; rejects on exit or timeout. */
function waitLine(child, stream, match, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    let log = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no readiness line within ${timeoutMs} ms; output:\n${log}`)), timeoutMs);
    const onData = (d) => {
      buf += d.toString();
      log += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const v = match(line);
        if (v) { clearTimeout(timer); stream.off('data', onData); resolve(v); return; }
      }
    };
    stream.on('data', onData);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${what} exited with ${code} before it was ready; output:\n${log}`)); });
  });
}

/** Starts the real hub (`hephd --mode server`) on 127.0.0.1:0 serving the web root; {url, stop}. */
export async function startHub({ issuer = null, webRoot = WEB_ROOT, dir = tempDir('heph-hub-'), port = 0 } = {}) {
  const bin = binPath('hephd');
  if (!bin) throw new Error('hephd is not built: run `cargo build --workspace --bins`');
  const args = ['--mode', 'server', '--http-addr', `127.0.0.1:${port}`, '--db', path.join(dir, 'hub.db'), '--web-root', webRoot];
  if (issuer) args.push('--oidc-issuer', issuer, '--oidc-audience', 'heph', '--oidc-client-id', 'heph', '--authorized-sub', 'alice-sub-0001');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HEPH_LOG: 'info', NO_COLOR: '1', RUST_LOG_STYLE: 'never' } });
  children.add(child);
  child.stdout.resume();
  const url = await waitLine(child, child.stderr, (l) => {
    const m = l.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    return m && m[1];
  }, 20000, 'hephd');
  child.stderr.resume();
  const stop = () => new Promise((r) => {
    if (child.exitCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
    setTimeout(() => { try { child.kill('SIGKILL'); } catch (_) { /* gone */ } }, 5000).unref();
  }).then(() => children.delete(child));
  return { url: `${url}/`, base: url, dir, stop, child, port: Number(new URL(url).port) };
}

/** Starts the real test IdP (tests/node/idp.mjs); {issuer, stop}. */
export async function startIdp(extra = []) {
  const script = path.join(ROOT, 'tests/node/idp.mjs');
  const child = spawn(process.execPath, [script, '--port', '0', ...extra], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } });
  children.add(child);
  child.stderr.resume();
  const issuer = await waitLine(child, child.stdout, (l) => (/^https?:\/\//.test(l.trim()) ? l.trim() : null), 20000, 'idp.mjs');
  child.stdout.resume();
  const stop = () => new Promise((r) => {
    if (child.exitCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
  }).then(() => children.delete(child));
  return { issuer, stop };
}

/** Approves a device code on the IdP's real verification pages as `user`. */
export function approveDevice(verificationUri, userCode, user = 'alice') {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'tests/node/idp-approve.mjs'), verificationUri, userCode, user], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`device approval failed: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

/** Runs the native CLI `heph` with a data dir; returns parsed JSON when `json` is set. */
export function heph(dataDir, args, { json = false, env = {} } = {}) {
  const bin = binPath('heph');
  if (!bin) throw new Error('heph is not built: run `cargo build --workspace --bins`');
  const r = spawnSync(bin, ['--data-dir', dataDir, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  if (r.status !== 0) throw new Error(`heph ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return json ? JSON.parse(r.stdout) : r.stdout;
}

/** Waits until the page's replica reports a finished sync that pulled at least `ops` ops; returns that sync's `last_run`. */
export async function waitForBringUp(page, ops, { timeout = 120000, poll = 200 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const s = await page.evaluate(() => window.heph.rpc('sync.status'));
    if (s.last_run && s.last_run.pulled_ops >= ops) return s.last_run;
    if (Date.now() > end) throw new Error(`bring-up did not finish: ${JSON.stringify(s.problem || s.last_run)}`);
    await new Promise((res) => setTimeout(res, poll));
  }
}
