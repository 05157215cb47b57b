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
