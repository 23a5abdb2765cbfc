/**
 * Baseline for `mfa_login`: an HTTP endpoint that does one TOTP check and one session INSERT,
 * in its own process: the floor of the second step of a login (POST /auth/login/mfa), with no
 * challenge and no transaction. Two of them, by `stack`:
 * - `nest` (the target's baseline): the endpoint as a NestJS application writes it
 *   (bench/lib/nest-app.mjs: Nest on Express parses the JSON body; the row goes in with the
 *   project's Prisma client, `session.create`);
 * - `node` (information): the floor, `node:http` and `pg`, no framework.
 *
 * Per request: the body `{ mfaToken, code }`; the mfaToken names one of the accounts given at
 * start (a Map lookup: this endpoint keeps no challenges), whose code is validated as
 * src/mfa/totp.ts does (otpauth's TOTP.validate with SHA-1, 6 digits, 30-second steps, the
 * server's ±window, Node's HMAC); then one row goes into `sessions` with the columns
 * SessionsRepository.createIfCredentialsCurrent writes (id, user_id, token_hash, created_at,
 * last_used_at, expires_at, absolute_expires_at, user_agent, ip, amr, acr, auth_time) for that
 * account's user id, a new refresh token's SHA-256 as token_hash. The answer is a 200 with the
 * refresh cookie and a JSON body of the size the server answers (its access token padded to
 * `responseBytes`). A wrong code is a 401, as on the server. It enforces no replay rule: a
 * code is accepted as often as it validates (the check is the cost being measured, not the
 * uniqueness), so the runner may send the same bodies again.
 *
 * Protocol (bench/lib/children.mjs startChild): it receives { stack, url, accounts: [{ token,
 * userId, secret (base32) }], window, responseBytes, refreshTtl, maxAge, connections } over
 * IPC, listens on a free port of 127.0.0.1 and answers { port }; it stops on { stop: true } or
 * when the orchestrator goes away.
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { HttpException } from '@nestjs/common';
import { Secret, TOTP } from 'otpauth';
import pg from 'pg';
import { startNestApp } from './lib/nest-app.mjs';

// As src/mfa/totp.ts: RFC 6238 defaults, and Node's HMAC instead of the package's own.
const hmac = (algorithm, key, message) =>
  createHmac(algorithm.toLowerCase().replace('-', ''), key).update(message).digest();

const INSERT = `INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at, absolute_expires_at,
                      user_agent, ip, amr, acr, auth_time)
  VALUES ($1::uuid, $2::uuid, $3, $4, $4, $5, $6, $7, $8, $9::text[], $10, $4)`;
const AMR = ['pwd', 'otp', 'mfa'];

async function start({
  stack = 'node',
  url,
  accounts,
  window = 1,
  responseBytes = 600,
  refreshTtl = 14 * 24 * 3600,
  maxAge = 30 * 24 * 3600,
  connections = 10,
}) {
  const byToken = new Map(accounts.map((a) => [a.token, { userId: a.userId, secret: Secret.fromBase32(a.secret) }]));

  /** The account of a body whose code is right, or the error code to answer with 401. */
  const check = (dto) => {
    const account = typeof dto?.mfaToken === 'string' ? byToken.get(dto.mfaToken) : undefined;
    if (!account) return { error: 'MFA_TOKEN_INVALID' };
    const valid =
      typeof dto.code === 'string' &&
      /^\d{6}$/.test(dto.code) &&
      TOTP.validate({
        token: dto.code,
        secret: account.secret,
        algorithm: 'SHA1',
        digits: 6,
        period: 30,
        timestamp: Date.now(),
        window,
        hmac,
      }) !== null;
    return valid ? { account } : { error: 'INVALID_MFA_CODE' };
  };
  /** The new session's row (as the server writes it) and its refresh token. */
  const newSession = (account, req) => {
    const refreshToken = randomBytes(32).toString('base64url');
    const now = Date.now();
    const row = {
      id: randomUUID(),
      userId: account.userId,
      tokenHash: createHash('sha256').update(refreshToken, 'utf8').digest(),
      at: new Date(now),
      idle: new Date(now + Math.min(refreshTtl, maxAge) * 1000),
      absolute: new Date(now + maxAge * 1000),
      userAgent: req.headers['user-agent']?.slice(0, 512) ?? null,
      ip: req.socket.remoteAddress ?? null,
    };
    return { row, refreshToken };
  };
  /** A body of the server's size: the access token's place takes what the rest leaves. */
  const answerBody = (account) => {
    const shell = { accessToken: '', tokenType: 'Bearer', expiresIn: 900, user: { id: account.userId } };
    const pad = Math.max(16, responseBytes - Buffer.byteLength(JSON.stringify(shell)));
    shell.accessToken = randomBytes(Math.ceil((pad * 3) / 4))
      .toString('base64url')
      .slice(0, pad);
    return shell;
  };
  const cookie = (refreshToken) =>
    `refresh_token=${refreshToken}; Max-Age=${refreshTtl}; Path=/auth; HttpOnly; SameSite=Strict`;

  if (stack === 'nest') {
    const { app, port } = await startNestApp({
      path: '/auth/login/mfa',
      databaseUrl: url,
      poolSize: connections,
      handle: async ({ body, req, res, prisma }) => {
        const { account, error } = check(body);
        if (!account) throw new HttpException({ code: error }, 401);
        const { row, refreshToken } = newSession(account, req);
        await prisma.session.create({
          data: {
            id: row.id,
            userId: row.userId,
            tokenHash: row.tokenHash,
            createdAt: row.at,
            lastUsedAt: row.at,
            expiresAt: row.idle,
            absoluteExpiresAt: row.absolute,
            userAgent: row.userAgent,
            ip: row.ip,
            amr: AMR,
            acr: 'aal2',
            authTime: row.at,
          },
          select: { id: true },
        });
        res.setHeader('Cache-Control', 'no-store');
        res.setHeader('Set-Cookie', cookie(refreshToken));
        return answerBody(account);
      },
    });
    return { answer: { port }, close: () => app.close() };
  }

  const pool = new pg.Pool({ connectionString: url, max: connections });
  await pool.query('SELECT 1 FROM sessions LIMIT 0'); // the table is there (the server migrated it)
  const answer = (res, status, body, headers = {}) => {
    res.writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(body);
  };
  const handle = async (raw, req, res) => {
    let dto;
    try {
      dto = JSON.parse(raw);
    } catch {
      return answer(res, 400, '{"code":"VALIDATION_FAILED"}');
    }
    const { account, error } = check(dto);
    if (!account) return answer(res, 401, JSON.stringify({ code: error }));
    const { row, refreshToken } = newSession(account, req);
    // A named prepared statement, as the server's second step (and the nest stack's Prisma client).
    await pool.query({ name: 'bench_mfa_session_insert', text: INSERT }, [
      row.id,
      row.userId,
      row.tokenHash,
      row.at,
      row.idle,
      row.absolute,
      row.userAgent,
      row.ip,
      AMR,
      'aal2',
    ]);
    answer(res, 200, JSON.stringify(answerBody(account)), { 'Set-Cookie': cookie(refreshToken) });
  };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      handle(Buffer.concat(chunks).toString('utf8'), req, res).catch((error) => {
        if (!res.headersSent) answer(res, 500, JSON.stringify({ error: String(error?.message ?? error) }));
      });
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ answer: { port: server.address().port }, close: () => pool.end() }));
  });
}

process.once('message', (message) => {
  start(message).then(
    ({ answer, close }) => {
      process.send(answer);
      const stop = () => void Promise.resolve(close()).finally(() => process.exit(0));
      process.on('message', (m) => m?.stop && stop());
      process.once('disconnect', stop);
    },
    (error) => process.send({ error: String(error?.stack ?? error) }, () => process.exit(1)),
  );
});
