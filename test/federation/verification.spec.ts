import { randomUUID } from 'node:crypto';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, type SignedUp } from '../support/factories.js';
import { FakeIdp, startCanary, type FakeKey } from '../support/fake-idp.js';
import { signHs256, unsignedJwt } from '../support/jwt.js';
import type { TestApp } from '../support/test-app.js';
import { ExternalTokens } from '../../src/identities/external-tokens.js';
import {
  adminOf,
  claimsOf,
  expectError,
  expectInvalidToken,
  expectStatus,
  expectUnavailable,
  fedApp,
  fedAuth,
  nowOf,
  publicPem,
  signRs256Raw,
  tokenAt,
  type FedApp,
} from './federation-helpers.js';

/**
 * Bearer tokens of external OpenID issuers (contract v2 §D, tests 1–7 and 12): what is
 * accepted, what is refused with 401 INVALID_TOKEN, how the provider's keys are fetched,
 * and 503 FEDERATION_UNAVAILABLE when the provider cannot be reached. The providers are
 * FakeIdp servers on 127.0.0.1.
 */

const ME = '/users/me';

/** Discovery mode, roles from realm_access.roles, "gh-admin" → admin. */
let rs: FakeIdp;
/** Explicit jwksUri, maxTokenLifetime 600. */
let rs2: FakeIdp;
/** Pinned to ES256, but publishing an RS256 key too. */
let es: FakeIdp;
let esKey: FakeKey;
let rsKeyOfEs: FakeKey;
/** A provider that is not configured: Gatehouse must never call it. */
let stranger: FakeIdp;
/** Configured with acceptBearer: false (its tokens are for the exchange only). */
let noBearer: FakeIdp;
/** Providers whose key set is watched over time (tests 6 and 7), one per test. */
let rot: FakeIdp;
let removal: FakeIdp;
let flood: FakeIdp;
let down: FakeIdp;
let slow: FakeIdp;
let mismatch: FakeIdp;
let cached: FakeIdp;
/** Tokens presented again after being accepted (test 8). */
let remembered: FakeIdp;
/** Publishes malformed keys next to its good one. */
let broken: FakeIdp;
let fed: FedApp;
let t: TestApp;
let admin: SignedUp;

/**
 * One app trusting twelve providers. The tests that move the app clock (6, 7) come last; every
 * token is signed at the app clock's "now".
 */
beforeAll(async () => {
  rs = await FakeIdp.start();
  rs2 = await FakeIdp.start({ path: '/second' });
  es = await FakeIdp.start({ alg: 'RS256', path: '/es' });
  rsKeyOfEs = es.currentKey;
  esKey = await es.addKey('ES256');
  stranger = await FakeIdp.start({ path: '/stranger' });
  noBearer = await FakeIdp.start({ path: '/no-bearer' });
  [rot, removal, flood, down, slow, mismatch, cached, broken, remembered] = await Promise.all(
    ['/rot', '/removal', '/flood', '/down', '/slow', '/mismatch', '/cached', '/broken', '/remembered'].map((path) =>
      FakeIdp.start({ path }),
    ),
  );
  // Down and slow before their first fetch.
  down.mode = 'down';
  slow.mode = 'slow';
  mismatch.discoveryIssuer = `${mismatch.issuer}-other`;
  fed = await fedApp(
    [
      { idp: rs, entry: { name: 'rs', claims: { roles: 'realm_access.roles' }, roleMap: { 'gh-admin': 'admin' } } },
      { idp: rs2, entry: { name: 'rs2', jwksUri: rs2.jwksUri, maxTokenLifetime: 600 } },
      { idp: es, entry: { name: 'es', jwksUri: es.jwksUri, algorithms: ['ES256'] } },
      { idp: noBearer, entry: { name: 'no-bearer', acceptBearer: false } },
      { idp: rot, entry: { name: 'rot', jwksUri: rot.jwksUri } },
      { idp: removal, entry: { name: 'removal' } },
      { idp: flood, entry: { name: 'flood', jwksUri: flood.jwksUri } },
      { idp: down, entry: { name: 'down' } },
      { idp: slow, entry: { name: 'slow', jwksUri: slow.jwksUri } },
      { idp: mismatch, entry: { name: 'mismatch' } },
      { idp: cached, entry: { name: 'cached', jwksUri: cached.jwksUri } },
      { idp: broken, entry: { name: 'broken', jwksUri: broken.jwksUri } },
      { idp: remembered, entry: { name: 'remembered', jwksUri: remembered.jwksUri } },
    ],
    { FEDERATION_HTTP_TIMEOUT: '1' },
  );
  t = fed.t;
  admin = await adminOf(t);
});
afterAll(async () => {
  await fed?.close();
  await stranger?.close();
});

const getMe = (auth: { Authorization: string }) => t.http.get(ME).set(auth);

describe('federated bearer tokens: claims, algorithms, keys and users', () => {
  describe('1. valid tokens', () => {
    it('give GET /users/me 200 as a new passwordless person, and the same user on repeat', async () => {
      const sub = 'valid-user-1';
      const claims = { sub, preferred_username: 'fed.valid', name: 'Fed Valid' };
      const first = await t.http.get(ME).set(await fedAuth(t, rs, claims));
      expectStatus(first, 200);
      expect(first.body).toMatchObject({
        kind: 'person',
        username: 'fed.valid',
        displayName: 'Fed Valid',
        roles: ['user'],
        hasPassword: false,
        identities: [{ issuer: rs.issuer, issuerName: 'rs', subject: sub }],
      });
      expect(first.body.identities).toHaveLength(1);

      for (let i = 0; i < 2; i++) {
        const again = await t.http.get(ME).set(await fedAuth(t, rs, claims));
        expectStatus(again, 200);
        expect(again.body.id).toBe(first.body.id);
        expect(again.body.identities).toEqual([expect.objectContaining({ id: first.body.identities[0].id })]);
      }
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(1);
    });

    it('keep the email as verified only with email_verified: true (boolean)', async () => {
      const cases: Array<[string, unknown, boolean]> = [
        ['boolean-true', true, true],
        ['string-true', 'true', false],
        ['false', false, false],
        ['missing', undefined, false],
        ['number-one', 1, false],
      ];
      for (const [tag, verified, kept] of cases) {
        const email = `fed-${tag}@example.com`;
        const claims: Record<string, unknown> = { sub: `email-${tag}`, email };
        if (verified !== undefined) claims.email_verified = verified;
        const res = await t.http.get(ME).set(await fedAuth(t, rs, claims));
        expectStatus(res, 200);
        expect({ tag, email: res.body.email, emailVerified: res.body.emailVerified }).toEqual(
          kept ? { tag, email, emailVerified: true } : { tag, email: null, emailVerified: false },
        );
      }
    });

    it('give two users for the same sub at two issuers', async () => {
      const sub = 'shared-subject';
      const a = await t.http.get(ME).set(await fedAuth(t, rs, { sub }));
      const b = await t.http.get(ME).set(await fedAuth(t, rs2, { sub }));
      expectStatus(a, 200);
      expectStatus(b, 200);
      expect(a.body.id).not.toBe(b.body.id);
      expect(a.body.identities).toEqual([
        expect.objectContaining({ issuer: rs.issuer, issuerName: 'rs', subject: sub }),
      ]);
      expect(b.body.identities).toEqual([
        expect.objectContaining({ issuer: rs2.issuer, issuerName: 'rs2', subject: sub }),
      ]);
      // And each stays its own on repeat.
      expect((await t.http.get(ME).set(await fedAuth(t, rs2, { sub }))).body.id).toBe(b.body.id);
    });

    it('store an opaque sub verbatim (case kept: a differently cased sub is another user)', async () => {
      const sub = 'CgVhZG1pbhIFbG9jYWw';
      const res = await t.http.get(ME).set(await fedAuth(t, rs, { sub }));
      expectStatus(res, 200);
      expect(res.body.identities).toEqual([expect.objectContaining({ subject: sub })]);
      const listed = await t.http.get('/users/me/identities').set(await fedAuth(t, rs, { sub }));
      expectStatus(listed, 200);
      expect(listed.body).toEqual([expect.objectContaining({ subject: sub, issuer: rs.issuer })]);

      const lower = await t.http.get(ME).set(await fedAuth(t, rs, { sub: sub.toLowerCase() }));
      expectStatus(lower, 200);
      expect(lower.body.id).not.toBe(res.body.id);
      expect(lower.body.identities).toEqual([expect.objectContaining({ subject: sub.toLowerCase() })]);

      // Spaces, separators, non-ASCII, padding-like and numeric-looking subs are kept as they are.
      const odd = ['auth0|5f7c8ec7c33c6c004bbafe82', ' padded sub ', 'Ω-ünïcode-主题', 'a/b?c=d#e', '00012345'];
      const ids = new Set<string>([res.body.id, lower.body.id]);
      for (const value of odd) {
        const answer = await t.http.get(ME).set(await fedAuth(t, rs, { sub: value }));
        expectStatus(answer, 200);
        expect(answer.body.identities).toEqual([expect.objectContaining({ subject: value })]);
        ids.add(answer.body.id);
      }
      expect(ids.size).toBe(odd.length + 2);
    });

    it('accept a sub of 255 characters and refuse an empty one or one of 256', async () => {
      const ok = await t.http.get(ME).set(await fedAuth(t, rs, { sub: 's'.repeat(255) }));
      expectStatus(ok, 200);
      expect(ok.body.identities).toEqual([expect.objectContaining({ subject: 's'.repeat(255) })]);
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 's'.repeat(256) })));
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub: '' })));
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, {}, { omit: ['sub'] })));
    });

    it('work in discovery mode (no jwksUri) and with an explicit jwksUri', async () => {
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'discovery-mode' })), 200);
      expect(rs.hits.get(rs.discoveryPath)).toBeGreaterThanOrEqual(1);
      expect(rs.jwksHits).toBeGreaterThanOrEqual(1);

      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'explicit-mode' })), 200);
      expect(rs2.jwksHits).toBeGreaterThanOrEqual(1);
      expect(rs2.hits.get(rs2.discoveryPath) ?? 0).toBe(0);
    });

    it('work with ES256 on an issuer pinned to ["ES256"]', async () => {
      const res = await t.http.get(ME).set(await fedAuth(t, es, { sub: 'es-user' }, { key: esKey }));
      expectStatus(res, 200);
      expect(res.body.identities).toEqual([expect.objectContaining({ issuer: es.issuer, subject: 'es-user' })]);
    });
  });

  describe('2. algorithms', () => {
    it('refuse alg "none" (with and without a signature part)', async () => {
      const payload = claimsOf(rs, nowOf(t), { sub: 'alg-none' });
      const bare = unsignedJwt({ alg: 'none', typ: 'JWT' }, payload);
      expectInvalidToken(await t.http.get(ME).set(bearer(`${bare}.`)));
      const withKid = unsignedJwt({ alg: 'none', typ: 'JWT', kid: rs.currentKey.kid }, payload);
      expectInvalidToken(await t.http.get(ME).set(bearer(`${withKid}.`)));
      expectInvalidToken(await t.http.get(ME).set(bearer(`${withKid}.c2lnbmF0dXJl`)));
      expect(await t.prisma.externalIdentity.count({ where: { subject: 'alg-none' } })).toBe(0);
    });

    it('refuse HS256 MACed with the provider public key (PEM SPKI and JWK JSON)', async () => {
      const key = rs.currentKey;
      const payload = claimsOf(rs, nowOf(t), { sub: 'hs-confusion' });
      const header = { alg: 'HS256', typ: 'JWT', kid: key.kid };
      const pem = publicPem(key);
      const secrets: Array<string | Buffer> = [
        pem,
        pem.trim(),
        Buffer.from(pem),
        JSON.stringify(key.publicJwk),
        JSON.stringify({ kty: key.publicJwk.kty, n: key.publicJwk.n, e: key.publicJwk.e }),
      ];
      for (const secret of secrets) {
        expectInvalidToken(await t.http.get(ME).set(bearer(signHs256(header, payload, secret))));
      }
      // On the pinned ES256 issuer too.
      const esHeader = { alg: 'HS256', typ: 'JWT', kid: esKey.kid };
      const esPayload = claimsOf(es, nowOf(t), { sub: 'hs-confusion' });
      expectInvalidToken(await t.http.get(ME).set(bearer(signHs256(esHeader, esPayload, publicPem(esKey)))));
      expectInvalidToken(
        await t.http.get(ME).set(bearer(signHs256(esHeader, esPayload, JSON.stringify(esKey.publicJwk)))),
      );
      expect(await t.prisma.externalIdentity.count({ where: { subject: 'hs-confusion' } })).toBe(0);
    });

    it('refuse RS256 from a published key when the issuer is pinned to ES256', async () => {
      const res = await t.http.get(ME).set(await fedAuth(t, es, { sub: 'rs-on-es' }, { key: rsKeyOfEs }));
      expectInvalidToken(res, 'algorithm not allowed');
      // The ES256 key of the same issuer still works.
      expectStatus(await t.http.get(ME).set(await fedAuth(t, es, { sub: 'rs-on-es' }, { key: esKey })), 200);
    });
  });

  describe('3. issuer and audience', () => {
    it('refuse a wrong aud and a missing aud', async () => {
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { aud: 'another-api' })));
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { aud: ['another-api', 'third-api'] })));
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, {}, { omit: ['aud'] })));
      // An array containing the audience is fine.
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { aud: ['another-api', 'gatehouse-api'] })), 200);
    });

    it("refuse issuer A's iss signed with issuer B's key (B's kid, or A's kid)", async () => {
      const sub = 'cross-issuer';
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs2, { sub, iss: rs.issuer })));
      expectInvalidToken(
        await t.http
          .get(ME)
          .set(await fedAuth(t, rs2, { sub, iss: rs.issuer }, { header: { kid: rs.currentKey.kid } })),
      );
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(0);
    });

    it("refuse Gatehouse's own iss signed with the provider's key", async () => {
      const res = await t.http.get(ME).set(await fedAuth(t, rs, { iss: t.config.JWT_ISSUER, sub: 'own-iss' }));
      expectInvalidToken(res);
      expect(t.config.JWT_ISSUER).toBe('gatehouse');
      const withAud = await t.http
        .get(ME)
        .set(await fedAuth(t, rs, { iss: 'gatehouse', aud: t.config.JWT_AUDIENCE, sub: 'own-iss' }));
      expectInvalidToken(withAud);
    });

    it('refuse an unconfigured iss as "unknown issuer", without calling it', async () => {
      const stranged = await stranger.sign({ sub: 'stranger' });
      expectInvalidToken(await t.http.get(ME).set(bearer(stranged)), 'unknown issuer');
      expectInvalidToken(
        await t.http.get(ME).set(await fedAuth(t, rs, { iss: 'https://idp.unknown.example' })),
        'unknown issuer',
      );
      // A configured issuer's URL with a trailing slash is another issuer.
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { iss: `${rs.issuer}/` })), 'unknown issuer');
      // No iss, or one that is not a string, names no issuer at all (and is no token of ours).
      expectInvalidToken(await t.http.get(ME).set(bearer(await rs.sign({}, { omit: ['iss'] }))), 'unknown issuer');
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { iss: 42 })), 'unknown issuer');
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { iss: [rs.issuer] })), 'unknown issuer');
      expect([...stranger.hits.values()].reduce((a, b) => a + b, 0)).toBe(0);
    });

    it('refuse a token whose header is not JSON as "malformed token", whatever its payload claims', async () => {
      const header = Buffer.from('not json').toString('base64url');
      for (const signed of [await rs.sign({}, { omit: ['iss'] }), await rs.sign({}), await stranger.sign({})]) {
        const [, payload, signature] = signed.split('.');
        expectInvalidToken(await t.http.get(ME).set(bearer(`${header}.${payload}.${signature}`)), 'malformed token');
      }
      expect([...stranger.hits.values()].reduce((a, b) => a + b, 0)).toBe(0);
    });

    it('refuse the bearer tokens of an issuer configured with acceptBearer: false, without calling it', async () => {
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, noBearer, { sub: 'no-bearer' })), 'unknown issuer');
      expect([...noBearer.hits.values()].reduce((a, b) => a + b, 0)).toBe(0);
      expect(await t.prisma.externalIdentity.count({ where: { subject: 'no-bearer' } })).toBe(0);
    });
  });

  describe('4. time claims', () => {
    it('refuse a token without exp', async () => {
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'no-exp' }, { omit: ['exp'] })));
    });

    it('refuse an expired token, and accept one expired within the clock tolerance', async () => {
      const now = nowOf(t);
      // exp = now − 100: beyond FEDERATION_CLOCK_TOLERANCE (30 s).
      expectInvalidToken(
        await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'expired' }, { now: now - 400 })),
        'expired',
      );
      // exp = now − 10: within the tolerance.
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'expired' }, { now: now - 310 })), 200);
    });

    it('refuse a future nbf beyond the tolerance, and accept one within it', async () => {
      const now = nowOf(t);
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'nbf', nbf: now + 120 })));
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'nbf', nbf: now + 10 })), 200);
    });

    it('refuse an iat in the future beyond the tolerance, and accept one within it', async () => {
      const now = nowOf(t);
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'iat' }, { now: now + 120 })));
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'iat' }, { now: now + 10 })), 200);
    });

    it('refuse exp − iat above maxTokenLifetime (600), and accept exactly 600', async () => {
      expectInvalidToken(
        await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'lifetime' }, { ttl: 3600 })),
        'lifetime too long',
      );
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'lifetime' }, { ttl: 601 })));
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'lifetime' }, { ttl: 600 })), 200);
      // Without iat, the lifetime counts from now.
      expectInvalidToken(
        await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'lifetime' }, { omit: ['iat'], ttl: 3600 })),
        'lifetime too long',
      );
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs2, { sub: 'lifetime' }, { omit: ['iat'] })), 200);
      // The default maxTokenLifetime (1 day) allows an hour.
      expectStatus(await t.http.get(ME).set(await fedAuth(t, rs, { sub: 'lifetime' }, { ttl: 3600 })), 200);
    });
  });

  describe('5. key headers are never followed', () => {
    it('jku / x5u / jwk pointing at a canary get 401 with zero canary hits', async () => {
      const canary = await startCanary();
      try {
        const attacker = await generateKeyPair('RS256', { extractable: true });
        const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'attacker-kid', alg: 'RS256' };
        const payload = claimsOf(rs, nowOf(t), { sub: 'header-attack' });
        const forge = (header: Record<string, unknown>) =>
          new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...header }).sign(attacker.privateKey);
        const headers: Array<Record<string, unknown>> = [
          { kid: 'attacker-kid', jku: canary.url },
          { kid: 'attacker-kid', x5u: canary.url },
          { kid: 'attacker-kid', jwk: attackerJwk },
          { kid: 'attacker-kid', jwk: attackerJwk, jku: canary.url, x5u: canary.url },
          { jwk: attackerJwk },
          { jku: canary.url },
          // The provider's own kid with the attacker's key embedded or linked.
          { kid: rs.currentKey.kid, jwk: { ...attackerJwk, kid: rs.currentKey.kid } },
          { kid: rs.currentKey.kid, jku: canary.url, x5u: canary.url },
          { kid: 'attacker-kid', x5c: ['MIIB'], jku: canary.url },
        ];
        for (const header of headers) {
          expectInvalidToken(await t.http.get(ME).set(bearer(await forge(header))));
        }
        // A critical header Gatehouse does not understand is refused even with the right key.
        const crit = signRs256Raw(
          { crit: ['x-canary'], 'x-canary': canary.url },
          claimsOf(rs, nowOf(t), { sub: 'header-attack' }),
          rs.currentKey,
        );
        // Control: the same token without crit is valid.
        expectStatus(
          await t.http
            .get(ME)
            .set(bearer(signRs256Raw({}, claimsOf(rs, nowOf(t), { sub: 'header-control' }), rs.currentKey))),
          200,
        );
        expectInvalidToken(await t.http.get(ME).set(bearer(crit)));
        expect(canary.hits()).toBe(0);
        expect(await t.prisma.externalIdentity.count({ where: { subject: 'header-attack' } })).toBe(0);
      } finally {
        await canary.close();
      }
    });
  });

  describe('12. what a federated principal may do', () => {
    it('gets 403 USER_SESSION_REQUIRED on GET /auth/sessions and POST /auth/logout-all', async () => {
      const auth = await fedAuth(t, rs, { sub: 'session-routes' });
      expectError(await t.http.get('/auth/sessions').set(auth), 403, 'USER_SESSION_REQUIRED');
      expectError(await t.http.post('/auth/logout-all').set(auth), 403, 'USER_SESSION_REQUIRED');
      // The token still works afterwards: logout-all did nothing.
      expectStatus(await t.http.get(ME).set(auth), 200);
    });

    it('creates and reads its own resources', async () => {
      const auth = await fedAuth(t, rs, { sub: 'resource-owner' });
      const me = await t.http.get(ME).set(auth);
      expectStatus(me, 200);
      const created = await t.http
        .post('/resources')
        .set(auth)
        .send({ title: 'federated note', visibility: 'private' });
      expectStatus(created, 201);
      expect(created.body).toMatchObject({ ownerId: me.body.id, title: 'federated note' });
      const read = await t.http
        .get(`/resources/${created.body.id}`)
        .set(await fedAuth(t, rs, { sub: 'resource-owner' }));
      expectStatus(read, 200);
      expect(read.body).toMatchObject({ id: created.body.id, ownerId: me.body.id });
      // Another federated user does not see the private resource.
      const other = await t.http.get(`/resources/${created.body.id}`).set(await fedAuth(t, rs, { sub: 'not-owner' }));
      expect(other.status).toBe(404);
    });

    it('is refused with 401 at once when its user is disabled (the same token too)', async () => {
      const sub = 'to-be-disabled';
      const token = await tokenAt(t, rs, { sub });
      const me = await t.http.get(ME).set(bearer(token));
      expectStatus(me, 200);
      // Twice, so that the link is cached.
      expectStatus(await t.http.get(ME).set(bearer(token)), 200);

      const disabled = await t.http.patch(`/users/${me.body.id}`).set(admin.auth).send({ disabled: true });
      expectStatus(disabled, 200);

      expectInvalidToken(await t.http.get(ME).set(bearer(token)), 'account disabled');
      expectInvalidToken(await t.http.get(ME).set(await fedAuth(t, rs, { sub })), 'account disabled');
      expectInvalidToken(await t.http.post('/resources').set(bearer(token)).send({ title: 'x' }));
      // No second account was provisioned for the identity.
      expect(await t.prisma.externalIdentity.count({ where: { subject: sub } })).toBe(1);

      expectStatus(await t.http.patch(`/users/${me.body.id}`).set(admin.auth).send({ disabled: false }), 200);
      const back = await t.http.get(ME).set(await fedAuth(t, rs, { sub }));
      expectStatus(back, 200);
      expect(back.body.id).toBe(me.body.id);
    });

    it('gets role changes made by an admin at once (the cached link does not keep old roles)', async () => {
      const sub = 'role-changed';
      const me = await t.http.get(ME).set(await fedAuth(t, rs, { sub }));
      expectStatus(me, 200);
      expectError(await t.http.get('/users').set(await fedAuth(t, rs, { sub })), 403, 'INSUFFICIENT_ROLE');

      const promoted = await t.http
        .patch(`/users/${me.body.id}`)
        .set(admin.auth)
        .send({ roles: ['user', 'admin'] });
      expectStatus(promoted, 200);
      expectStatus(await t.http.get('/users').set(await fedAuth(t, rs, { sub })), 200);
      expect((await t.http.get(ME).set(await fedAuth(t, rs, { sub }))).body.roles).toEqual(['user', 'admin']);

      const demoted = await t.http
        .patch(`/users/${me.body.id}`)
        .set(admin.auth)
        .send({ roles: ['user'] });
      expectStatus(demoted, 200);
      expectError(await t.http.get('/users').set(await fedAuth(t, rs, { sub })), 403, 'INSUFFICIENT_ROLE');
    });

    it('gets roles from roleMap per request: admin routes allowed, /users/me keeps the database roles', async () => {
      const sub = 'role-mapped';
      const mapped = await fedAuth(t, rs, { sub, realm_access: { roles: ['offline_access', 'gh-admin'] } });
      expectStatus(await t.http.get('/users').set(mapped), 200);
      const me = await t.http.get(ME).set(mapped);
      expectStatus(me, 200);
      expect(me.body.roles).toEqual(['user']);

      // Without the claim value (or with it at another path) the same user is no admin.
      expectError(await t.http.get('/users').set(await fedAuth(t, rs, { sub })), 403, 'INSUFFICIENT_ROLE');
      expectError(
        await t.http.get('/users').set(await fedAuth(t, rs, { sub, realm_access: { roles: ['user'] } })),
        403,
        'INSUFFICIENT_ROLE',
      );
      expectError(
        await t.http.get('/users').set(await fedAuth(t, rs, { sub, roles: ['gh-admin'] })),
        403,
        'INSUFFICIENT_ROLE',
      );
      expectError(
        await t.http.get('/users').set(await fedAuth(t, rs, { sub, realm_access: { roles: 'gh-admins' } })),
        403,
        'INSUFFICIENT_ROLE',
      );
      // A string claim value maps as well.
      expectStatus(
        await t.http.get('/users').set(await fedAuth(t, rs, { sub, realm_access: { roles: 'gh-admin' } })),
        200,
      );
      // An issuer without a roleMap maps nothing.
      expectError(
        await t.http.get('/users').set(await fedAuth(t, rs2, { sub, realm_access: { roles: ['gh-admin'] } })),
        403,
        'INSUFFICIENT_ROLE',
      );
      // Never stored.
      const listed = await t.http.get('/users').query({ limit: 100 }).set(admin.auth);
      expectStatus(listed, 200);
      const row = (listed.body.items as Array<{ id: string; roles: string[] }>).find((u) => u.id === me.body.id);
      expect(row?.roles).toEqual(['user']);
    });
  });
});

describe('federated bearer tokens: the provider key set over time', () => {
  describe('6. rotation, removal and kid floods', () => {
    it('accepts a new kid after exactly one refetch, once the cooldown has passed', async () => {
      const first = rot.currentKey;
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' })), 200);
      expect(rot.jwksHits).toBe(1);
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' })), 200);
      expect(rot.jwksHits).toBe(1);

      const second = await rot.rotate();
      expect(second.kid).not.toBe(first.kid);
      t.clock.advance(31); // past FEDERATION_JWKS_COOLDOWN (30 s) since the first fetch
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' })), 200);
      expect(rot.jwksHits).toBe(2);
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' })), 200);
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' }, { key: first })), 200);
      expect(rot.jwksHits).toBe(2);

      // A key published within the cooldown is not fetched for yet ...
      const third = await rot.rotate();
      expectInvalidToken(await getMe(await fedAuth(t, rot, { sub: 'rot' }, { key: third })), 'no matching key');
      expect(rot.jwksHits).toBe(2);
      // ... and is, once, after it.
      t.clock.advance(31);
      expectStatus(await getMe(await fedAuth(t, rot, { sub: 'rot' }, { key: third })), 200);
      expect(rot.jwksHits).toBe(3);
    });

    it('refuses a removed kid once the cached key set has expired', async () => {
      const old = removal.currentKey;
      expectStatus(await getMe(await fedAuth(t, removal, { sub: 'removal' })), 200);
      const before = removal.jwksHits;
      expect(before).toBe(1);

      const fresh = await removal.rotate();
      removal.remove(old.kid);
      // Still cached: accepted, nothing fetched.
      expectStatus(await getMe(await fedAuth(t, removal, { sub: 'removal' }, { key: old })), 200);
      expect(removal.jwksHits).toBe(before);

      t.clock.advance(601); // past FEDERATION_JWKS_CACHE_TTL (600 s)
      expectInvalidToken(await getMe(await fedAuth(t, removal, { sub: 'removal' }, { key: old })), 'no matching key');
      expect(removal.jwksHits).toBe(before + 1);
      expectStatus(await getMe(await fedAuth(t, removal, { sub: 'removal' }, { key: fresh })), 200);
      expect(removal.jwksHits).toBe(before + 1);
    });

    it('fetches the keys at most twice for 50 tokens with random kids', async () => {
      const real = flood.currentKey;
      const unpublished = await flood.addKey();
      flood.remove(unpublished.kid);
      const forged = async () =>
        tokenAt(t, flood, { sub: 'flood' }, { key: unpublished, header: { kid: randomUUID() } });
      const concurrent = await Promise.all(Array.from({ length: 25 }, async () => getMe(bearer(await forged()))));
      for (const res of concurrent) expectInvalidToken(res);
      for (let i = 0; i < 25; i++) expectInvalidToken(await getMe(bearer(await forged())));
      expect(flood.jwksHits).toBeGreaterThanOrEqual(1);
      expect(flood.jwksHits).toBeLessThanOrEqual(2);
      // The real key still works, without more fetches.
      const hits = flood.jwksHits;
      expectStatus(await getMe(await fedAuth(t, flood, { sub: 'flood' }, { key: real })), 200);
      expect(flood.jwksHits).toBe(hits);
    });
  });

  describe('7. an unreachable or broken provider', () => {
    it('gives 503 FEDERATION_UNAVAILABLE with Retry-After when down before the first fetch, then recovers', async () => {
      for (let i = 0; i < 2; i++) {
        const res = await getMe(await fedAuth(t, down, { sub: 'down' }));
        expectUnavailable(res);
        expect(res.headers['www-authenticate']).toBeUndefined();
      }
      expect([...down.hits.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
      expect(await t.prisma.externalIdentity.count({ where: { subject: 'down' } })).toBe(0);

      down.mode = 'up';
      t.clock.advance(2); // past the hold after a failed fetch
      expectStatus(await getMe(await fedAuth(t, down, { sub: 'down' })), 200);
    });

    it('gives 503 within about the timeout (FEDERATION_HTTP_TIMEOUT=1) when the provider is slow', async () => {
      const started = Date.now();
      const res = await getMe(await fedAuth(t, slow, { sub: 'slow' }));
      const elapsed = Date.now() - started;
      expectUnavailable(res);
      expect(elapsed).toBeLessThan(4000);
      expect(slow.jwksHits).toBe(1);
    });

    it('gives 503 when the discovery document names another issuer (and never fetches its keys)', async () => {
      const res = await getMe(await fedAuth(t, mismatch, { sub: 'mismatch' }));
      expectUnavailable(res);
      expect(mismatch.hits.get(mismatch.discoveryPath)).toBe(1);
      expect(mismatch.jwksHits).toBe(0);
    });

    it('answers a token whose published key is malformed with 401 or 503, never 500', async () => {
      const real = broken.currentKey;
      const malformed: Array<Record<string, unknown>> = [
        // An RSA key without its modulus.
        { kty: 'RSA', kid: 'no-modulus', e: 'AQAB', alg: 'RS256', use: 'sig' },
        // A modulus far too short.
        { kty: 'RSA', kid: 'tiny-modulus', n: 'AAAA', e: 'AQAB', alg: 'RS256', use: 'sig' },
        // A "public" key carrying a (broken) private part.
        { ...real.publicJwk, kid: 'with-private-part', d: 'AAAA' },
      ];
      // Published before the first fetch, after the good key (which keeps signing).
      for (const jwk of malformed) broken.keys.unshift({ ...real, kid: String(jwk.kid), publicJwk: jwk });
      const answers = [];
      for (const jwk of malformed) {
        const res = await getMe(await fedAuth(t, broken, { sub: 'broken' }, { key: real, header: { kid: jwk.kid } }));
        const code = res.body?.code as unknown;
        const acceptable =
          (res.status === 401 &&
            code === 'INVALID_TOKEN' &&
            /error="invalid_token"/.test(res.headers['www-authenticate'] ?? '')) ||
          (res.status === 503 && code === 'FEDERATION_UNAVAILABLE');
        answers.push({ kid: jwk.kid, status: res.status, code, acceptable });
      }
      // Each is refused as a bad token or an unusable provider (the table shows every answer).
      expect(answers.filter((a) => !a.acceptable)).toEqual([]);
      // The good key of the same set still works.
      expectStatus(await getMe(await fedAuth(t, broken, { sub: 'broken' }, { key: real })), 200);
    });

    it('keeps using cached keys while the provider is down, until they expire', async () => {
      expectStatus(await getMe(await fedAuth(t, cached, { sub: 'cached' })), 200);
      cached.mode = 'down';
      t.clock.advance(300);
      expectStatus(await getMe(await fedAuth(t, cached, { sub: 'cached' })), 200);
      expectStatus(await getMe(await fedAuth(t, cached, { sub: 'cached' })), 200);
      // A bad token is still refused as bad while the keys are cached.
      expectInvalidToken(await getMe(await fedAuth(t, cached, { sub: 'cached', aud: 'another-api' })));

      t.clock.advance(301); // the keys are now older than FEDERATION_JWKS_CACHE_TTL
      expectUnavailable(await getMe(await fedAuth(t, cached, { sub: 'cached' })));
      cached.mode = 'up';
      t.clock.advance(2);
      expectStatus(await getMe(await fedAuth(t, cached, { sub: 'cached' })), 200);
    });
  });
});

/**
 * A token already accepted is not checked again on its next requests (its verification is
 * remembered): these present the same token again after what must end that.
 */
describe('federated bearer tokens: the same token again', () => {
  describe('8. a token already accepted', () => {
    it('is remembered in its canonical spelling only: a re-spelled signature is checked in full each time', async () => {
      const token = await tokenAt(t, remembered, { sub: 'again-spelling' });
      const remembers = (t.app.get(ExternalTokens) as unknown as { verified: { size: number } }).verified;
      expectStatus(await getMe(bearer(token)), 200);
      const size = remembers.size;
      // The signature's last character carries unused low bits (2,048 bits in 342 characters):
      // flipping one of them spells the same signature another way, which jose accepts.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(token.at(-1)!);
      const respelled = token.slice(0, -1) + alphabet[last ^ 1];
      expect(Buffer.from(respelled.split('.')[2]!, 'base64url')).toEqual(
        Buffer.from(token.split('.')[2]!, 'base64url'),
      );
      for (let i = 0; i < 3; i++) expectStatus(await getMe(bearer(respelled)), 200);
      expect(remembers.size).toBe(size);
      expectStatus(await getMe(bearer(token)), 200);
      expect(remembers.size).toBe(size);
    });

    it('is refused once expired beyond the clock tolerance', async () => {
      const token = bearer(await tokenAt(t, remembered, { sub: 'again-exp' })); // exp = now + 300
      expectStatus(await getMe(token), 200);
      t.clock.advance(329); // exp = now − 29: within FEDERATION_CLOCK_TOLERANCE (30 s)
      expectStatus(await getMe(token), 200);
      t.clock.advance(1);
      expectInvalidToken(await getMe(token), 'expired');
    });

    it('is refused once the key set is fetched again without its key', async () => {
      const old = remembered.currentKey;
      const token = bearer(await tokenAt(t, remembered, { sub: 'again-key' }, { key: old }));
      expectStatus(await getMe(token), 200);
      const fetched = remembered.jwksHits;
      const fresh = await remembered.rotate();
      remembered.remove(old.kid);
      // The cached keys still have it: accepted, nothing fetched.
      expectStatus(await getMe(token), 200);
      expect(remembered.jwksHits).toBe(fetched);
      // A token of the new key, past the cooldown, fetches the set: the old key is gone.
      t.clock.advance(31);
      expectStatus(await getMe(await fedAuth(t, remembered, { sub: 'again-key' }, { key: fresh })), 200);
      expect(remembered.jwksHits).toBe(fetched + 1);
      expectInvalidToken(await getMe(token), 'no matching key');
    });

    it('is not accepted on keys older than FEDERATION_JWKS_CACHE_TTL (503 while the provider is down)', async () => {
      const token = bearer(await tokenAt(t, remembered, { sub: 'again-ttl' }, { ttl: 600 }));
      expectStatus(await getMe(token), 200);
      remembered.mode = 'down';
      try {
        t.clock.advance(300);
        expectStatus(await getMe(token), 200);
        t.clock.advance(301); // the keys that verified it are now too old to use
        expectUnavailable(await getMe(token));
      } finally {
        remembered.mode = 'up';
      }
      t.clock.advance(2); // past the hold after the failed fetch
      expectStatus(await getMe(token), 200);
    });
  });
});
