import type { Response } from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, uniqueEmail, type SignedUp } from '../support/factories.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';
import { startApp, type TestApp } from '../support/test-app.js';
import {
  APP_URL,
  client,
  linkToken,
  mailIdle,
  nextMail,
  recoveryEnv,
  sleep,
  signupAs,
  verifiedUser,
  type Account,
  type Client,
} from '../recovery/recovery-helpers.js';
import {
  addMember,
  createTenant,
  createTenantResource,
  expectError,
  expectOk,
  inTenant,
  uniqueSlug,
  type CreatedTenant,
} from './tenant-helpers.js';

/**
 * Tenants, attacked from outside: each case below is a hole found in review, and fails
 * without its fix (the two races only on PostgreSQL, where requests really run side by
 * side; PGlite serialises them). One app (PGlite, or a fresh PostgreSQL database) for the
 * whole file, mailing to a real SMTP server; every test comes from its own client address.
 */

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const INVITE_LINK = `${APP_URL}/accept-invitation#token=`;
/** Concurrent rounds of the race tests. */
const ROUNDS = 10;

/** Status and error code of an answer, in one string ("201 -", "404 TENANT_NOT_FOUND"). */
const outcomeOf = (res: Response): string => `${res.status} ${(res.body?.code as string | undefined) ?? '-'}`;

describe('tenants: review findings', () => {
  let smtp: TestSmtp;
  let t: TestApp;
  let admin: SignedUp;
  beforeAll(async () => {
    smtp = await startSmtp('accept');
    t = await startApp(recoveryEnv(smtp, { TENANT_LIMIT_PER_USER: '2', MAIL_RATE_LIMIT: '2', ...ADMIN }));
    admin = await login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  const invite = (c: Client, by: Pick<Account, 'auth'>, tenantId: string, email: string, roles: string[]) =>
    c.post(`/tenants/${tenantId}/invitations`).set(by.auth).send({ email, roles });
  const accept = (c: Client, who: Pick<Account, 'auth'>, token: string) =>
    c.post('/tenants/invitations/accept').set(who.auth).send({ token });
  /** Invites (201) and answers the token of the mail it sent. */
  async function invited(
    c: Client,
    by: Pick<Account, 'auth'>,
    tenant: CreatedTenant,
    email: string,
    roles: string[],
  ): Promise<string> {
    expectOk(await invite(c, by, tenant.id, email, roles), 201);
    return linkToken(await nextMail(smtp, email, `join ${tenant.name}`), INVITE_LINK);
  }
  const isMember = async (tenantId: string, userId: string): Promise<boolean> =>
    (await t.prisma.tenantMembership.count({ where: { tenantId, userId } })) > 0;

  it("an invitation from an inviter since removed, or downgraded below the invited roles, grants nothing; an owner's still works", async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const removed = await signupAs(c, { email: null });
    const downgraded = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, removed, ['admin']);
    await addMember(t, tenant.id, owner, downgraded, ['admin']);
    const first = await verifiedUser(c, smtp);
    const second = await verifiedUser(c, smtp);
    const third = await verifiedUser(c, smtp);

    // Invited by a tenant admin who is then removed from the tenant.
    const fromRemoved = await invited(c, removed, tenant, first.email!, ['member']);
    expectOk(await c.delete(`/tenants/${tenant.id}/members/${removed.id}`).set(owner.auth), 204);
    expectError(await accept(c, first, fromRemoved), 400, 'INVITATION_INVALID');
    expect(await isMember(tenant.id, first.id)).toBe(false);

    // Invited as admin by a tenant admin who is then made a mere member.
    const fromDowngraded = await invited(c, downgraded, tenant, second.email!, ['admin']);
    expectOk(
      await c
        .patch(`/tenants/${tenant.id}/members/${downgraded.id}`)
        .set(owner.auth)
        .send({ roles: ['member'] }),
    );
    expectError(await accept(c, second, fromDowngraded), 400, 'INVITATION_INVALID');
    expect(await isMember(tenant.id, second.id)).toBe(false);
    expectError(await c.get(`/tenants/${tenant.id}`).set(second.auth), 404, 'TENANT_NOT_FOUND');

    // An owner's invitation, sent the same way, is honoured.
    const fromOwner = await invited(c, owner, tenant, third.email!, ['admin']);
    const ok = await accept(c, third, fromOwner);
    expectOk(ok);
    expect(ok.body).toMatchObject({ roles: ['admin'], tenant: { id: tenant.id, myRoles: ['admin'] } });
    expect(await isMember(tenant.id, third.id)).toBe(true);
  });

  it('TENANT_LIMIT_PER_USER=2: being made owner of tenants created by someone else uses up none of your own allowance', async () => {
    const c = client(t);
    const attacker = await signupAs(c, { email: null });
    const victim = await signupAs(c, { email: null });
    for (let i = 0; i < 2; i += 1) {
      const tenant = await createTenant(t, attacker);
      await addMember(t, tenant.id, attacker, victim, ['owner']);
    }
    expect(await t.prisma.tenantMembership.count({ where: { userId: victim.id, roles: { has: 'owner' } } })).toBe(2);
    // The attacker is at their own limit.
    const slug = uniqueSlug();
    expectError(await c.post('/tenants').set(attacker.auth).send({ name: 'third', slug }), 409, 'TENANT_LIMIT_REACHED');

    const outcomes: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const s = uniqueSlug('victim');
      outcomes.push(
        outcomeOf(
          await c
            .post('/tenants')
            .set(victim.auth)
            .send({ name: `Victim ${s}`, slug: s }),
        ),
      );
    }
    expect(outcomes).toEqual(['201 -', '201 -', '409 TENANT_LIMIT_REACHED']);
  });

  it('MAIL_RATE_LIMIT=2: a third invitation to one address within the hour, from another tenant, gets 429 and no mail', async () => {
    const c = client(t);
    const target = uniqueEmail('flooded');
    const tenants: Array<{ owner: Account; tenant: CreatedTenant }> = [];
    for (let i = 0; i < 3; i += 1) {
      const owner = await signupAs(c, { email: null });
      tenants.push({ owner, tenant: await createTenant(t, owner) });
    }
    const [one, two, three] = tenants;
    await invited(c, one!.owner, one!.tenant, target, ['member']);
    await invited(c, two!.owner, two!.tenant, target.toUpperCase(), ['member']);

    const res = await invite(c, three!.owner, three!.tenant.id, target, ['member']);
    expectError(res, 429, 'TOO_MANY_REQUESTS');
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(3600);

    await mailIdle(t);
    expect(smtp.mailsTo(target)).toHaveLength(2);
    const pending = await c.get(`/tenants/${three!.tenant.id}/invitations`).set(three!.owner.auth);
    expectOk(pending);
    expect(pending.body.items).toEqual([]);
  });

  it('PATCH /tenants/:id {"name": null} gets 400 VALIDATION_FAILED, not 500; the name stays', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    expectError(await c.patch(`/tenants/${tenant.id}`).set(owner.auth).send({ name: null }), 400, 'VALIDATION_FAILED');
    const after = await c.get(`/tenants/${tenant.id}`).set(owner.auth);
    expectOk(after);
    expect(after.body).toMatchObject({ id: tenant.id, slug: tenant.slug, name: tenant.name });
    expect((await t.prisma.tenant.findUnique({ where: { id: tenant.id } }))?.name).toBe(tenant.name);
  });

  it("a global admin's create, update and delete of a resource in a tenant they are not in are each audited as tenant.admin_override; members' own are not", async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const member = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    expect(await isMember(tenant.id, admin.id)).toBe(false);

    const overridesOn = async (resourceId: string) =>
      (await t.prisma.auditEvent.findMany({ where: { type: 'tenant.admin_override' } }))
        .map((e) => ({ userId: e.userId, details: e.details as Record<string, unknown> }))
        .filter((e) => e.details.resourceId === resourceId);

    // The admin, not a member, in the tenant's context.
    const created = await createTenantResource(t, admin.auth, tenant.id, { title: 'by the admin' });
    expect(created).toMatchObject({ tenantId: tenant.id, ownerId: admin.id });
    expectOk(
      await c
        .patch(`/resources/${created.id}`)
        .set(admin.auth)
        .set(inTenant(tenant.id))
        .send({ title: 'changed by the admin' }),
    );
    expectOk(await c.delete(`/resources/${created.id}`).set(admin.auth).set(inTenant(tenant.id)), 204);
    const audited = await overridesOn(created.id);
    expect(audited.map((e) => String(e.details.action)).sort()).toEqual([
      'resource.created',
      'resource.deleted',
      'resource.updated',
    ]);
    for (const e of audited) {
      expect(e).toMatchObject({ userId: admin.id, details: { tenantId: tenant.id, resourceId: created.id } });
    }

    // A member (and the owner) changing their own resource: no override.
    for (const who of [member, owner]) {
      const own = await createTenantResource(t, who.auth, tenant.id, { title: 'mine' });
      expectOk(await c.patch(`/resources/${own.id}`).set(who.auth).set(inTenant(tenant.id)).send({ title: 'still' }));
      expectOk(await c.delete(`/resources/${own.id}`).set(who.auth).set(inTenant(tenant.id)), 204);
      expect(await overridesOn(own.id)).toEqual([]);
    }
  });

  it("lists a tenant's resources page by page alike for a member and for a global admin who is not one; empty and unknown tenants", async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const member = await signupAs(c, { email: null });
    const tenant = await createTenant(t, owner);
    await addMember(t, tenant.id, owner, member, ['member']);
    const pages = async (who: { Authorization: string }, tenantId: string): Promise<string[]> => {
      const titles: string[] = [];
      let cursor: string | null = null;
      do {
        const res: Response = await c
          .get(`/resources?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
          .set(who)
          .set(inTenant(tenantId));
        expectOk(res);
        titles.push(...(res.body.items as Array<{ title: string }>).map((r) => r.title));
        cursor = res.body.nextCursor as string | null;
      } while (cursor !== null);
      return titles;
    };
    // A tenant without resources: an empty page, for both.
    expect(await pages(member.auth, tenant.id)).toEqual([]);
    expect(await pages(admin.auth, tenant.id)).toEqual([]);
    for (let i = 0; i < 5; i++) await createTenantResource(t, owner.auth, tenant.id, { title: `r${i}` });
    expectOk(await c.post('/resources').set(owner.auth).send({ title: 'personal' }), 201);
    // Each once, in one order for both (creation times may tie: the id breaks the tie).
    const seen = await pages(member.auth, tenant.id);
    expect([...seen].sort()).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(await pages(admin.auth, tenant.id)).toEqual(seen);
    expect(await isMember(tenant.id, admin.id)).toBe(false);
    // Another tenant's id, or none at all: 404 for the member, and for the admin when there is none.
    const other = await createTenant(t, owner);
    expectError(await c.get('/resources').set(member.auth).set(inTenant(other.id)), 404, 'TENANT_NOT_FOUND');
    const unknown = '00000000-0000-4000-8000-000000000000';
    expectError(await c.get('/resources').set(member.auth).set(inTenant(unknown)), 404, 'TENANT_NOT_FOUND');
    expectError(await c.get('/resources').set(admin.auth).set(inTenant(unknown)), 404, 'TENANT_NOT_FOUND');
  });

  it('creating a resource in a tenant while it is being deleted gets 201 or 404 TENANT_NOT_FOUND, never 5xx, and leaves no orphan', async () => {
    const c = client(t);
    const owner = await signupAs(c, { email: null });
    const member = await signupAs(c, { email: null });
    const deletions: string[] = [];
    const creations: string[] = [];
    const tenantIds: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const tenant = await createTenant(t, owner);
      tenantIds.push(tenant.id);
      await addMember(t, tenant.id, owner, member, ['member']);
      const create = (i: number) =>
        c
          .post('/resources')
          .set(member.auth)
          .set(inTenant(tenant.id))
          .send({ title: `race ${round}.${i}` });
      const del = () => c.delete(`/tenants/${tenant.id}`).set(owner.auth).send({ confirm: tenant.slug });
      // The deletion goes out before, among or after the creations, in turn.
      const at = round % 3 === 0 ? 0 : round % 3 === 1 ? 2 : 5;
      const requests = [0, 1, 2, 3, 4].map((i) => create(i));
      const answers = await Promise.all([...requests.slice(0, at), del(), ...requests.slice(at)]);
      const [deletion] = answers.splice(at, 1);
      deletions.push(outcomeOf(deletion!));
      creations.push(...answers.map(outcomeOf));
    }
    expect(deletions).toEqual(Array.from({ length: ROUNDS }, () => '204 -'));
    expect(creations).toHaveLength(ROUNDS * 5);
    expect(creations.filter((o) => o !== '201 -' && o !== '404 TENANT_NOT_FOUND')).toEqual([]);

    expect(await t.prisma.tenant.count({ where: { id: { in: tenantIds } } })).toBe(0);
    expect(await t.prisma.resource.count({ where: { tenantId: { in: tenantIds } } })).toBe(0);
    expect(await t.prisma.resource.count({ where: { tenantId: { not: null }, tenant: { is: null } } })).toBe(0);
  });

  it('deleting an account while it creates tenants and resources leaves no tenant without members, no personal resource without owner, and no 5xx', async () => {
    const c = client(t);
    const deletions: string[] = [];
    const tenantAnswers: string[] = [];
    const resourceAnswers: string[] = [];
    /** Callers creating personal resources throughout each round. */
    const WORKERS = 6;
    for (let round = 0; round < ROUNDS; round += 1) {
      const user = await signupAs(c, { email: null });
      const newTenant = () => {
        const slug = uniqueSlug('gone');
        return c
          .post('/tenants')
          .set(user.auth)
          .send({ name: `Tenant ${slug}`, slug });
      };
      let answered = false;
      const deletion = async () => {
        const res = await c.delete('/users/me').set(user.auth).send({ password: user.password });
        answered = true;
        return res;
      };
      const deletionAnswered = () => answered;
      /** Personal resources, one after another, until the deletion has answered (30 at most). */
      const resources = async (worker: number): Promise<Response[]> => {
        const answers: Response[] = [];
        for (let i = 0; i < 30 && !deletionAnswered(); i += 1) {
          answers.push(
            await c
              .post('/resources')
              .set(user.auth)
              .send({ title: `personal ${round}.${worker}.${i}` }),
          );
        }
        return answers;
      };
      const tenants = () => Promise.all(Array.from({ length: 10 }, () => newTenant()));
      // The tenant creations go out with the deletion in even rounds (they win: it checks the
      // password first), 1, 3, 5 … ms after it in odd ones (it wins, mostly).
      const deleting = deletion();
      const creating = round % 2 === 0 ? tenants() : sleep(round).then(tenants);
      const [deleted, created, ...byWorker] = await Promise.all([
        deleting,
        creating,
        ...Array.from({ length: WORKERS }, (_, w) => resources(w)),
      ]);
      deletions.push(outcomeOf(deleted));
      tenantAnswers.push(...created.map(outcomeOf));
      resourceAnswers.push(...byWorker.flat().map(outcomeOf));
    }
    expect(tenantAnswers).toHaveLength(ROUNDS * 10);
    expect(resourceAnswers.length).toBeGreaterThanOrEqual(ROUNDS * WORKERS);
    expect(deletions.filter((o) => o !== '204 -' && o !== '409 LAST_OWNER')).toEqual([]);
    const statusOf = (o: string) => o.split(' ')[0]!;
    expect(tenantAnswers.filter((o) => !['201', '401', '409'].includes(statusOf(o)))).toEqual([]);
    expect(resourceAnswers.filter((o) => !['201', '401'].includes(statusOf(o)))).toEqual([]);

    const memberless = await t.prisma.tenant.findMany({
      where: { memberships: { none: {} } },
      select: { id: true, slug: true, createdBy: true },
    });
    expect(memberless).toEqual([]);
    const counted = await t.prisma.tenant.findMany({ select: { _count: { select: { memberships: true } } } });
    expect(counted.every((x) => x._count.memberships >= 1)).toBe(true);
    expect(
      await t.prisma.resource.findMany({ where: { tenantId: null, ownerId: null }, select: { id: true, title: true } }),
    ).toEqual([]);
  });
});
