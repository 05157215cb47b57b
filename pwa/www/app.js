// The PWA's UI thread: renders the views and talks to the worker (which owns the replica) with messages.
// It never touches the database itself. Captures go to a small localStorage outbox first and leave it only
// once the worker has written them into the replica, so no capture is lost when storage fails.
import { PWA_VERSION } from './pwa-version.js';

const $ = (sel) => document.querySelector(sel);
const OUTBOX_KEY = 'heph-outbox';

// ---------------------------------------------------------------------------------------------- worker RPC
let worker = null;
let nextId = 1;
const waiting = new Map();
let workerState = 'starting'; // starting | ready | failed
let openError = null;
let storageFull = false; // a write was refused for lack of space (see "storage full" below)
let readyResolve;
const readyPromise = new Promise((r) => { readyResolve = r; });

function startWorker() {
  try {
    worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'heph-spoke' });
  } catch (e) {
    workerState = 'failed';
    openError = { code: 'no_worker', message: `this browser cannot start the app's worker (${e.message || e})`, hint: 'Use a current browser.' };
    readyResolve();
    return;
  }
  worker.onmessage = (ev) => {
    const m = ev.data || {};
    if (m.event) return onEvent(m);
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.err) w.reject(m.err); else w.resolve(m.ok);
  };
  worker.onerror = (ev) => {
    ev.preventDefault();
    workerState = 'failed';
    openError = { code: 'worker_crashed', message: `the app's worker failed to load: ${ev.message || 'unknown error'}`, hint: 'Reload the page. Unsent captures are kept.' };
    for (const w of waiting.values()) w.reject(openError);
    waiting.clear();
    showError(openError);
    readyResolve();
  };
}

function onEvent(m) {
  if (m.event === 'ready') {
    workerState = 'ready';
    openError = null;
    hideBanner();
    readyResolve();
    afterReady();
  } else if (m.event === 'open_failed') {
    workerState = 'failed';
    openError = m.error;
    showError(m.error, m.error && m.error.code === 'corrupt' ? resetButton() : null);
    readyResolve();
    renderOutbox();
  } else if (m.event === 'sync') {
    renderSync(m.status);
    if (m.changed) refresh();
  } else if (m.event === 'error') {
    showError(m.error);
  }
}

export function rpc(method, params) {
  return new Promise((resolve, reject) => {
    if (!worker) return reject(openError || { code: 'no_worker', message: 'the worker is not running', hint: 'Reload the page.' });
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    worker.postMessage({ id, method, params: params ?? {} });
  });
}

// The spoke core's method names (the same the daemon serves to the CLI).
const API = {
  add: (params) => rpc('task.add', params),
  today: () => rpc('task.list', { due: true }),
  next: () => rpc('task.next', {}),
  byProject: (project) => rpc('task.list', project ? { project } : {}),
  projects: () => rpc('project.list', {}),
  search: (query) => rpc('search', { query }),
  show: (id) => rpc('task.show', { id }),
  done: (id) => rpc('task.done', { id }),
  drop: (id) => rpc('task.drop', { id }),
  skip: (id) => rpc('task.skip', { id }),
  edit: (id, fields) => rpc('task.edit', { id, ...fields }),
  context: (id, body) => rpc('task.context', { id, body }),
  log: (id, text) => rpc('task.log', { id, text }),
  syncStatus: () => rpc('sync.status', {}),
  syncNow: () => rpc('sync.now', {}),
  info: () => rpc('store.info', {}),
};

// ---------------------------------------------------------------------------------------------- banners
function showError(err, extra) {
  // Any write refused for lack of space (a capture, an edit, done, ...) offers "Try again".
  if (err && err.code === 'quota' && !extra) {
    storageFull = true;
    document.body.dataset.storage = 'full';
    extra = retryButton();
    setTimeout(refreshSync, 0);
  }
  const b = $('#banner');
  b.replaceChildren();
  const s = document.createElement('strong');
  s.textContent = err && err.message ? err.message : String(err);
  b.append(s);
  if (err && err.hint) {
    const h = document.createElement('div');
    h.className = 'hint';
    h.textContent = err.hint;
    b.append(h);
  }
  if (extra) b.append(extra);
  b.hidden = false;
}
function hideBanner() { $('#banner').hidden = true; }
function resetButton() {
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.textContent = 'Reset local replica';
  btn.onclick = () => resetReplica();
  return btn;
}

window.addEventListener('error', (ev) => {
  showError({ message: `unexpected error: ${ev.message}`, hint: 'Reload the page; unsent captures are kept.' });
});
window.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  const r = ev.reason || {};
  showError(r.message ? r : { message: String(r), hint: 'Reload the page; unsent captures are kept.' });
});

// ---------------------------------------------------------------------------------------------- outbox
function outbox() {
  try { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || '[]'); } catch (_) { return []; }
}
function setOutbox(items) {
  try { localStorage.setItem(OUTBOX_KEY, JSON.stringify(items)); } catch (_) { /* storage full: keep in memory */ }
  renderOutbox();
}
function renderOutbox() {
  const items = outbox();
  const el = $('#outbox');
  el.hidden = items.length === 0;
  el.textContent = items.length === 1 ? '1 capture is waiting to be saved on this device.' : `${items.length} captures are waiting to be saved on this device.`;
}

const inFlight = new Set();

/** Writes one outbox item into the replica (at most once at a time per item). */
async function send(item) {
  if (inFlight.has(item.key)) return;
  inFlight.add(item.key);
  try {
    const made = await API.add(item.params || { title: item.title });
    setOutbox(outbox().filter((x) => x.key !== item.key));
    return made;
  } finally {
    inFlight.delete(item.key);
  }
}

/** Writes every outbox item into the replica; true when the outbox is empty afterwards. */
async function flushOutbox() {
  if (workerState !== 'ready') return false;
  for (const item of outbox()) {
    try {
      await send(item);
    } catch (e) {
      showError(e);
      return false;
    }
  }
  storageRecovered();
  return true;
}

// ---------------------------------------------------------------------------------------------- storage full
// A write refused for lack of space (`quota`) leaves the capture in the outbox and the banner up with a
// "Try again" button (showError adds it); the outbox is retried by that button, by every later capture, when
// the page becomes visible again and every 20 s. The first outbox write that goes through takes the banner down.


function storageRecovered() {
  if (!storageFull) return;
  storageFull = false;
  delete document.body.dataset.storage;
  hideBanner();
  refreshSync();
}

function retryButton() {
  const btn = document.createElement('button');
  btn.type = 'button';
  btn.id = 'storage-retry';
  btn.textContent = 'Try again';
  btn.onclick = () => retryOutbox();
  return btn;
}

/** Retries what the full storage refused: opening the replica (if that failed) and the outbox. */
async function retryOutbox() {
  if (workerState === 'failed' && storageFull) {
    try {
      await rpc('pwa.reopen');
    } catch (e) {
      showError(e);
      return;
    }
    // The worker's `ready` event (posted before this answer) has re-rendered and flushed the outbox.
    storageRecovered();
    return;
  }
  if (workerState !== 'ready' || !outbox().length) return;
  if (await flushOutbox()) { refresh(); kickSync(); }
}

async function capture(title) {
  const text = title.trim();
  if (!text) return;
  // A capture made on the Today view is for today; elsewhere it has no date.
  const params = view === 'today' ? { title: text, do_date: 'today' } : { title: text };
  const item = { key: `${Date.now()}-${Math.random().toString(36).slice(2)}`, title: text, params, at: Date.now() };
  setOutbox([...outbox(), item]);
  // Optimistic row: visible at once, replaced by the real list when the worker answers.
  let optimistic = null;
  if (view === 'today' || view === 'next' || view === 'projects') {
    optimistic = renderTask({ id: '', title: text, pending: true });
    $('#list').prepend(optimistic);
    $('#empty').hidden = true;
  }
  // Not ready yet: the outbox is flushed when the worker reports ready.
  if (workerState !== 'ready') { renderOutbox(); return; }
  try {
    const made = await send(item);
    // Swap the optimistic row for the stored task at once; the full refresh below re-sorts the list.
    if (optimistic && optimistic.isConnected && made && made.id) optimistic.replaceWith(renderTask(made));
    // Captures an earlier failure left in the outbox go with this one.
    if (outbox().length) await flushOutbox(); else storageRecovered();
    refresh();
    kickSync();
  } catch (e) {
    if (optimistic && optimistic.isConnected) {
      const note = optimistic.querySelector('.pending-dot');
      if (note) note.textContent = 'not saved yet · kept on this page';
    }
    showError(e);
  }
}

// ---------------------------------------------------------------------------------------------- rendering
let view = 'today';
let project = null;
let current = null;

function tasksOf(result) {
  if (Array.isArray(result)) return result;
  if (result && Array.isArray(result.tasks)) return result.tasks;
  if (result && Array.isArray(result.items)) return result.items;
  if (result && Array.isArray(result.results)) return result.results;
  return [];
}

function fmtDate(v) {
  if (v === null || v === undefined || v === '') return '';
  if (typeof v === 'string') return v.slice(0, 10);
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().slice(0, 10);
}

const DAY = 86400000;
/** Today's local date as YYYY-MM-DD. */
function todayStr() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}
const dayNum = (ymd) => Date.UTC(Number(ymd.slice(0, 4)), Number(ymd.slice(5, 7)) - 1, Number(ymd.slice(8, 10))) / DAY;

/** "today", "tomorrow", "yesterday", a weekday within the week ahead, else the date. */
function dueLabel(t) {
  const due = fmtDate(t.do_date);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(due)) return due;
  const days = dayNum(due) - dayNum(todayStr());
  if (days === 0) return 'today';
  if (days === 1) return 'tomorrow';
  if (days === -1) return 'yesterday';
  if (days > 1 && days < 7) return new Date(Date.now() + days * DAY).toLocaleDateString(undefined, { weekday: 'short' });
  return due;
}

function isLate(t) {
  if (t.late_on_ms !== null && t.late_on_ms !== undefined) return t.late_on_ms <= Date.now();
  const due = fmtDate(t.do_date);
  return /^\d{4}-\d{2}-\d{2}$/.test(due) && due < todayStr();
}

function attentionOf(t) {
  const a = (t.attention || '').toString().toLowerCase();
  return /^a[1-4]$/.test(a) ? a : '';
}

function renderTask(t) {
  const li = document.createElement('li');
  li.dataset.id = t.id || '';
  const check = document.createElement('button');
  check.className = 'check';
  check.type = 'button';
  check.setAttribute('aria-label', `Done: ${t.title}`);
  check.onclick = async (ev) => {
    ev.stopPropagation();
    if (!t.id) return;
    li.style.opacity = '0.4';
    try { await API.done(t.id); refresh(); kickSync(); } catch (e) { li.style.opacity = ''; showError(e); }
  };
  const dot = document.createElement('span');
  dot.className = `dot ${attentionOf(t)}`;
  const body = document.createElement('div');
  body.className = 'body';
  const title = document.createElement('div');
  title.className = 'title';
  title.textContent = t.title;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const bits = [];
  if (t.pending) bits.push(['pending-dot', 'saving…']);
  if (t.project) bits.push(['', t.project]);
  const due = dueLabel(t);
  if (due) bits.push([isLate(t) ? 'late' : '', due]);
  for (const tag of t.tags || []) bits.push(['tag', `+${tag}`]);
  if (t.conflicted) bits.push(['late', 'conflict']);
  for (const [cls, text] of bits) {
    const s = document.createElement('span');
    if (cls) s.className = cls;
    s.textContent = text;
    meta.append(s);
  }
  body.append(title, meta);
  li.append(check, dot, body);
  li.onclick = () => t.id && openDetail(t.id);
  return li;
}

function renderList(tasks, emptyText) {
  const list = $('#list');
  list.replaceChildren(...tasks.map(renderTask));
  const empty = $('#empty');
  empty.hidden = tasks.length > 0;
  empty.textContent = emptyText;
}

let refreshSeq = 0;
const perf = { firstListMs: null };
async function refresh() {
  if (workerState !== 'ready') return;
  const seq = ++refreshSeq;
  try {
    let tasks;
    let empty;
    if (view === 'today') { tasks = tasksOf(await API.today()); empty = 'Nothing due today. Capture something above.'; }
    else if (view === 'next') { tasks = tasksOf(await API.next()); empty = 'No outstanding tasks.'; }
    else if (view === 'projects') {
      await renderProjects();
      tasks = tasksOf(await API.byProject(project));
      empty = project ? `No outstanding tasks in ${project}.` : 'No outstanding tasks.';
    } else {
      const q = $('#search-text').value.trim();
      tasks = q ? tasksOf(await API.search(q)) : [];
      empty = q ? `Nothing matches “${q}”.` : 'Type to search.';
    }
    if (seq !== refreshSeq) return;
    renderList(tasks, empty);
    document.body.dataset.rendered = String(Date.now());
    if (perf.firstListMs === null && tasks.length) perf.firstListMs = performance.now();
  } catch (e) {
    showError(e);
  }
}

async function renderProjects() {
  const res = await API.projects();
  const names = (Array.isArray(res) ? res : res.projects || []).map((p) => (typeof p === 'string' ? p : p.name));
  const bar = $('#project-bar');
  const mk = (label, value) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.setAttribute('aria-pressed', String(project === value));
    b.onclick = () => { project = value; refresh(); };
    return b;
  };
  bar.replaceChildren(mk('All', null), ...names.map((n) => mk(n, n)));
  $('#project-names').replaceChildren(...names.map((n) => { const o = document.createElement('option'); o.value = n; return o; }));
}

function setView(v) {
  view = v;
  for (const b of document.querySelectorAll('.tabs button')) b.setAttribute('aria-selected', String(b.dataset.view === v));
  $('#search-box').hidden = v !== 'search';
  $('#project-bar').hidden = v !== 'projects';
  if (v === 'search') $('#search-text').focus();
  refresh();
}

// ---------------------------------------------------------------------------------------------- detail
async function openDetail(id) {
  try {
    const t = await API.show(id);
    current = t.task || t;
    renderDetail(t);
    $('#detail').hidden = false;
  } catch (e) {
    showError(e);
  }
}

function renderDetail(res) {
  const t = res.task || res;
  $('#detail-id').textContent = t.id;
  $('#edit-title').value = t.title || '';
  $('#edit-project').value = t.project || '';
  $('#edit-do').value = fmtDate(t.do_date);
  const a = attentionOf(t);
  for (const r of document.querySelectorAll('input[name=attention]')) r.checked = r.value === a;
  $('#act-skip').hidden = !t.recurrence;
  const ctx = res.context ?? t.context ?? '';
  $('#context').value = typeof ctx === 'string' ? ctx : (ctx && ctx.text) || '';
  const conflict = $('#detail-conflict');
  const conflicted = t.conflicted || res.conflicted || (res.conflicts && res.conflicts.length);
  conflict.hidden = !conflicted;
  conflict.textContent = conflicted ? 'Two devices edited the context at the same place. Both versions are kept between the markers below; edit and save to resolve.' : '';
  const logs = res.log || res.logs || t.log || [];
  $('#log').replaceChildren(...logs.map((l) => {
    const li = document.createElement('li');
    const time = document.createElement('time');
    const at = l.at_ms ?? l.wall_ms ?? (l.hlc && l.hlc.wall_ms) ?? l.at;
    time.textContent = at ? new Date(at).toLocaleString() : '';
    li.append(time, document.createTextNode(l.text ?? String(l)));
    return li;
  }));
  const links = res.links || t.links || [];
  $('#links').replaceChildren(...links.map((l) => {
    const li = document.createElement('li');
    li.textContent = `${l.kind || l.link_kind || 'related'} → ${l.title || l.target}`;
    if (l.target) { li.style.cursor = 'pointer'; li.onclick = () => openDetail(l.target); }
    return li;
  }));
  if (!links.length) { const li = document.createElement('li'); li.className = 'muted'; li.textContent = 'No links.'; $('#links').append(li); }
}

async function act(fn) {
  if (!current) return;
  try { await fn(current.id); $('#detail').hidden = true; current = null; refresh(); kickSync(); } catch (e) { showError(e); }
}

// ---------------------------------------------------------------------------------------------- settings
async function renderSettings() {
  try {
    const a = await rpc('auth.status');
    $('#auth-state').textContent = a.logged_in
      ? `Logged in as ${a.name || a.sub}${a.expired ? (a.refreshable ? ' (token will be renewed)' : ' — token expired, log in again') : ''}.`
      : 'Not logged in: this device keeps working offline; log in to sync.';
  } catch (e) { $('#auth-state').textContent = e.message; }
  const info = $('#device-info');
  const rows = [['App version', PWA_VERSION]];
  try {
    const i = await API.info();
    if (i.origin) rows.push(['Origin', i.origin]);
    if (i.owner_id || i.owner) rows.push(['Owner', i.owner_id || i.owner]);
    if (i.schema_version) rows.push(['Schema', String(i.schema_version)]);
  } catch (_) { /* replica not open: shown in the banner */ }
  try {
    const q = await rpc('pwa.quota');
    if (q.usage !== null) rows.push(['Storage', `${(q.usage / 1e6).toFixed(1)} MB of ${(q.quota / 1e6).toFixed(0)} MB`]);
  } catch (_) { /* no estimate */ }
  info.replaceChildren(...rows.flatMap(([k, v]) => { const dt = document.createElement('dt'); dt.textContent = k; const dd = document.createElement('dd'); dd.textContent = v; return [dt, dd]; }));
  refreshSync();
}

let loginTimer = null;
async function login() {
  try {
    const d = await rpc('auth.start');
    $('#device-login').hidden = false;
    const link = $('#device-link');
    link.href = d.verification_uri_complete || d.verification_uri;
    link.textContent = d.verification_uri;
    $('#device-code').textContent = d.user_code;
    $('#device-state').textContent = 'Waiting for approval…';
    document.body.dataset.userCode = d.user_code;
    document.body.dataset.verificationUri = d.verification_uri;
    let interval = Math.max(1, d.interval || 5) * 1000;
    const deadline = Date.now() + (d.expires_in || 600) * 1000;
    const tick = async () => {
      if (Date.now() > deadline) { $('#device-state').textContent = 'The code expired. Start again.'; return; }
      try {
        const r = await rpc('auth.poll', { device_code: d.device_code });
        if (r.state === 'done') {
          $('#device-state').textContent = 'Logged in.';
          $('#device-login').hidden = true;
          renderSettings();
          kickSync();
          return;
        }
        if (r.state === 'slow_down') interval += 5000;
        loginTimer = setTimeout(tick, interval);
      } catch (e) {
        $('#device-state').textContent = `${e.message}. ${e.hint || ''}`;
      }
    };
    clearTimeout(loginTimer);
    loginTimer = setTimeout(tick, interval);
  } catch (e) {
    showError(e);
  }
}

async function resetReplica() {
  if (!confirm('Delete the local replica on this device? Changes not yet synced are lost; unsent captures are kept and re-added.')) return;
  try {
    await rpc('pwa.reset');
    workerState = 'ready';
    hideBanner();
    afterReady();
  } catch (e) { showError(e); }
}

// ---------------------------------------------------------------------------------------------- sync
function renderSync(s) {
  const pill = $('#sync-pill');
  pill.className = 'pill';
  if (!s) { pill.textContent = 'local only'; return; }
  const pending = s.pending_local_ops ?? 0;
  const p = s.problem;
  const needLogin = !s.dev_mode && (!s.logged_in || s.auth_failure || (p && /auth/.test(p.code)));
  if (storageFull || (p && p.code === 'quota')) { pill.textContent = pending ? `${pending} unsent · storage full` : 'storage full'; pill.classList.add('bad'); }
  else if (needLogin) { pill.textContent = pending ? `${pending} unsent · log in` : 'log in to sync'; pill.classList.add('bad'); }
  else if (p) { pill.textContent = pending ? `${pending} unsent · offline` : 'offline'; pill.classList.add('bad'); }
  else if (s.syncing) { pill.textContent = 'syncing…'; pill.classList.add('pending'); }
  else if (pending) { pill.textContent = `${pending} unsent`; pill.classList.add('pending'); }
  else if (s.last_success_ms) { pill.textContent = 'synced'; pill.classList.add('ok'); }
  else { pill.textContent = 'not synced yet'; }
  document.body.dataset.pending = String(pending);
  document.body.dataset.lastSync = String(s.last_success_ms || '');
  const last = s.last_success_ms ? new Date(s.last_success_ms).toLocaleString() : 'never';
  const why = p ? ` Problem: ${p.message}${p.hint ? ` — ${p.hint}` : ''}` : (s.last_error && !s.last_success_ms ? ` Last error: ${s.last_error}` : '');
  $('#sync-detail').textContent = `Unsent changes: ${pending}. Last sync: ${last}.${why}`;
}

async function refreshSync() {
  if (workerState !== 'ready') { renderSync(null); return; }
  try { renderSync(await API.syncStatus()); } catch (e) { renderSync({ problem: e }); }
}

// The worker syncs by itself after every change; this only refreshes the status shown.
function kickSync() {
  if (workerState !== 'ready') return;
  setTimeout(refreshSync, 50);
}

function syncNow() {
  if (workerState !== 'ready') return;
  API.syncNow().then(renderSync, (e) => renderSync({ problem: e }));
}

// ---------------------------------------------------------------------------------------------- wiring
function afterReady() {
  flushOutbox().then(() => { refresh(); refreshSync(); });
}

function wire() {
  $('#capture').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('#capture-text');
    const text = input.value;
    input.value = '';
    capture(text);
  });
  for (const b of document.querySelectorAll('.tabs button')) b.onclick = () => setView(b.dataset.view);
  let searchTimer = null;
  $('#search-text').addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(refresh, 120); });
  $('#detail-close').onclick = () => { $('#detail').hidden = true; current = null; };
  $('#settings-close').onclick = () => { $('#settings').hidden = true; };
  $('#open-settings').onclick = () => { $('#settings').hidden = false; renderSettings(); };
  $('#sync-pill').onclick = () => { $('#settings').hidden = false; renderSettings(); };
  $('#act-done').onclick = () => act(API.done);
  $('#act-drop').onclick = () => act(API.drop);
  $('#act-skip').onclick = () => act(API.skip);
  $('#edit').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const att = document.querySelector('input[name=attention]:checked');
    // EditTask: an absent field is unchanged, "none" clears it.
    const fields = { title: $('#edit-title').value.trim(), project: $('#edit-project').value.trim() || 'none' };
    const due = $('#edit-do').value.trim();
    if (due !== (current.do_date || '')) fields.do_date = due || 'none';
    fields.attention = att && att.value ? att.value : 'none';
    act((id) => API.edit(id, fields));
  });
  $('#context-save').onclick = async () => {
    if (!current) return;
    try { await API.context(current.id, $('#context').value); await openDetail(current.id); kickSync(); } catch (e) { showError(e); }
  };
  $('#log-add').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = $('#log-text').value.trim();
    if (!text || !current) return;
    try { await API.log(current.id, text); $('#log-text').value = ''; await openDetail(current.id); kickSync(); } catch (e) { showError(e); }
  });
  $('#login').onclick = login;
  $('#logout').onclick = async () => { await rpc('auth.logout'); renderSettings(); };
  $('#paste').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await rpc('auth.paste', { token: $('#paste-token').value }); $('#paste-token').value = ''; renderSettings(); kickSync(); } catch (e) { showError(e); }
  });
  $('#sync-now').onclick = () => syncNow();
  $('#reset').onclick = () => resetReplica();
  setupVoice();
}

function setupVoice() {
  const SR = window.SpeechRecognition || window.webkitSpeechRecognition;
  const btn = $('#capture-voice');
  if (!SR) { btn.hidden = true; return; }
  btn.hidden = false;
  btn.onclick = () => {
    let rec;
    try { rec = new SR(); } catch (_) { btn.hidden = true; return; }
    rec.lang = navigator.language || 'en-US';
    rec.interimResults = false;
    rec.maxAlternatives = 1;
    btn.classList.add('listening');
    rec.onresult = (ev) => { $('#capture-text').value = ev.results[0][0].transcript; };
    rec.onerror = (ev) => {
      btn.classList.remove('listening');
      if (ev.error === 'not-allowed' || ev.error === 'service-not-allowed') btn.hidden = true;
    };
    rec.onend = () => { btn.classList.remove('listening'); };
    try { rec.start(); } catch (_) { btn.classList.remove('listening'); }
  };
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('./sw.js').catch(() => { /* no offline shell: the app still works online */ });
}

wire();
renderOutbox();
document.addEventListener('visibilitychange', () => { if (!document.hidden) retryOutbox(); });
setInterval(retryOutbox, 20000);
registerServiceWorker();
startWorker();
window.heph = { rpc, version: PWA_VERSION, state: () => workerState, perf };
