// Test-only OpenID provider for hephaestus: a real `oidc-provider` process with a `heph` public client
// (device_code + refresh_token grants, no client authentication), JWT access tokens for audience `heph`
// (RFC 9068, `typ: at+jwt`, RS256) carrying a `groups` claim, short configurable TTLs.
//
// Usage: node idp.mjs [--port 0] [--keys FILE] [--access-ttl S] [--refresh-ttl S] [--device-ttl S]
//                     [--id-ttl S] [--audience heph] [--client-id heph]
//
// The first stdout line is the issuer URL (`http://127.0.0.1:PORT`). `--keys FILE` loads the private signing
// JWKS from FILE, or generates a fresh RS256 key and writes it there when FILE does not exist, so restarting with
// a deleted/new file is a key rotation.
//
// Approval: the real device verification pages are used (GET/POST /device with the xsrf field, then the
// confirm form); the login step is a test-only interaction at /interaction/:uid that asks for a user name from
// the fixed USERS table below (no password). Setting HEPH_IDP_AUTO_LOGIN=<user> logs that user in without
// the form. Consent is granted automatically.
//
// Test-only endpoints (this is a test harness, never a production IdP):
//   POST /__test/mint   JSON {claims, header, foreign_key}  -> {token}: a JWT signed with the IdP's current key
//                       (or a fresh key unknown to the IdP when foreign_key is true); claims default to a valid
//                       access token for user alice that the caller can override (null deletes a claim).
//   GET  /__test/users  -> the USERS table.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(`--${name}`);
  if (i === -1) return dflt;
  const v = args[i + 1];
  if (v === undefined) {
    console.error(`error: --${name} needs a value`);
    process.exit(2);
  }
  return v;
}

const port = Number(opt('port', '0'));
const keysFile = opt('keys', undefined);
const accessTtl = Number(opt('access-ttl', '300'));
const refreshTtl = Number(opt('refresh-ttl', '3600'));
const deviceTtl = Number(opt('device-ttl', '600'));
const idTtl = Number(opt('id-ttl', '300'));
const audience = opt('audience', 'heph');
const clientId = opt('client-id', 'heph');
const resource = 'urn:heph';

export const USERS = {
  alice: { sub: 'alice-sub-0001', name: 'Alice Owner', email: 'alice@example.test', groups: ['admins'] },
  bob: { sub: 'bob-sub-0002', name: 'Bob Stranger', email: 'bob@example.test', groups: ['users'] },
  agent: { sub: 'agent-sub-0003', name: 'Heph Agents', email: 'agents@example.test', groups: ['heph-agents'] },
};
const BY_SUB = Object.fromEntries(Object.values(USERS).map((u) => [u.sub, u]));

function loadOrCreateKeys() {
  if (keysFile && fs.existsSync(keysFile)) {
    return JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  jwk.kid = `k-${crypto.randomBytes(6).toString('hex')}`;
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  const jwks = { keys: [jwk] };
  if (keysFile) fs.writeFileSync(keysFile, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}
const jwks = loadOrCreateKeys();

const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_name: 'heph',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks,
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  async findAccount(_ctx, sub) {
    const u = BY_SUB[sub];
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: u.name, email: u.email, email_verified: true, groups: u.groups };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
        return {
          scope: 'sync',
          audience,
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  async extraTokenClaims(_ctx, token) {
    const u = BY_SUB[token.accountId];
    if (!u) return undefined;
    return { groups: u.groups, email: u.email, name: u.name };
  },
  ttl: {
    AccessToken: accessTtl,
    DeviceCode: deviceTtl,
    IdToken: idTtl,
    RefreshToken: refreshTtl,
    Grant: refreshTtl * 2,
    Interaction: 600,
    Session: 3600,
  },
  rotateRefreshToken: true,
  cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
});
provider.proxy = false;

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function interaction(req, res, uid, isPost) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction uid mismatch');
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    let login = process.env.HEPH_IDP_AUTO_LOGIN;
    if (isPost) login = new URLSearchParams(await readBody(req)).get('login');
    if (!login) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        page(
          'Sign in',
          `<form method="post" action="/interaction/${uid}/login"><input name="login" type="text">` +
            `<button type="submit">Sign in</button></form>`,
        ),
      );
      return;
    }
    const u = USERS[login];
    if (!u) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`unknown test user ${login}`);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: u.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.writeHead(400, { 'content-type': 'text/plain' });
  res.end(`unsupported prompt ${prompt.name}`);
}

// A key the IdP never publishes, for unknown-kid tests (generated once).
let foreignJwk;

async function mint(req, res) {
  const body = JSON.parse((await readBody(req)) || '{}');
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuer,
    sub: USERS.alice.sub,
    aud: audience,
    client_id: clientId,
    iat: now,
    exp: now + accessTtl,
    jti: crypto.randomBytes(8).toString('hex'),
    scope: 'sync',
    groups: USERS.alice.groups,
  };
  for (const [k, v] of Object.entries(body.claims || {})) {
    if (v === null) delete claims[k];
    else claims[k] = v;
  }
  let jwk = jwks.keys[0];
  if (body.foreign_key) {
    if (!foreignJwk) {
      const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      foreignJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'foreign-key', alg: 'RS256' };
    }
    jwk = foreignJwk;
  }
  const header = { alg: 'RS256', typ: 'at+jwt', kid: jwk.kid, ...(body.header || {}) };
  for (const [k, v] of Object.entries(header)) if (v === null) delete header[k];
  const key = await jose.importJWK(jwk, 'RS256');
  const token = await new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ token }));
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (m) return await interaction(req, res, m[1], req.method === 'POST');
    if (url.pathname === '/__test/mint' && req.method === 'POST') return await mint(req, res);
    if (url.pathname === '/__test/users') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(USERS));
    }
    return callback(req, res);
  } catch (err) {
    console.error(`idp: ${req.method} ${req.url}: ${err && err.stack ? err.stack : err}`);
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err && err.message ? err.message : err));
    }
  }
});

process.stdout.write(`${issuer}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
// Exit when the parent goes away (stdin closes), so an aborted test run never leaves an IdP behind.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
