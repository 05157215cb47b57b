// The browser spoke converging with native spokes through the real hub (dev mode: no tokens): offline
// capture in the PWA → `heph list --json` on a native spoke after sync; the reverse direction; a concurrent
// edit from the CLI and the PWA converges; a hub that is down keeps changes and says so.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as h from './harness.mjs';

let hub = null;
const ready = h.chromiumPath() && h.webRootBuilt() && h.binPath('hephd') && h.binPath('heph');
const need = (t) => h.requireTool(t, 'chromium, the built web root (cargo xtask pwa), hephd and heph', ready);

before(async () => { if (ready) hub = await h.startHub(); });
after(async () => { if (hub) await hub.stop(); });

const rpc = (page, m, p) => page.evaluate(([m, p]) => window.heph.rpc(m, p), [m, p]);

/** Waits until the PWA reports no unsent ops and at least one successful sync after `since`. */
async function synced(page, since = 0, timeout = 20000) {
  await waitFor(async () => {
    const s = await rpc(page, 'sync.status');
    return !s.problem && s.pending_local_ops === 0 && (s.last_success_ms || 0) > since;
  }, 'a complete sync', timeout);
}

/** Polls the PWA's sync status until `pred(status)` holds. */
async function statusWhere(page, pred, what, timeout = 20000) {
  return waitFor(async () => { const s = await rpc(page, 'sync.status'); return pred(s) && s; }, what, timeout);
}

/** A fresh PWA profile on the hub and a native spoke joined to it, both synced once; the caller closes `b`. */
async function pwaAndNative() {
  const native = h.tempDir('heph-native-');
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'ready');
    h.heph(native, ['sync', '--hub-url', hub.base]);
    await synced(b.page);
  } catch (e) {
    await b.close();
    throw e;
  }
  return { native, b };
}

async function waitFor(fn, what, timeout = 20000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('offline capture in the PWA reaches a native spoke; native changes reach the PWA', async (t) => {
  if (!need(t)) return;
  const native = h.tempDir('heph-native-');
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(hub.url);
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.evaluate(async () => { await navigator.serviceWorker.ready; });
    await synced(b.page);
    // Offline: capture; it stays pending.
    await b.context.setOffline(true);
    await b.page.fill('#capture-text', 'Offline capture from the phone');
    await b.page.click('#capture-add');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list li')].some((li) => li.dataset.id && li.textContent.includes('Offline capture')));
    await statusWhere(b.page, (s) => s.pending_local_ops > 0 && s.problem, 'a pending op and a problem while offline');
    await b.page.waitForFunction(() => /unsent/.test(document.querySelector('#sync-pill').textContent), null, { timeout: 10000 });
    await h.shot(b.page, 'offline-pending');
    // Back online: the worker syncs by itself.
    const t0 = Date.now();
    await b.context.setOffline(false);
    await synced(b.page, t0, 40000);

    h.heph(native, ['sync', '--hub-url', hub.base]);
    const list = h.heph(native, ['list', '--json'], { json: true });
    assert.ok(list.some((x) => x.title === 'Offline capture from the phone'), JSON.stringify(list));

    // Reverse: a task added natively shows up in the PWA (long-poll wakes it up).
    h.heph(native, ['task', 'Added on the laptop', '--do-date', 'today']);
    h.heph(native, ['sync']);
    await b.page.waitForFunction(() => [...document.querySelectorAll('#list .title')].some((e) => e.textContent === 'Added on the laptop'), null, { timeout: 30000 });
    await h.shot(b.page, 'synced');
    const info = await rpc(b.page, 'store.info');
    const nativeInfo = h.heph(native, ['info', '--json'], { json: true });
    assert.equal(info.owner_id, nativeInfo.owner_id, 'one owner');
    assert.notEqual(info.origin, nativeInfo.origin, 'two origins');
    await waitFor(async () => (await rpc(b.page, 'store.info')).digest === h.heph(native, ['info', '--json'], { json: true }).digest
      || (h.heph(native, ['sync']), false), 'equal digests');
  } finally {
    await b.close();
  }
});

test('a concurrent edit from the CLI and the PWA converges', async (t) => {
  if (!need(t)) return;
  const { native, b } = await pwaAndNative();
  try {
    const made = await rpc(b.page, 'task.add', { title: 'Shared task', context: 'line one\nline two\nline three\n' });
    await synced(b.page, 0);
    await waitFor(() => { h.heph(native, ['sync']); return h.heph(native, ['list', '--json'], { json: true }).some((x) => x.id === made.id); }, 'native sees the task');
    // Both edit while apart: the PWA changes the title and the first line; the CLI the attention and the last line.
    await b.context.setOffline(true);
    await rpc(b.page, 'task.edit', { id: made.id, title: 'Shared task (phone)' });
    await rpc(b.page, 'task.context', { id: made.id, body: 'line ONE\nline two\nline three\n' });
    h.heph(native, ['edit', made.id, '--attention', 'a1']);
    h.heph(native, ['context', made.id, '--body', 'line one\nline two\nline THREE\n']);
    h.heph(native, ['sync']);
    const t0 = Date.now();
    await b.context.setOffline(false);
    await synced(b.page, t0, 40000);
    h.heph(native, ['sync']);
    const phone = await rpc(b.page, 'task.show', { id: made.id });
    const laptop = h.heph(native, ['show', made.id, '--json'], { json: true });
    assert.equal(phone.title, 'Shared task (phone)');
    assert.equal(phone.attention, 'a1');
    assert.equal(phone.context, 'line ONE\nline two\nline THREE\n');
    assert.equal(laptop.title, phone.title);
    assert.equal(laptop.attention, phone.attention);
    assert.equal(laptop.context, phone.context);
    assert.equal((await rpc(b.page, 'store.info')).digest, h.heph(native, ['info', '--json'], { json: true }).digest);
  } finally {
    await b.close();
  }
});

test('a hub that is down: changes are kept, the status says so, and they go out when it is back', async (t) => {
  if (!need(t)) return;
  const own = await h.startHub();
  const b = await h.launch(h.tempDir('heph-prof-'));
  try {
    await b.page.goto(own.url);
    assert.equal(await h.appState(b.page), 'ready');
    await b.page.evaluate(async () => { await navigator.serviceWorker.ready; });
    await synced(b.page);
    await own.stop();
    await rpc(b.page, 'task.add', { title: 'written while the hub is down', do_date: 'today' });
    await statusWhere(b.page, (s) => s.pending_local_ops > 0 && s.problem && /unreachable|offline/i.test(s.problem.message + s.problem.code), 'the hub-down problem');
    await b.page.click('#open-settings');
    await b.page.waitForFunction(() => /Unsent changes: [1-9]/.test(document.querySelector('#sync-detail').textContent));
    await h.shot(b.page, 'hub-down');
    const restarted = await h.startHub({ port: own.port, dir: own.dir });
    try {
      await synced(b.page, 0, 45000);
      const native = h.tempDir('heph-native-');
      h.heph(native, ['sync', '--hub-url', restarted.base]);
      assert.ok(h.heph(native, ['list', '--json'], { json: true }).some((x) => x.title === 'written while the hub is down'));
    } finally {
      await restarted.stop();
    }
  } finally {
    await b.close();
  }
});

test('an overlapping context edit is shown as a conflict in the PWA until a later edit resolves it', async (t) => {
  if (!need(t)) return;
  const { native, b } = await pwaAndNative();
  try {
    const made = await rpc(b.page, 'task.add', { title: 'Conflicting notes', do_date: 'today', context: 'alpha\nbeta\ngamma\n' });
    await synced(b.page);
    await waitFor(() => { h.heph(native, ['sync']); return h.heph(native, ['list', '--json'], { json: true }).some((x) => x.id === made.id); }, 'native sees the task');
    await b.context.setOffline(true);
    await rpc(b.page, 'task.context', { id: made.id, body: 'alpha\nbeta from the phone\ngamma\n' });
    h.heph(native, ['context', made.id, '--body', 'alpha\nbeta from the laptop\ngamma\n']);
    h.heph(native, ['sync']);
    const t0 = Date.now();
    await b.context.setOffline(false);
    await synced(b.page, t0, 40000);
    const phone = await rpc(b.page, 'task.show', { id: made.id });
    assert.equal(phone.conflicted, true, JSON.stringify(phone));
    assert.match(phone.context, /beta from the phone/);
    assert.match(phone.context, /beta from the laptop/);
    assert.deepEqual((await rpc(b.page, 'conflicts', {})).map((x) => x.id), [made.id]);
    await b.page.click('.tabs button[data-view=next]');
    await b.page.click('.tabs button[data-view=today]');
    await b.page.click(`#list li[data-id="${made.id}"]`);
    await b.page.waitForSelector('#detail-conflict:not([hidden])');
    await h.shot(b.page, 'conflict');
    // Resolving: a later edit from the PWA clears the flag everywhere.
    await b.page.fill('#context', 'alpha\nbeta from both\ngamma\n');
    await b.page.click('#context-save');
    await b.page.waitForSelector('#detail-conflict', { state: 'hidden' });
    await synced(b.page, Date.now() - 1, 40000);
    h.heph(native, ['sync']);
    assert.equal(h.heph(native, ['show', made.id, '--json'], { json: true }).conflicted, false);
  } finally {
    await b.close();
  }
});

test('skip and drop in the PWA: skip makes the next occurrence exactly as `heph skip` does, drop ends the series', async (t) => {
  if (!need(t)) return;
  const { native, b } = await pwaAndNative();
  try {
    // A recurring task and a plain one, made on the laptop, reach the PWA.
    const series = h.heph(native, ['task', 'Water the plants', '--do-date', 'today', '--recur', 'daily', '--project', 'home', '--json'], { json: true });
    const plain = h.heph(native, ['task', 'Post the letter', '--do-date', 'today', '--json'], { json: true });
    h.heph(native, ['sync']);
    await b.page.click('.tabs button[data-view=next]');
    await b.page.click('.tabs button[data-view=today]');
    await b.page.waitForFunction((id) => !!document.querySelector(`#list li[data-id="${id}"]`), series.id, { timeout: 30000 });

    // Skip applies only to a recurring task: the detail of the plain one offers no Skip, and the core refuses it.
    await b.page.click(`#list li[data-id="${plain.id}"]`);
    await b.page.waitForSelector('#detail:not([hidden])');
    assert.equal(await b.page.locator('#act-skip').isVisible(), false, 'no Skip on a plain task');
    assert.equal(await b.page.locator('#act-drop').isVisible(), true);
    await b.page.click('#detail-close');
    const refused = await b.page.evaluate((id) => window.heph.rpc('task.skip', { id }).then(() => null, (e) => e), plain.id);
    assert.ok(refused && /not recurring/.test(refused.message), JSON.stringify(refused));

    // Apart from each other, the PWA (button) and the CLI (`heph skip`) skip the same occurrence.
    await b.context.setOffline(true);
    await b.page.click(`#list li[data-id="${series.id}"]`);
    await b.page.waitForSelector('#detail:not([hidden])');
    assert.equal(await b.page.locator('#act-skip').isVisible(), true, 'Skip offered on a recurring task');
    await h.shot(b.page, 'detail-recurring');
    await b.page.click('#act-skip');
    await b.page.waitForSelector('#detail', { state: 'hidden' });
    // The skipped occurrence leaves Today; the next one is for tomorrow.
    await b.page.waitForFunction((id) => !document.querySelector(`#list li[data-id="${id}"]`), series.id);
    const phoneSkipped = await rpc(b.page, 'task.show', { id: series.id });
    assert.equal(phoneSkipped.state, 'dropped');
    assert.ok(phoneSkipped.log.some((l) => l.text === 'skipped this occurrence'), JSON.stringify(phoneSkipped.log));
    const phoneNext = (await rpc(b.page, 'task.list', {})).filter((x) => x.title === 'Water the plants');
    assert.equal(phoneNext.length, 1, JSON.stringify(phoneNext));
    assert.notEqual(phoneNext[0].id, series.id);
    assert.equal(phoneNext[0].series, series.id);
    assert.equal(phoneNext[0].recurrence, 'FREQ=DAILY');
    assert.equal(phoneNext[0].project, 'home');
    // Next shows nothing before its do date; the project's list shows every outstanding task.
    await b.page.click('.tabs button[data-view=projects]');
    await b.page.click('#project-bar button:has-text("home")');
    await b.page.waitForFunction((id) => !!document.querySelector(`#list li[data-id="${id}"]`), phoneNext[0].id);
    assert.match(await b.page.textContent(`#list li[data-id="${phoneNext[0].id}"]`), /tomorrow/);
    await h.shot(b.page, 'after-skip');

    const laptop = h.heph(native, ['skip', series.id, '--json'], { json: true });
    assert.equal(laptop.next.id, phoneNext[0].id, 'the PWA made the same next occurrence as `heph skip`');
    assert.equal(laptop.next.do_date, phoneNext[0].do_date);
    h.heph(native, ['sync']);
    const t0 = Date.now();
    await b.context.setOffline(false);
    await synced(b.page, t0, 40000);
    h.heph(native, ['sync']);
    // Two concurrent skips converge to one next occurrence on both sides.
    const phoneOpen = (await rpc(b.page, 'task.list', {})).filter((x) => x.title === 'Water the plants');
    const laptopOpen = h.heph(native, ['list', '--json'], { json: true }).filter((x) => x.title === 'Water the plants');
    assert.deepEqual(phoneOpen.map((x) => x.id), [laptop.next.id]);
    assert.deepEqual(laptopOpen.map((x) => x.id), [laptop.next.id]);
    assert.equal((await rpc(b.page, 'store.info')).digest, h.heph(native, ['info', '--json'], { json: true }).digest);

    // Drop the next occurrence in the PWA: the series ends, no further occurrence anywhere.
    await b.page.click(`#list li[data-id="${laptop.next.id}"]`);
    await b.page.waitForSelector('#detail:not([hidden])');
    await b.page.click('#act-drop');
    await b.page.waitForSelector('#detail', { state: 'hidden' });
    await b.page.waitForFunction((id) => !document.querySelector(`#list li[data-id="${id}"]`), laptop.next.id);
    assert.deepEqual((await rpc(b.page, 'task.list', {})).filter((x) => x.title === 'Water the plants'), []);
    await synced(b.page, Date.now() - 1, 40000);
    h.heph(native, ['sync']);
    assert.deepEqual(h.heph(native, ['list', '--json'], { json: true }).filter((x) => x.title === 'Water the plants'), []);
    const dropped = h.heph(native, ['list', '--state', 'dropped', '--json'], { json: true }).filter((x) => x.title === 'Water the plants');
    assert.deepEqual(dropped.map((x) => x.id).sort(), [series.id, laptop.next.id].sort());
    assert.deepEqual(b.errors.filter((e) => e.startsWith('pageerror')), []);
  } finally {
    await b.close();
  }
});
