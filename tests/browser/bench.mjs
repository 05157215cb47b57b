// PWA benchmarks (run by hand; figures go to docs/benchmarks.md "## PWA"):
//   node tests/browser/bench.mjs            (needs the web root from `cargo xtask pwa`, hephd and heph built)
// 1. bytes transferred on first load, gzipped (every shell asset the service worker precaches);
// 2. cold start (a new browser process on the same profile) to the first rendered list, 10,000 tasks;
// 3. capture latency with 10,000 tasks: submit → row visible, and → row confirmed by the worker;
// 4. bring-up of ~100,000 ops from the hub into a fresh browser replica (ops/s of the first sync);
//    HEPH_BENCH_NO_WRITE_BATCH=1 runs it without the OPFS write batching (pwa/www/write-batch.js);
//    HEPH_BENCH_BRINGUP_RUNS sets the number of bring-up runs (default 3).
import * as zlib from 'node:zlib';
import * as h from './harness.mjs';

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const RUNS = Number(process.env.HEPH_BENCH_RUNS || 5);

function transferSize() {
  const files = [];
  const walk = (d) => {
    for (const e of h.fs.readdirSync(d, { withFileTypes: true })) {
      const p = h.path.join(d, e.name);
      if (e.isDirectory()) walk(p); else files.push(p);
    }
  };
  walk(h.WEB_ROOT);
  let raw = 0; let gz = 0; let wasmRaw = 0; let wasmGz = 0;
  for (const f of files) {
    const b = h.fs.readFileSync(f);
    const g = zlib.gzipSync(b, { level: 9 }).length;
    raw += b.length; gz += g;
    if (f.endsWith('.wasm')) { wasmRaw += b.length; wasmGz += g; }
  }
  return { files: files.length, raw, gz, wasmRaw, wasmGz };
}

function twExport(n, offset = 0) {
  const tasks = [];
  for (let i = 0; i < n; i += 1) {
    const day = String(1 + (i % 28)).padStart(2, '0');
    tasks.push({
      uuid: `00000000-0000-4000-8000-${String(offset + i).padStart(12, '0')}`,
      description: `Benchmark task ${offset + i} about ${['paint', 'wood', 'garden', 'taxes', 'bikes'][i % 5]}`,
      status: i % 10 === 0 ? 'completed' : 'pending',
      project: `p${i % 20}`,
      tags: i % 3 === 0 ? ['bench'] : [],
      entry: '20261101T090000Z',
      scheduled: i % 2 === 0 ? `202612${day}T000000Z` : undefined,
    });
  }
  return JSON.stringify(tasks);
}

const out = {};
const size = transferSize();
out.transfer = size;
console.log(`transfer: ${size.files} files, ${(size.raw / 1e6).toFixed(2)} MB raw, ${(size.gz / 1e6).toFixed(3)} MB gzipped (wasm ${(size.wasmGz / 1e6).toFixed(3)} MB gzipped)`);

let hub = await h.startHub();
let b;
try {
  // 2 + 3: a replica with 10,000 tasks (HEPH_BENCH_ONLY=bringup skips to 4).
  if (process.env.HEPH_BENCH_ONLY !== 'bringup') {
  const profile = h.tempDir('heph-bench-');
  b = await h.launch(profile);
  await b.page.goto(hub.url);
  await h.appState(b.page, 60000);
  const t0 = Date.now();
  const rep = await b.page.evaluate((data) => window.heph.rpc('import.taskwarrior', { data }), twExport(10000));
  console.log(`imported ${rep.created} tasks in ${Date.now() - t0} ms`);
  await b.page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await b.close();
  const starts = [];
  for (let i = 0; i < RUNS; i += 1) {
    b = await h.launch(profile);
    await b.page.goto(hub.url);
    await b.page.waitForFunction(() => window.heph && window.heph.perf.firstListMs !== null, null, { timeout: 60000 });
    starts.push(await b.page.evaluate(() => window.heph.perf.firstListMs));
    if (i < RUNS - 1) await b.close();
  }
  out.coldStartMs = median(starts);
  console.log(`cold start to first list (10k tasks): median ${out.coldStartMs.toFixed(0)} ms of [${starts.map((x) => x.toFixed(0)).join(', ')}]`);
  const vis = []; const conf = [];
  for (let i = 0; i < 10; i += 1) {
    const r = await b.page.evaluate(async (i) => {
      const title = `bench capture ${i} ${Math.random()}`;
      const input = document.querySelector('#capture-text');
      input.value = title;
      const t = performance.now();
      let seen = null;
      const done = new Promise((resolve) => {
        const check = () => {
          const rows = [...document.querySelectorAll('#list li')].filter((li) => li.textContent.includes(title));
          if (rows.length && seen === null) seen = performance.now() - t;
          if (rows.some((li) => li.dataset.id)) { obs.disconnect(); resolve(performance.now() - t); }
        };
        const obs = new MutationObserver(check);
        obs.observe(document.querySelector('#list'), { childList: true, subtree: true });
      });
      document.querySelector('#capture').requestSubmit();
      const confirmed = await done;
      return { seen, confirmed };
    }, i);
    vis.push(r.seen); conf.push(r.confirmed);
    await new Promise((res) => setTimeout(res, 300));
  }
  out.captureVisibleMs = median(vis);
  out.captureConfirmedMs = median(conf);
  console.log(`capture (10k tasks): visible median ${out.captureVisibleMs.toFixed(1)} ms, confirmed in the list median ${out.captureConfirmedMs.toFixed(1)} ms`);
  await b.close();
  }

  // 4: bring-up from a second hub (the first one's owner is the benchmark profile's).
  await hub.stop();
  hub = await h.startHub();
  const native = h.tempDir('heph-bench-native-');
  const file = h.path.join(native, 'tw.json');
  const n = Number(process.env.HEPH_BENCH_BRINGUP_TASKS || 25000);
  h.fs.writeFileSync(file, twExport(n, 100000));
  let t1 = Date.now();
  h.heph(native, ['import', 'taskwarrior', file]);
  h.heph(native, ['sync', '--hub-url', hub.base]);
  const ops = h.heph(native, ['info', '--json'], { json: true }).ops;
  console.log(`native: ${n} tasks = ${ops} ops imported and pushed in ${Date.now() - t1} ms`);
  // The same bring-up by a fresh native spoke (debug or release `heph`, whichever harness.binPath finds), for the ratio.
  const fresh = h.tempDir('heph-bench-fresh-');
  t1 = Date.now();
  h.heph(fresh, ['sync', '--hub-url', hub.base]);
  out.nativeBringUpOpsPerSec = ops / ((Date.now() - t1) / 1000);
  console.log(`native bring-up (${h.binPath('heph')}): ${ops} ops in ${Date.now() - t1} ms (whole process)`);
  // One bring-up into a fresh profile; `batch = false` serves a write-batch.js that wraps nothing.
  const bringUp = async (batch, label) => {
    b = await h.launch(h.tempDir('heph-bench-'), batch ? {} : { serviceWorkers: 'block' });
    if (!batch) {
      await b.context.route('**/write-batch.js', (route) => route.fulfill({
        contentType: 'text/javascript', body: 'export const stats = { writes: 0, fileWrites: 0, bytes: 0 };\nexport function drainAll() {}\n',
      }));
    }
    await b.page.goto(hub.url);
    await h.appState(b.page, 60000);
    const run = await h.waitForBringUp(b.page, ops);
    const io = await b.page.evaluate(() => window.heph.rpc('pwa.io'));
    console.log(`bring-up ${label}: ${run.pulled_ops} ops in ${run.duration_ms} ms (SQLite writes ${io.writes}, OPFS write calls ${io.fileWrites}, ${(io.bytes / 1e6).toFixed(1)} MB)`);
    await b.close();
    return run.pulled_ops / (run.duration_ms / 1000);
  };
  // HEPH_BENCH_NO_WRITE_BATCH=1: without write batching only; HEPH_BENCH_AB=1: each run does both, in
  // alternating order, and the per-pair ratio is reported (robust on a noisy machine).
  const mode = process.env.HEPH_BENCH_AB === '1' ? 'ab' : process.env.HEPH_BENCH_NO_WRITE_BATCH === '1' ? 'off' : 'on';
  const rates = [];
  const offRates = [];
  const ratios = [];
  for (let i = 0; i < Number(process.env.HEPH_BENCH_BRINGUP_RUNS || Math.min(RUNS, 3)); i += 1) {
    if (mode === 'on') rates.push(await bringUp(true, `run ${i + 1}`));
    else if (mode === 'off') rates.push(await bringUp(false, `run ${i + 1} (no write batching)`));
    else {
      const first = i % 2 === 0;
      const a = await bringUp(first, `run ${i + 1}${first ? '' : ' (no write batching)'}`);
      const c = await bringUp(!first, `run ${i + 1}${first ? ' (no write batching)' : ''}`);
      const [on, off] = first ? [a, c] : [c, a];
      rates.push(on); offRates.push(off); ratios.push(on / off);
    }
  }
  if (mode === 'ab') {
    out.bringUpNoBatchOpsPerSec = median(offRates);
    out.batchSpeedup = median(ratios);
    console.log(`bring-up without write batching: median ${out.bringUpNoBatchOpsPerSec.toFixed(0)} ops/s; speed-up with it: median ${out.batchSpeedup.toFixed(2)}x of [${ratios.map((r) => r.toFixed(2)).join(', ')}]`);
  }
  out.bringUpOpsPerSec = median(rates);
  console.log(`bring-up: median ${out.bringUpOpsPerSec.toFixed(0)} ops/s`);
} finally {
  await hub.stop();
}
console.log(JSON.stringify(out));
