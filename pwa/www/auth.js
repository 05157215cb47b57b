// Worker-side login: tokens live in the worker's IndexedDB; device-code login (RFC 8628) goes through the
// hub's relay routes (POST /auth/device, POST /auth/token) so the browser never needs CORS from the IdP;
// a pasted access token is the fallback. Access tokens are refreshed shortly before they expire.

const DB = 'heph-pwa';
const STORE = 'kv';
const KEY = 'tokens';
const SCOPE = 'openid email profile offline_access';

function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function kvGet(key) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const r = db.transaction(STORE).objectStore(STORE).get(key);
    r.onsuccess = () => resolve(r.result ?? null);
    r.onerror = () => reject(r.error);
  });
}

async function kvSet(key, value) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, 'readwrite');
    if (value === null) tx.objectStore(STORE).delete(key); else tx.objectStore(STORE).put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

function authError(message, hint = 'Log in again in Settings.', code = 'auth') {
  return { code, message, hint };
}

/** The claims of a JWT, or null when it is not one. */
export function claims(token) {
  try {
    const part = token.split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    return JSON.parse(json);
  } catch (_) {
    return null;
  }
}

let config = null;
export async function hubConfig() {
  if (config) return config;
  let res;
  try {
    res = await fetch('/config', { cache: 'no-store' });
  } catch (e) {
    throw { code: 'sync_offline', message: `the hub cannot be reached (${e.message || e})`, hint: 'Check the connection; changes are kept here.' };
  }
  if (!res.ok) throw { code: 'sync_hub_down', message: `the hub answered ${res.status} for /config`, hint: 'Try again later; changes are kept here.' };
  config = await res.json();
  return config;
}

async function form(path, body) {
  let res;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(body).toString(),
      cache: 'no-store',
    });
  } catch (e) {
    throw { code: 'sync_offline', message: `the hub cannot be reached (${e.message || e})`, hint: 'Log in when you are online.' };
  }
  let json = null;
  try { json = await res.json(); } catch (_) { /* not JSON */ }
  return { status: res.status, json: json || {} };
}

export async function status() {
  const t = await kvGet(KEY);
  if (!t) return { logged_in: false };
  const c = claims(t.access_token) || {};
  const now = Date.now() / 1000;
  return {
    logged_in: true,
    sub: c.sub ?? null,
    name: c.name ?? c.email ?? null,
    expires_at: t.expires_at ?? c.exp ?? null,
    expired: (t.expires_at ?? c.exp ?? Infinity) <= now,
    refreshable: !!t.refresh_token,
    source: t.source,
  };
}

/** Starts a device-code login; returns what to show: the code and the page to approve it on. */
export async function start() {
  const cfg = await hubConfig();
  if (!cfg.client_id) throw authError('the hub has no OIDC client configured', 'Start the hub with --oidc-issuer and --oidc-client-id, or paste a token.', 'auth_unconfigured');
  const { status: st, json } = await form('/auth/device', { client_id: cfg.client_id, scope: SCOPE });
  if (st !== 200 || !json.device_code) {
    throw authError(`the hub could not start a login (${st} ${json.error || ''} ${json.error_description || json.message || ''})`.trim(), 'Try again, or paste a token in Settings.');
  }
  return {
    device_code: json.device_code,
    user_code: json.user_code,
    verification_uri: json.verification_uri,
    verification_uri_complete: json.verification_uri_complete ?? null,
    expires_in: json.expires_in ?? 600,
    interval: json.interval ?? 5,
  };
}

async function save(json, source) {
  const now = Math.floor(Date.now() / 1000);
  const t = {
    access_token: json.access_token,
    refresh_token: json.refresh_token ?? null,
    id_token: json.id_token ?? null,
    expires_at: json.expires_in ? now + Number(json.expires_in) : (claims(json.access_token) || {}).exp ?? null,
    source,
  };
  await kvSet(KEY, t);
  return t;
}

/** Polls the token endpoint once: {state: 'pending'|'slow_down'|'done'} or throws (expired, denied). */
export async function poll({ device_code }) {
  const cfg = await hubConfig();
  const { status: st, json } = await form('/auth/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
    device_code,
    client_id: cfg.client_id,
  });
  if (st === 200 && json.access_token) {
    await save(json, 'device');
    return { state: 'done', ...(await status()) };
  }
  switch (json.error) {
    case 'authorization_pending': return { state: 'pending' };
    case 'slow_down': return { state: 'slow_down' };
    case 'expired_token': throw authError('the login code expired before it was approved', 'Start the login again.');
    case 'access_denied': throw authError('the login was refused on the approval page', 'Start the login again.');
    default: throw authError(`login failed (${st} ${json.error || ''})`.trim(), 'Start the login again, or paste a token.');
  }
}

/** Stores a pasted access token (the fallback when the device flow is not available). */
export async function paste({ token }) {
  const tok = String(token || '').trim();
  const c = claims(tok);
  if (!c) throw authError('that is not a JWT access token (three base64url parts)', 'Copy the whole access token, e.g. from `heph auth token` on a logged-in device.', 'bad_token');
  if (c.exp && c.exp <= Date.now() / 1000) throw authError('that token has already expired', 'Get a fresh token and paste it again.', 'bad_token');
  await save({ access_token: tok }, 'pasted');
  return status();
}

export async function logout() {
  await kvSet(KEY, null);
  return { logged_in: false };
}

/** A usable access token (refreshed when it expires within 60 s), or throws an auth error. */
export async function accessToken() {
  const t = await kvGet(KEY);
  if (!t) throw authError('not logged in', 'Log in in Settings to sync with the hub.', 'auth_missing');
  const now = Date.now() / 1000;
  // Refreshable tokens are renewed a minute early; a pasted token is used until it really expires.
  if (!t.refresh_token && t.expires_at && t.expires_at <= now) {
    throw authError('the access token has expired', 'Log in again in Settings (or paste a fresh token).', 'auth_expired');
  }
  if (t.refresh_token && t.expires_at && t.expires_at - 60 <= now) {
    const cfg = await hubConfig();
    const { status: st, json } = await form('/auth/token', {
      grant_type: 'refresh_token',
      refresh_token: t.refresh_token,
      client_id: cfg.client_id,
    });
    if (st !== 200 || !json.access_token) {
      throw authError(`the session expired and could not be renewed (${json.error || st})`, 'Log in again in Settings.', 'auth_expired');
    }
    if (!json.refresh_token) json.refresh_token = t.refresh_token;
    return (await save(json, t.source)).access_token;
  }
  return t.access_token;
}

/** Forgets the access token's validity after the hub answered 401, so the next call refreshes. */
export async function markRejected() {
  const t = await kvGet(KEY);
  if (t) { t.expires_at = 0; await kvSet(KEY, t); }
}
