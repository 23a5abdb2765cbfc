/**
 * Baseline for `oauth_token`: an HTTP endpoint that only signs an ES256 JWT, in its own process,
 * no database, no client authentication. Two of them, by `stack`:
 * - `nest` (the target's baseline): the endpoint as a NestJS application writes it
 *   (bench/lib/nest-app.mjs: Nest on Express, whose form parser reads the body);
 * - `node` (information): the floor, `node:http` alone; the body is read and ignored.
 * Each request gets one access token, signed with jsonwebtoken and answered as POST
 * /oauth/token answers it.
 *
 * Signed as AccessTokenService.signClient signs: the same claim set (iss, aud, sub, client_id,
 * scope, sid, roles, iat, exp, a random jti), the same header (ES256, typ at+jwt, kid = the
 * RFC 7638 thumbprint of the public key) and a P-256 KeyObject made once at start (the server
 * also signs with a KeyObject, parsed once from its PEM). Same response body and Cache-Control.
 *
 * Protocol (bench/lib/children.mjs startChild): it receives { stack, ttlSeconds, issuer,
 * audience, scope } over IPC, listens on a free port of 127.0.0.1 and answers { port, jwk, kid }; it stops
 * on { stop: true } or when the orchestrator goes away.
 */
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import jwt from 'jsonwebtoken';
import { startNestApp } from './lib/nest-app.mjs';

/** RFC 7638 thumbprint of an EC public JWK, as src/config/signing-keys.ts computes the kid. */
function thumbprint(jwk) {
  const members = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** A client_id of the server's shape: c_ + 20 base32 characters. */
function clientId() {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return `c_${Array.from(randomBytes(20), (b) => alphabet[b & 31]).join('')}`;
}

async function start({
  stack = 'node',
  ttlSeconds = 900,
  issuer = 'gatehouse',
  audience = 'gatehouse',
  scope = 'resources:read',
}) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(jwk);
  const client = { sub: randomUUID(), client_id: clientId(), sid: randomUUID(), roles: ['user'] };
  const options = { algorithm: 'ES256', keyid: kid, header: { alg: 'ES256', typ: 'at+jwt' } };
  const tokenResponse = () => {
    const iat = Math.floor(Date.now() / 1000);
    const claims = {
      sub: client.sub,
      client_id: client.client_id,
      scope,
      sid: client.sid,
      roles: client.roles,
      iat,
      exp: iat + ttlSeconds,
      iss: issuer,
      aud: audience,
      jti: randomUUID(),
    };
    return { access_token: jwt.sign(claims, privateKey, options), token_type: 'Bearer', expires_in: ttlSeconds, scope };
  };

  if (stack === 'nest') {
    const { app, port } = await startNestApp({
      path: '/oauth/token',
      handle: ({ res }) => {
        res.setHeader('Cache-Control', 'no-store');
        res.setHeader('Pragma', 'no-cache');
        return tokenResponse();
      },
    });
    return { answer: { port, jwk, kid }, close: () => app.close() };
  }

  const server = http.createServer((req, res) => {
    req.on('data', () => undefined); // read the body, parse nothing
    req.on('end', () => {
      const body = JSON.stringify(tokenResponse());
      res.writeHead(200, {
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        'Cache-Control': 'no-store',
        Pragma: 'no-cache',
      });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ answer: { port: server.address().port, jwk, kid } }));
  });
}

process.once('message', (message) => {
  start(message).then(
    ({ answer }) => {
      process.send(answer);
      // Nothing to flush: stop at once when told to, or when the orchestrator is gone.
      process.on('message', (m) => m?.stop && process.exit(0));
      process.once('disconnect', () => process.exit(0));
    },
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
