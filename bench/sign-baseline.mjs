/**
 * Baseline for `oauth_token`: an HTTP endpoint that only signs an ES256 JWT, in its own process,
 * no database, no client authentication. Two of them, by `stack`:
 * - `nest` (the target's baseline): the endpoint as a NestJS application writes it
 *   (bench/lib/nest-app.mjs: Nest on Express, whose form parser reads the body);
 * - `node` (information): the floor, `node:http` alone; the body is read and ignored.
 * Each request gets one access token, answered as POST /oauth/token answers it.
 *
 * Signed by the application's own signer: the compiled AccessTokenService (dist/) is made with
 * a fresh P-256 key as JWT_KEYS and its signClient() signs, so the token is what the server
 * signs (the same claim set: iss, aud, sub, client_id, scope, sid, roles, iat, exp, a random
 * jti; the same header, encoded once: ES256, typ at+jwt, kid = the key's RFC 7638 thumbprint)
 * in the same way (node:crypto on libuv's thread pool, the signature as r‖s). Until
 * 2026-12-07 this baseline signed with jsonwebtoken on the event loop, which the server had
 * stopped doing: a slower baseline, and a flattered ratio. Same response body and Cache-Control.
 *
 * Protocol (bench/lib/children.mjs startChild): it receives { stack, ttlSeconds, issuer,
 * audience, scope } over IPC, listens on a free port of 127.0.0.1 and answers { port, jwk, kid }; it stops
 * on { stop: true } or when the orchestrator goes away.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { startNestApp } from './lib/nest-app.mjs';

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { AccessTokenService } = await dist('tokens/access-token.service.js');
const { generateEs256Pem } = await dist('config/signing-keys.js');

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
  // The service's three injections: the configuration it reads, a clock, and SecretsService
  // (used only to generate a key when JWT_KEYS is absent).
  const tokens = new AccessTokenService(
    {
      JWT_KEYS: generateEs256Pem(), // a fresh P-256 key, as the server makes one when it has none
      JWT_ISSUER: issuer,
      JWT_AUDIENCE: audience,
      ACCESS_TOKEN_TTL: ttlSeconds,
    },
    { nowMs: () => Date.now() },
    null,
  );
  const [jwk] = tokens.jwks.keys;
  const { kid } = tokens.keys.signing;
  const client = { serviceUserId: randomUUID(), clientId: clientId(), secretId: randomUUID(), roles: ['user'] };
  const scopes = scope.split(' ');
  const tokenResponse = async () => {
    const { token } = await tokens.signClient({ ...client, scopes }, ttlSeconds);
    return { access_token: token, token_type: 'Bearer', expires_in: ttlSeconds, scope };
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
      tokenResponse().then(
        (answer) => {
          const body = JSON.stringify(answer);
          res.writeHead(200, {
            'Content-Type': 'application/json; charset=utf-8',
            'Content-Length': Buffer.byteLength(body),
            'Cache-Control': 'no-store',
            Pragma: 'no-cache',
          });
          res.end(body);
        },
        (error) => {
          res.writeHead(500).end();
          console.error(error);
        },
      );
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
