// Test-only driver for the real device verification pages of tests/node/idp.mjs, over plain HTTP with a cookie
// jar, the way a person's browser would: open the verification URI, submit the user code (with the page's xsrf
// field), confirm (or abort), sign in as a test user on the login interaction, follow the redirects to the end.
//
// Usage: node idp-approve.mjs VERIFICATION_URI USER_CODE USER [--abort]
// Exit 0 and prints "approved" / "aborted" on success; exit 1 with a message otherwise.
const [verificationUri, userCode, user, flag] = process.argv.slice(2);
if (!verificationUri || !userCode || !user) {
  console.error('usage: node idp-approve.mjs VERIFICATION_URI USER_CODE USER [--abort]');
  process.exit(2);
}
const abort = flag === '--abort';
const jar = new Map();

function storeCookies(res) {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name);
    else jar.set(name, value);
  }
}

async function request(url, { method = 'GET', form } = {}) {
  let current = new URL(url);
  let opts = { method, body: form ? new URLSearchParams(form).toString() : undefined };
  for (let hops = 0; hops < 20; hops += 1) {
    const headers = { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (opts.body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(current, { method: opts.method, body: opts.body, headers, redirect: 'manual' });
    storeCookies(res);
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      current = new URL(res.headers.get('location'), current);
      opts = { method: 'GET' };
      continue;
    }
    return { url: current, status: res.status, text: await res.text() };
  }
  throw new Error('too many redirects');
}

function field(html, name) {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no ${name} field in page: ${html.slice(0, 400)}`);
  return m[1];
}

function hiddenFields(html) {
  const out = {};
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) out[m[1]] = m[2];
  if (!out.xsrf) throw new Error(`no xsrf field in page: ${html.slice(0, 400)}`);
  return out;
}

try {
  const input = await request(verificationUri);
  if (input.status !== 200) throw new Error(`verification page: HTTP ${input.status}`);
  const action = new URL(verificationUri).pathname;
  const confirm = await request(new URL(action, verificationUri), {
    method: 'POST',
    form: { xsrf: field(input.text, 'xsrf'), user_code: userCode },
  });
  if (!/Confirm Device/.test(confirm.text)) throw new Error(`user code rejected: HTTP ${confirm.status}`);
  const confirmForm = hiddenFields(confirm.text);
  if (abort) {
    delete confirmForm.confirm;
    confirmForm.abort = 'yes';
  } else {
    confirmForm.confirm = 'yes';
  }
  let step = await request(new URL(action, verificationUri), { method: 'POST', form: confirmForm });
  if (abort) {
    console.log('aborted');
    process.exit(0);
  }
  const login = step.text.match(/action="(\/interaction\/[^"]+\/login)"/);
  if (login) {
    step = await request(new URL(login[1], step.url), { method: 'POST', form: { login: user } });
  }
  if (!/Sign-in Success/.test(step.text)) {
    throw new Error(`approval did not finish: HTTP ${step.status} at ${step.url}: ${step.text.slice(0, 300)}`);
  }
  console.log('approved');
} catch (err) {
  console.error(`idp-approve: ${err.message}${err.cause ? `: ${err.cause.message || err.cause}` : ''}`);
  process.exit(1);
}
