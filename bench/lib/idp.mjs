/**
 * A minimal OpenID Connect provider for the federated_guard scenario, run inside the
 * benchmark's own process: a discovery document and a JWK Set on 127.0.0.1 (plain http is
 * accepted on a loopback host), and tokens signed with jose, as an organisation's Keycloak
 * would sign them (RS256 by default).
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { get } from './api.mjs';

export async function startIdp({ alg = 'RS256', path = '/realms/bench' } = {}) {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const kid = randomUUID();
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] });
  const hits = { discovery: 0, jwks: 0 };
  let issuer = '';
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === `${path}/.well-known/openid-configuration`) {
      hits.discovery++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/protocol/openid-connect/certs` }));
    } else if (url.pathname === `${path}/protocol/openid-connect/certs`) {
      hits.jwks++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwks);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${server.address().port}${path}`;
  return {
    issuer,
    alg,
    hits,
    /** A token of this provider for `claims.sub`, valid `ttlSeconds` from now. */
    sign(claims, { audience, ttlSeconds = 3600 }) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ jti: randomUUID(), ...claims })
        .setProtectedHeader({ alg, kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .sign(privateKey);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * `count` access tokens of `provider` for as many identities, each used once on `GET /users/me`
 * of the Gatehouse server at `base` (which trusts the provider for `audience`): that first
 * request creates the identity's account (jit), so that loads with the tokens measure the
 * steady state. Throws when a token did not act as a federated account.
 */
export async function federatedAccounts(provider, base, count, audience) {
  const tokens = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      provider.sign({ sub: `bench-identity-${i}`, preferred_username: `bench_idp_${i}` }, { audience }),
    ),
  );
  for (const token of tokens) {
    const me = await get(base, '/users/me', token);
    if (me.identities?.[0]?.issuer !== provider.issuer)
      throw new Error(`the external token did not act as a federated account: ${JSON.stringify(me).slice(0, 200)}`);
  }
  return tokens;
}
