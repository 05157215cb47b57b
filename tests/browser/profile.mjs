// CPU profile of the PWA's bring-up in the worker (run by hand, to see where a first sync spends its time):
//   node --experimental-websocket tests/browser/profile.mjs
// Pushes HEPH_BENCH_BRINGUP_TASKS (default 25,000) tasks from a native spoke to a dev-mode hub, opens a fresh
// browser profile with the remote debugging port on loopback, attaches to the dedicated worker before it runs
// (CDP Target.setAutoAttach, waitForDebuggerOnStart), records the V8 CPU profile of the whole first sync, and
// prints the functions with the most self time (wasm functions by their names-section names).
import * as h from './harness.mjs';

const PORT = Number(process.env.HEPH_PROFILE_PORT || 9339);
const TOP = Number(process.env.HEPH_PROFILE_TOP || 45);

function twExport(n) {
  const tasks = [];
  for (let i = 0; i < n; i += 1) {
    tasks.push({
      uuid: `00000000-0000-4000-8000-${String(100000 + i).padStart(12, '0')}`,
      description: `Benchmark task ${i} about ${['paint', 'wood', 'garden', 'taxes', 'bikes'][i % 5]}`,
      status: i % 10 === 0 ? 'completed' : 'pending', project: `p${i % 20}`, tags: i % 3 === 0 ? ['bench'] : [],
      entry: '20261101T090000Z', scheduled: i % 2 === 0 ? `202612${String(1 + (i % 28)).padStart(2, '0')}T000000Z` : undefined,
    });
  }
  return JSON.stringify(tasks);
}

const hub = await h.startHub();
const native = h.tempDir('heph-prof-native-');
const file = h.path.join(native, 'tw.json');
h.fs.writeFileSync(file, twExport(Number(process.env.HEPH_BENCH_BRINGUP_TASKS || 25000)));
h.heph(native, ['import', 'taskwarrior', file]);
h.heph(native, ['sync', '--hub-url', hub.base]);
const ops = h.heph(native, ['info', '--json'], { json: true }).ops;

const b = await h.launch(h.tempDir('heph-prof-'), { args: [...h.CHROMIUM_ARGS, `--remote-debugging-port=${PORT}`, '--remote-debugging-address=127.0.0.1'] });
try {
  const version = await (await fetch(`http://127.0.0.1:${PORT}/json/version`)).json();
  const ws = new WebSocket(version.webSocketDebuggerUrl);
  await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
  let nextId = 1;
  const pending = new Map();
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });
  let workerSession = null;
  let profiling = null;
  ws.onmessage = async (ev) => {
    const m = JSON.parse(ev.data);
    if (m.id && pending.has(m.id)) {
      const p = pending.get(m.id); pending.delete(m.id);
      if (m.error) p.reject(new Error(JSON.stringify(m.error))); else p.resolve(m.result);
      return;
    }
    if (m.method === 'Target.attachedToTarget') {
      const { sessionId, targetInfo, waitingForDebugger } = m.params;
      if (targetInfo.type === 'page') {
        await send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: true }, sessionId);
        if (waitingForDebugger) await send('Runtime.runIfWaitingForDebugger', {}, sessionId);
      } else if (targetInfo.type === 'worker' && !workerSession) {
        workerSession = sessionId;
        await send('Profiler.enable', {}, sessionId);
        await send('Profiler.setSamplingInterval', { interval: 200 }, sessionId);
        await send('Profiler.start', {}, sessionId);
        profiling = Date.now();
        await send('Runtime.runIfWaitingForDebugger', {}, sessionId);
      } else if (waitingForDebugger) {
        await send('Runtime.runIfWaitingForDebugger', {}, sessionId);
      }
    }
  };
  await send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true });
  // The page playwright opened is attached above; navigate it.
  await b.page.goto(hub.url);
  await h.appState(b.page, 60000);
  const run = await h.waitForBringUp(b.page, ops, { poll: 100 });
  if (!workerSession) throw new Error('never attached to the worker');
  const { profile } = await send('Profiler.stop', {}, workerSession);
  console.log(`bring-up: ${run.pulled_ops} ops in ${run.duration_ms} ms (profiled ${Date.now() - profiling} ms)`);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const n = byId.get(profile.samples[i]);
    const dt = profile.timeDeltas[i] || 0;
    total += dt;
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? cf.url.split('/').pop() : ''}`;
    self.set(key, (self.get(key) || 0) + dt);
  }
  const rows = [...self.entries()].sort((a, b2) => b2[1] - a[1]).slice(0, TOP);
  for (const [k, v] of rows) console.log(`${(v / 1000).toFixed(0).padStart(7)} ms ${(100 * v / total).toFixed(1).padStart(5)} %  ${k}`);
  if (process.env.HEPH_PROFILE_OUT) h.fs.writeFileSync(process.env.HEPH_PROFILE_OUT, JSON.stringify(profile));
  ws.close();
} finally {
  await b.close();
  await hub.stop();
}
