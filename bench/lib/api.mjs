/** The few HTTP calls that prepare a benchmark: accounts, sessions, a public resource, machine clients. */

export const PASSWORD = 'bench-password-0123456789';
/** The admin every main server creates at start-up (ADMIN_USERNAME / ADMIN_PASSWORD = PASSWORD). */
export const ADMIN_USERNAME = 'bench_admin';

async function call(base, method, path, { body, token, cookie, extraHeaders } = {}) {
  const headers = { ...extraHeaders };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  if (cookie) headers.cookie = cookie;
  const res = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status}: ${text.slice(0, 300)}`);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const refresh = /refresh_token=([^;]*)/.exec(setCookie)?.[1];
  return { json, refresh };
}

export async function signup(base, username) {
  const { json, refresh } = await call(base, 'POST', '/auth/signup', { body: { username, password: PASSWORD } });
  return { userId: json.user.id, accessToken: json.accessToken, refreshToken: refresh };
}

export async function login(base, username, password = PASSWORD) {
  const { json, refresh } = await call(base, 'POST', '/auth/login', { body: { username, password } });
  return { userId: json.user.id, accessToken: json.accessToken, refreshToken: refresh };
}

export async function createPublicResource(base, token) {
  const { json } = await call(base, 'POST', '/resources', {
    token,
    body: { title: 'benchmark resource', body: 'x'.repeat(200), visibility: 'public' },
  });
  return json.id;
}

export async function get(base, path, token) {
  return (await call(base, 'GET', path, { token })).json;
}

/** `count` accounts `${prefix}0..`, signed up in parallel (bcrypt runs on the thread pool). */
export async function signupMany(base, prefix, count) {
  return Promise.all(Array.from({ length: count }, (_, i) => signup(base, `${prefix}${i}`)));
}

/** One fresh session (login) for each of the accounts; returns their refresh tokens. */
export async function freshSessions(base, usernames) {
  const sessions = await Promise.all(usernames.map((u) => login(base, u)));
  return sessions.map((s) => s.refreshToken);
}

/**
 * Signs up `count` accounts `${prefix}0..` and turns on two-step sign-in for each (enrol,
 * confirm with the current code); answers their usernames and base32 secrets.
 */
export async function signupManyWithMfa(base, prefix, count, codeAt) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const username = `${prefix}${i}`;
      const { accessToken } = await signup(base, username);
      const { json } = await call(base, 'POST', '/auth/mfa/totp', { token: accessToken, body: { password: PASSWORD } });
      await call(base, 'POST', '/auth/mfa/totp/confirm', {
        token: accessToken,
        body: { code: codeAt(json.secret, Date.now()) },
      });
      return { username, secret: json.secret };
    }),
  );
}

/** `fn(item, i)` for every item, at most `limit` at a time (undici would open a socket for each otherwise). */
export async function mapLimit(items, limit, fn) {
  const out = Array.from({ length: items.length });
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * One account with two-step sign-in on (sign up, enrol, confirm with the code of the step
 * `confirmAt`): { username, userId, secret (base32), confirmedAt (the epoch ms used) }.
 */
export async function signupWithMfa(base, username, codeAt) {
  const { userId, accessToken } = await signup(base, username);
  const { json } = await call(base, 'POST', '/auth/mfa/totp', { token: accessToken, body: { password: PASSWORD } });
  const confirmedAt = Date.now();
  await call(base, 'POST', '/auth/mfa/totp/confirm', {
    token: accessToken,
    body: { code: codeAt(json.secret, confirmedAt) },
  });
  return { username, userId, secret: json.secret, confirmedAt };
}

/** The first step of a login of an account with two-step sign-in: its challenge's mfaToken (throws otherwise). */
export async function mfaChallenge(base, username) {
  const res = await fetch(`${base}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const body = await res.json();
  if (res.status !== 403 || body.code !== 'MFA_REQUIRED' || typeof body.mfaToken !== 'string')
    throw new Error(`login ${username} → ${res.status} ${body.code}: no MFA challenge`);
  return body.mfaToken;
}

/** POST /auth/login; for an MFA account, then POST /auth/login/mfa with `code`. Throws unless signed in. */
export async function loginTwoStep(base, username, code) {
  const res = await fetch(`${base}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const body = await res.json();
  if (res.status === 200) return body;
  if (res.status !== 403 || body.code !== 'MFA_REQUIRED')
    throw new Error(`login ${username} → ${res.status} ${body.code}`);
  return (await call(base, 'POST', '/auth/login/mfa', { body: { mfaToken: body.mfaToken, code } })).json;
}

/**
 * `count` machine clients `${prefix}0..` (POST /oauth/clients as the admin of `adminToken`),
 * created in parallel; answers their public `clientId` and the secret shown once.
 */
export async function createClients(base, adminToken, prefix, count, allowedScopes = ['resources:read']) {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const { json } = await call(base, 'POST', '/oauth/clients', {
        token: adminToken,
        body: { name: `${prefix}${i}`, allowedScopes },
      });
      return { clientId: json.client.clientId, secret: json.secret.value };
    }),
  );
}

/** `client_secret_basic` (RFC 6749 §2.3.1): Basic base64(urlencode(client_id) ":" urlencode(secret)). */
export function basicAuthorization({ clientId, secret }) {
  const pair = `${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`;
  return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
}

/** The form body of a client-credentials token request. */
export const CLIENT_CREDENTIALS_BODY = 'grant_type=client_credentials';

/** POST /oauth/token (client_credentials, Basic) for `client`; throws unless 200 with an access token. */
export async function clientToken(base, client) {
  const res = await fetch(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuthorization(client) },
    body: CLIENT_CREDENTIALS_BODY,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /oauth/token → ${res.status}: ${text.slice(0, 300)}`);
  const json = JSON.parse(text);
  if (typeof json.access_token !== 'string')
    throw new Error(`POST /oauth/token: no access_token in ${text.slice(0, 300)}`);
  return json;
}

/**
 * A tenant owned by `owner` with every other account as a plain member (tenant_read).
 * Returns its id.
 */
export async function createTenantWithMembers(base, owner, members, slug) {
  const { json } = await call(base, 'POST', '/tenants', { body: { name: slug, slug }, token: owner.accessToken });
  for (const m of members) {
    await call(base, 'POST', `/tenants/${json.id}/members`, {
      body: { username: m.username, roles: ['member'] },
      token: owner.accessToken,
    });
  }
  return json.id;
}

/** `count` private resources of the caller: personal, or in `tenantId` (X-Tenant-Id). */
export async function createResources(base, token, count, tenantId) {
  for (let i = 0; i < count; i++) {
    await call(base, 'POST', '/resources', {
      body: { title: `bench ${i}` },
      token,
      extraHeaders: tenantId ? { 'x-tenant-id': tenantId } : {},
    });
  }
}

/**
 * `count` distinct access tokens, made by rotating the refresh chains of `refreshTokens`
 * (one in flight per chain): each POST /auth/refresh answers a new access token (its own
 * `jti`), exactly as a client renewing its token gets one.
 */
export async function mintAccessTokens(base, refreshTokens, count) {
  const tokens = [];
  await Promise.all(
    refreshTokens.map(async (first) => {
      let refresh = first;
      while (tokens.length < count) {
        const { json, refresh: next } = await call(base, 'POST', '/auth/refresh', {
          cookie: `refresh_token=${refresh}`,
        });
        if (typeof json?.accessToken !== 'string' || !next)
          throw new Error('POST /auth/refresh: no token in the answer');
        tokens.push(json.accessToken);
        refresh = next;
      }
    }),
  );
  return tokens.slice(0, count);
}
