import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { login, uniqueEmail } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  APP_URL,
  SUBJECT,
  VERIFY_LINK,
  client,
  linkToken,
  mailIdle,
  nextMail,
  recoveryEnv,
  signupAs,
  verifiedUser,
  type Account,
  type Client,
} from '../recovery/recovery-helpers.js';
import {
  addMember,
  createTenant,
  defineRole,
  expectError,
  expectOk,
  MEMBER_KEYS,
  TENANT_KEYS,
  type CreatedTenant,
} from './tenant-helpers.js';

/**
 * Contract v2 §E test 6, through a real SMTP server: invitations are mailed as
 * `${APP_URL}/accept-invitation#token=…`, accepted only by a user whose verified email is the
 * invited one, expire after 48 h, work once, can be revoked or replaced, and only the
 * SHA-256 of their token is stored.
 */

const INVITE_LINK = `${APP_URL}/accept-invitation#token=`;
const INVITATION_KEYS = ['createdAt', 'email', 'expiresAt', 'id', 'invitedBy', 'roles', 'tenantId'];
const TTL_SECONDS = 48 * 3600;

const sha256Hex = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

describe('tenant invitations (real SMTP)', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp, { TENANT_INVITE_RATE_LIMIT: '2' }));
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });
  // Back to real time (the expiry test moves the clock).
  afterEach(() => {
    t.clock.freeze(Date.now());
    t.clock.unfreeze();
  });

  const invite = (c: Client, by: Pick<Account, 'auth'>, tenantId: string, email: string, roles: string[]) =>
    c.post(`/tenants/${tenantId}/invitations`).set(by.auth).send({ email, roles });
  const accept = (c: Client, who: Pick<Account, 'auth'>, token: string) =>
    c.post('/tenants/invitations/accept').set(who.auth).send({ token });
  const pending = async (c: Client, by: Pick<Account, 'auth'>, tenantId: string) => {
    const res = await c.get(`/tenants/${tenantId}/invitations`).set(by.auth);
    expectOk(res);
    return res.body as { items: Array<Record<string, unknown>>; nextCursor: string | null };
  };
  const members = async (c: Client, by: Pick<Account, 'auth'>, tenantId: string) => {
    const res = await c.get(`/tenants/${tenantId}/members?limit=100`).set(by.auth);
    expectOk(res);
    return res.body.items as Array<{ userId: string; username: string; roles: string[] }>;
  };

  /** Invites (expects 201) and answers the Invitation and the token of the mail it sent. */
  async function invited(
    c: Client,
    by: Pick<Account, 'auth' | 'id'>,
    tenant: CreatedTenant,
    email: string,
    roles: string[],
  ): Promise<{ invitation: Record<string, unknown>; token: string }> {
    const res = await invite(c, by, tenant.id, email, roles);
    expectOk(res, 201);
    expect(Object.keys(res.body as object).sort()).toEqual(INVITATION_KEYS);
    expect(res.body).toMatchObject({ tenantId: tenant.id, email, invitedBy: by.id });
    const mail = await nextMail(smtp, email, `join ${tenant.name}`);
    const token = linkToken(mail, INVITE_LINK);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The link is the only place the token is: never in the API's answer.
    expect(JSON.stringify(res.body)).not.toContain(token);
    return { invitation: res.body as Record<string, unknown>, token };
  }

  it('a user whose verified email is the invited one joins with the invited roles', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    await defineRole(t, tenant.id, owner, 'reader', ['resources:read']);
    const invitee = await verifiedUser(c, smtp);

    const { invitation, token } = await invited(c, owner, tenant, invitee.email!, ['reader', 'member']);
    expect(invitation.roles).toEqual(['member', 'reader']);
    expect(Date.parse(invitation.expiresAt as string) - Date.parse(invitation.createdAt as string)).toBe(
      TTL_SECONDS * 1000,
    );
    const mail = smtp.mailsTo(invitee.email!).at(-1)!;
    expect(mail.parsed.subject).toContain(tenant.name);
    expect(mail.parsed.text).toContain(`${INVITE_LINK}${token}`);
    expect((await pending(c, owner, tenant.id)).items).toEqual([invitation]);
    // Not a member yet.
    expectError(await c.get(`/tenants/${tenant.id}`).set(invitee.auth), 404, 'TENANT_NOT_FOUND');

    const res = await accept(c, invitee, token);
    expectOk(res);
    expect(Object.keys(res.body as object).sort()).toEqual(['roles', 'tenant']);
    expect(Object.keys(res.body.tenant as object).sort()).toEqual(TENANT_KEYS);
    expect(res.body).toEqual({
      tenant: expect.objectContaining({
        id: tenant.id,
        slug: tenant.slug,
        name: tenant.name,
        myRoles: ['member', 'reader'],
      }),
      roles: ['member', 'reader'],
    });

    const list = await members(c, owner, tenant.id);
    const joined = list.find((m) => m.userId === invitee.id);
    expect(joined).toBeDefined();
    expect(Object.keys(joined!).sort()).toEqual(MEMBER_KEYS);
    expect(joined).toMatchObject({ username: invitee.username, roles: ['member', 'reader'] });
    const seen = await c.get(`/tenants/${tenant.id}`).set(invitee.auth);
    expectOk(seen);
    expect(seen.body.myRoles).toEqual(['member', 'reader']);
    // Used up: no longer pending, and a second use is refused.
    expect((await pending(c, owner, tenant.id)).items).toEqual([]);
    expectError(await accept(c, invitee, token), 400, 'INVITATION_INVALID');
  });

  it('another address, or the right address not yet verified, gets 403 INVITATION_EMAIL_MISMATCH; the invitation still works', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    const email = uniqueEmail('invited');
    // Invited in another letter case: addresses compare case-insensitively.
    const { token } = await invited(c, owner, tenant, email.toUpperCase(), ['member']);

    const someoneElse = await verifiedUser(c, smtp);
    const noEmail = await signupAs(c, { email: null });
    const unverified = await signupAs(c, { email });
    const verifyToken = linkToken(await nextMail(smtp, email, SUBJECT.verify), VERIFY_LINK);
    for (const who of [someoneElse, noEmail, unverified, owner]) {
      const res = await accept(c, who, token);
      expectError(res, 403, 'INVITATION_EMAIL_MISMATCH');
    }
    expect((await members(c, owner, tenant.id)).map((m) => m.userId)).toEqual([owner.id]);
    expect((await pending(c, owner, tenant.id)).items).toHaveLength(1);

    // Verified now: the same link works for the right user.
    expectOk(await c.post('/auth/email/verify').send({ token: verifyToken }));
    const res = await accept(c, unverified, token);
    expectOk(res);
    expect(res.body.roles).toEqual(['member']);
    expect(res.body.tenant).toMatchObject({ id: tenant.id, myRoles: ['member'] });
    const list = await members(c, owner, tenant.id);
    expect(new Set(list.map((m) => m.userId))).toEqual(new Set([owner.id, unverified.id]));
    // Someone else cannot use it afterwards either.
    expectError(await accept(c, someoneElse, token), 400, 'INVITATION_INVALID');
  });

  it('a used, revoked, replaced, unknown or malformed token gets 400 INVITATION_INVALID', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const invitee = await verifiedUser(c, smtp);
    const forRevoke = await createTenant(t, owner);
    const forReplace = await createTenant(t, owner);

    // Revoked (not through another tenant, though: its owner gets 404 there).
    const revoked = await invited(c, owner, forRevoke, invitee.email!, ['member']);
    const stranger = await signupAs(c, { email: null });
    const strangers = await createTenant(t, stranger);
    expectError(
      await c.delete(`/tenants/${strangers.id}/invitations/${revoked.invitation.id as string}`).set(stranger.auth),
      404,
      'NOT_FOUND',
    );
    expect((await pending(c, owner, forRevoke.id)).items).toEqual([revoked.invitation]);
    const del = await c
      .delete(`/tenants/${forRevoke.id}/invitations/${revoked.invitation.id as string}`)
      .set(owner.auth);
    expectOk(del, 204);
    expect((await pending(c, owner, forRevoke.id)).items).toEqual([]);
    expectError(await accept(c, invitee, revoked.token), 400, 'INVITATION_INVALID');
    expectError(
      await c.delete(`/tenants/${forRevoke.id}/invitations/${revoked.invitation.id as string}`).set(owner.auth),
      404,
      'NOT_FOUND',
    );
    expectError(await c.get(`/tenants/${forRevoke.id}`).set(invitee.auth), 404, 'TENANT_NOT_FOUND');

    // Re-invited: the second invitation replaces the first, whose link stops working.
    const first = await invited(c, owner, forReplace, invitee.email!, ['member']);
    const second = await invited(c, owner, forReplace, invitee.email!, ['admin']);
    expect(second.token).not.toBe(first.token);
    const list = (await pending(c, owner, forReplace.id)).items;
    expect(list).toEqual([second.invitation]);
    expectError(await accept(c, invitee, first.token), 400, 'INVITATION_INVALID');
    const ok = await accept(c, invitee, second.token);
    expectOk(ok);
    expect(ok.body.roles).toEqual(['admin']);
    // Used: reuse is refused, and the replaced one stays refused.
    expectError(await accept(c, invitee, second.token), 400, 'INVITATION_INVALID');
    expectError(await accept(c, invitee, first.token), 400, 'INVITATION_INVALID');
    expect((await members(c, owner, forReplace.id)).find((m) => m.userId === invitee.id)?.roles).toEqual(['admin']);

    // Unknown and malformed tokens.
    for (const bad of [
      randomBytes(32).toString('base64url'),
      second.token.slice(0, 42),
      `${second.token}A`,
      second.token.replace(/^./, '+'),
      '',
    ]) {
      expectError(await accept(c, invitee, bad), 400, 'INVITATION_INVALID');
    }
  });

  it('stores only the SHA-256 of an invitation token: the mailed token is nowhere in the database', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    const other = await createTenant(t, owner);
    const user = await verifiedUser(c, smtp);
    const unused = await invited(c, owner, tenant, uniqueEmail('unused'), ['member']);
    const used = await invited(c, owner, tenant, user.email!, ['member']);
    expectOk(await accept(c, user, used.token));
    const revoked = await invited(c, owner, other, uniqueEmail('revoked'), ['member']);
    await c
      .delete(`/tenants/${other.id}/invitations/${revoked.invitation.id as string}`)
      .set(owner.auth)
      .expect(204);
    await mailIdle(t);

    const rows = await t.prisma.$queryRaw<Array<{ id: string; token_hash: Uint8Array }>>`
      SELECT id::text AS id, token_hash FROM tenant_invitations
      WHERE tenant_id IN (${tenant.id}::uuid, ${other.id}::uuid)`;
    const hashes = new Map(rows.map((r) => [r.id, Buffer.from(r.token_hash).toString('hex')]));
    for (const { invitation, token } of [unused, used, revoked]) {
      expect(hashes.get(invitation.id as string)).toBe(sha256Hex(token));
    }

    const json = await dumpDatabase(t);
    expect(json).toContain(sha256Hex(unused.token)); // the dump does see token_hash
    for (const [label, token] of Object.entries({ unused: unused.token, used: used.token, revoked: revoked.token })) {
      const raw = Buffer.from(token, 'base64url');
      for (const shape of [
        token,
        encodeURIComponent(token),
        raw.toString('hex'),
        raw.toString('base64'),
        raw.toString('base64url'),
      ]) {
        expect(json.includes(shape), `${label} token stored as ${shape}`).toBe(false);
      }
    }
  });

  it('inviting an address that a member already has gets 409 ALREADY_MEMBER; accepting as a member too', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    const member = await verifiedUser(c, smtp);
    await addMember(t, tenant.id, owner, member, ['member']);
    for (const email of [member.email!, member.email!.toUpperCase()]) {
      expectError(await invite(c, owner, tenant.id, email, ['admin']), 409, 'ALREADY_MEMBER');
    }
    expect((await pending(c, owner, tenant.id)).items).toEqual([]);

    // Invited first, added directly afterwards: accepting is 409, the invitation stays pending.
    const later = await verifiedUser(c, smtp);
    const { token } = await invited(c, owner, tenant, later.email!, ['admin']);
    await addMember(t, tenant.id, owner, later, ['member']);
    expectError(await accept(c, later, token), 409, 'ALREADY_MEMBER');
    expect((await members(c, owner, tenant.id)).find((m) => m.userId === later.id)?.roles).toEqual(['member']);
  });

  it('TENANT_INVITE_RATE_LIMIT=2: the third invitation of a tenant within the hour gets 429 with Retry-After', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    const other = await createTenant(t, owner);
    await invited(c, owner, tenant, uniqueEmail('rl1'), ['member']);
    await invited(c, owner, tenant, uniqueEmail('rl2'), ['member']);
    const third = uniqueEmail('rl3');
    const res = await invite(c, owner, tenant.id, third, ['member']);
    expectError(res, 429, 'TOO_MANY_REQUESTS');
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    // Nothing stored, nothing mailed.
    expect((await pending(c, owner, tenant.id)).items).toHaveLength(2);
    await mailIdle(t);
    expect(smtp.mailsTo(third)).toEqual([]);
    // Another tenant has its own count.
    await invited(c, owner, other, uniqueEmail('rl4'), ['member']);
  });

  it('an address of 254 characters is invited; one of 255 gets 400 VALIDATION_FAILED (the bound the document gives)', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    // 64 + 1 + 189: the longest local part, and labels of at most 63 characters.
    const domain = (last: number) => `${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(last)}.test`;
    const longest = `${randomBytes(16).toString('hex')}${'a'.repeat(32)}@${domain(56)}`;
    expect(longest).toHaveLength(254);
    const tooLong = `${randomBytes(16).toString('hex')}${'a'.repeat(32)}@${domain(57)}`;
    expect(tooLong).toHaveLength(255);
    expectError(await invite(c, owner, tenant.id, tooLong, ['member']), 400, 'VALIDATION_FAILED');
    const res = await invite(c, owner, tenant.id, longest, ['member']);
    expectOk(res, 201);
    expect(res.body).toMatchObject({ tenantId: tenant.id, email: longest });
    expect((await pending(c, owner, tenant.id)).items.map((i) => i.email)).toEqual([longest]);
  });

  it('a member without invitations:write gets 403; one with it may invite only to roles within their permissions', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    await defineRole(t, tenant.id, owner, 'inviter', ['invitations:write', 'resources:read']);
    const member = await signupAs(c, { email: null });
    const inviter = await signupAs(c, { email: null });
    await addMember(t, tenant.id, owner, member, ['member']);
    await addMember(t, tenant.id, owner, inviter, ['inviter']);

    const email = uniqueEmail('nope');
    expectError(await invite(c, member, tenant.id, email, ['member']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await invite(c, member, tenant.id, email, []), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(
      await c.get(`/tenants/${tenant.id}/invitations`).set(member.auth),
      403,
      'INSUFFICIENT_TENANT_PERMISSION',
    );
    // `member` holds resources:write, which the inviter lacks; `owner` only owners grant.
    expectError(await invite(c, inviter, tenant.id, email, ['member']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    expectError(await invite(c, inviter, tenant.id, email, ['owner']), 403, 'INSUFFICIENT_TENANT_PERMISSION');
    await mailIdle(t);
    expect(smtp.mailsTo(email)).toEqual([]);
    expect((await pending(c, owner, tenant.id)).items).toEqual([]);
    const { invitation } = await invited(c, inviter, tenant, email, ['inviter']);
    expect(invitation).toMatchObject({ roles: ['inviter'], invitedBy: inviter.id });
    // A non-member: 404, as for any tenant they are not in.
    const outsider = await signupAs(c, { email: null });
    expectError(await invite(c, outsider, tenant.id, uniqueEmail('x'), []), 404, 'TENANT_NOT_FOUND');
  });

  it('+48 h - 1 s an invitation still works; +48 h + 1 s it gets 400 INVITATION_EXPIRED', async () => {
    const c = client(t);
    t.clock.freeze();
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    const early = await verifiedUser(c, smtp);
    const late = await verifiedUser(c, smtp);
    const forEarly = await invited(c, owner, tenant, early.email!, ['member']);
    const forLate = await invited(c, owner, tenant, late.email!, ['member']);

    // Access tokens last minutes: sign in again at the later instants.
    t.clock.advance(TTL_SECONDS - 1);
    const earlyAgain = await login(t, early.username, early.password);
    expectOk(await accept(c, earlyAgain, forEarly.token));
    t.clock.advance(2);
    const lateAgain = await login(t, late.username, late.password);
    expectError(await accept(c, lateAgain, forLate.token), 400, 'INVITATION_EXPIRED');
    // Still expired (not turned into "invalid" or accepted) on a second try.
    expectError(await accept(c, lateAgain, forLate.token), 400, 'INVITATION_EXPIRED');
    const ownerAgain = await login(t, owner.username, owner.password);
    const list = await members(c, ownerAgain, tenant.id);
    expect(new Set(list.map((m) => m.userId))).toEqual(new Set([owner.id, early.id]));
  });
});

/** Every row of every table of the public schema, as JSON (bytes shown as hex, base64 and text). */
async function dumpDatabase(t: TestApp): Promise<string> {
  const tables = (
    await t.prisma.$queryRawUnsafe<Array<{ name: string }>>(
      `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
    )
  ).map((r) => r.name);
  expect(tables).toContain('tenant_invitations');
  const dump: Record<string, unknown> = {};
  for (const name of tables) {
    dump[name] = await t.prisma.$queryRawUnsafe(`SELECT * FROM "${name.replace(/"/g, '""')}"`);
  }
  const bytes = (b: Uint8Array) => {
    const buf = Buffer.from(b);
    return {
      hex: buf.toString('hex'),
      base64: buf.toString('base64'),
      base64url: buf.toString('base64url'),
      text: buf.toString('latin1'),
    };
  };
  return JSON.stringify(dump, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Uint8Array) return bytes(value);
    if (
      value &&
      typeof value === 'object' &&
      (value as { type?: unknown }).type === 'Buffer' &&
      Array.isArray((value as { data?: unknown }).data)
    ) {
      return bytes(Uint8Array.from((value as { data: number[] }).data));
    }
    return value;
  });
}
