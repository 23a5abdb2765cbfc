import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOMY_LIMITS } from '../support/env.js';
import { decodeJwt, login, signup, type SignedUp } from '../support/factories.js';
import { startApp, type TestApp } from '../support/test-app.js';

const ADMIN = { ADMIN_USERNAME: 'root', ADMIN_PASSWORD: 'root password 123' };
const sortedRoles = (token: string) => [...(decodeJwt(token).payload.roles as string[])].sort();

/**
 * There is always at least one enabled admin. Every test starts and ends with the bootstrap
 * admin as the only enabled admin.
 */
describe('the last admin', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ ...ROOMY_LIMITS, LOGIN_RATE_LIMIT: '1000', ...ADMIN });
  });
  afterAll(async () => t?.close());

  const root = () => login(t, ADMIN.ADMIN_USERNAME, ADMIN.ADMIN_PASSWORD);
  const enabledAdmins = async () =>
    (await t.prisma.user.findMany({ where: { disabled: false } }))
      .filter((u) => u.roles.includes('admin'))
      .map((u) => u.id);

  /** A new user promoted to admin, logged in again so that their token carries the role. */
  async function newAdmin(by: SignedUp): Promise<SignedUp> {
    const u = await signup(t);
    await t.http
      .patch(`/users/${u.id}`)
      .set(by.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const fresh = await login(t, u.username, u.password);
    expect(sortedRoles(fresh.accessToken)).toEqual(['admin', 'user']);
    return fresh;
  }

  /**
   * Of two concurrent changes that would each remove the other's admin role, exactly one
   * succeeds. The loser gets 403 LAST_ADMIN when it reached the last-admin check, or 401
   * INVALID_TOKEN when the winner's change had already revoked the loser's access token.
   */
  function expectOneWinner(responses: Array<{ status: number; body: { code?: string } }>, okStatus = 200): void {
    const winners = responses.filter((r) => r.status === okStatus);
    const losers = responses.filter((r) => r.status !== okStatus);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    const { status, body } = losers[0]!;
    expect({ status, code: body.code }).toEqual(
      status === 401 ? { status, code: 'INVALID_TOKEN' } : { status: 403, code: 'LAST_ADMIN' },
    );
  }

  it('cannot be demoted: 403 LAST_ADMIN, and stays an admin', async () => {
    const admin = await root();
    expect(await enabledAdmins()).toEqual([admin.id]);
    const res = await t.http
      .patch(`/users/${admin.id}`)
      .set(admin.auth)
      .send({ roles: ['user'] })
      .expect(403);
    expect(res.body).toMatchObject({ statusCode: 403, error: 'Forbidden', code: 'LAST_ADMIN' });
    expect(await enabledAdmins()).toEqual([admin.id]);
    const again = await root();
    expect(sortedRoles(again.accessToken)).toEqual(['admin', 'user']);
    await t.http.get('/users').set(again.auth).expect(200);
  });

  it('cannot be disabled: 403 LAST_ADMIN, and can still log in', async () => {
    const admin = await root();
    const res = await t.http.patch(`/users/${admin.id}`).set(admin.auth).send({ disabled: true }).expect(403);
    expect(res.body.code).toBe('LAST_ADMIN');
    await t.http.get('/users/me').set(admin.auth).expect(200);
    await root();
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('cannot delete their own account: 403 LAST_ADMIN, nothing deleted', async () => {
    const admin = await root();
    const res = await t.http.delete('/users/me').set(admin.auth).send({ password: ADMIN.ADMIN_PASSWORD }).expect(403);
    expect(res.body.code).toBe('LAST_ADMIN');
    await t.http.get('/users/me').set(admin.auth).expect(200);
  });

  it('with two admins, one can demote the other, and then is the last admin', async () => {
    const admin = await root();
    const second = await newAdmin(admin);

    const res = await t.http
      .patch(`/users/${admin.id}`)
      .set(second.auth)
      .send({ roles: ['user'] })
      .expect(200);
    expect(res.body.roles).toEqual(['user']);
    const demoted = await root();
    expect(sortedRoles(demoted.accessToken)).toEqual(['user']);
    await t.http.get('/users').set(demoted.auth).expect(403);

    // Now `second` is the last admin and cannot step down either way.
    expect(
      (
        await t.http
          .patch(`/users/${second.id}`)
          .set(second.auth)
          .send({ roles: ['user'] })
          .expect(403)
      ).body.code,
    ).toBe('LAST_ADMIN');
    expect(
      (await t.http.patch(`/users/${second.id}`).set(second.auth).send({ disabled: true }).expect(403)).body.code,
    ).toBe('LAST_ADMIN');

    // Restore: root admin again, `second` demoted by root.
    await t.http
      .patch(`/users/${admin.id}`)
      .set(second.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    const restored = await root();
    await t.http
      .patch(`/users/${second.id}`)
      .set(restored.auth)
      .send({ roles: ['user'] })
      .expect(200);
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('with two admins, one can disable the other', async () => {
    const admin = await root();
    const second = await newAdmin(admin);
    await t.http.patch(`/users/${second.id}`).set(admin.auth).send({ disabled: true }).expect(200);
    await t.http.get('/users/me').set(second.auth).expect(401);
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('a disabled admin does not count: the only enabled admin still cannot be demoted', async () => {
    const admin = await root();
    const second = await newAdmin(admin);
    await t.http.patch(`/users/${second.id}`).set(admin.auth).send({ disabled: true }).expect(200);

    const res = await t.http
      .patch(`/users/${admin.id}`)
      .set(admin.auth)
      .send({ roles: ['user'] })
      .expect(403);
    expect(res.body.code).toBe('LAST_ADMIN');
    expect(
      (await t.http.patch(`/users/${admin.id}`).set(admin.auth).send({ disabled: true }).expect(403)).body.code,
    ).toBe('LAST_ADMIN');
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('two admins demoting each other at the same moment leave one admin', async () => {
    const admin = await root();
    const second = await newAdmin(admin);
    expect((await enabledAdmins()).sort()).toEqual([admin.id, second.id].sort());

    const [a, b] = await Promise.all([
      t.http
        .patch(`/users/${second.id}`)
        .set(admin.auth)
        .send({ roles: ['user'] }),
      t.http
        .patch(`/users/${admin.id}`)
        .set(second.auth)
        .send({ roles: ['user'] }),
    ]);
    expectOneWinner([a, b]);
    const left = await enabledAdmins();
    expect(left).toHaveLength(1);

    // Restore: root is the only admin again.
    if (left[0] !== admin.id) {
      await t.http
        .patch(`/users/${admin.id}`)
        .set(second.auth)
        .send({ roles: ['user', 'admin'] })
        .expect(200);
      await t.http
        .patch(`/users/${second.id}`)
        .set((await root()).auth)
        .send({ roles: ['user'] })
        .expect(200);
    }
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('two admins disabling each other at the same moment leave one enabled admin', async () => {
    const admin = await root();
    const second = await newAdmin(admin);
    const [a, b] = await Promise.all([
      t.http.patch(`/users/${second.id}`).set(admin.auth).send({ disabled: true }),
      t.http.patch(`/users/${admin.id}`).set(second.auth).send({ disabled: true }),
    ]);
    expectOneWinner([a, b]);
    const left = await enabledAdmins();
    expect(left).toHaveLength(1);

    // Restore: root enabled and the only enabled admin.
    if (left[0] !== admin.id) {
      await t.http.patch(`/users/${admin.id}`).set(second.auth).send({ disabled: false }).expect(200);
      await t.http
        .patch(`/users/${second.id}`)
        .set((await root()).auth)
        .send({ disabled: true })
        .expect(200);
    }
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('two admins deleting their own accounts at the same moment leave one admin', async () => {
    const admin = await root();
    const x = await newAdmin(admin);
    const y = await newAdmin(admin);
    // Step the bootstrap admin down, so that x and y are the only admins.
    await t.http
      .patch(`/users/${admin.id}`)
      .set(admin.auth)
      .send({ roles: ['user'] })
      .expect(200);
    expect((await enabledAdmins()).sort()).toEqual([x.id, y.id].sort());

    const [a, b] = await Promise.all([
      t.http.delete('/users/me').set(x.auth).send({ password: x.password }),
      t.http.delete('/users/me').set(y.auth).send({ password: y.password }),
    ]);
    expect([a.status, b.status].sort((p, q) => p - q)).toEqual([204, 403]);
    expect([a, b].find((r) => r.status === 403)!.body.code).toBe('LAST_ADMIN');
    const left = await enabledAdmins();
    expect(left).toHaveLength(1);

    // Restore: root the only admin again.
    const survivor = left[0] === x.id ? x : y;
    await t.http
      .patch(`/users/${admin.id}`)
      .set(survivor.auth)
      .send({ roles: ['user', 'admin'] })
      .expect(200);
    await t.http
      .patch(`/users/${survivor.id}`)
      .set((await root()).auth)
      .send({ roles: ['user'] })
      .expect(200);
    expect(await enabledAdmins()).toEqual([admin.id]);
  });

  it('an admin deleting their account while demoting the other admin: never both', async () => {
    const admin = await root();
    const other = await newAdmin(admin);
    const [deleted, demoted] = await Promise.all([
      t.http.delete('/users/me').set(other.auth).send({ password: other.password }),
      t.http
        .patch(`/users/${admin.id}`)
        .set(other.auth)
        .send({ roles: ['user'] }),
    ]);
    // Demotion first: the deletion is the last admin's (403). Deletion first: the demotion
    // comes with a token revoked by the deletion (401), or, when its token was verified just
    // before the deletion committed, it finds the other admin gone and is refused (403
    // LAST_ADMIN). Never both.
    expect([
      ['403 LAST_ADMIN', '200 undefined'],
      ['204 undefined', '401 INVALID_TOKEN'],
      ['204 undefined', '403 LAST_ADMIN'],
    ]).toContainEqual([deleted, demoted].map((r) => `${r.status} ${String(r.body?.code)}`));
    const left = await enabledAdmins();
    expect(left).toHaveLength(1);
    if (left[0] !== admin.id) {
      const again = await login(t, other.username, other.password);
      await t.http
        .patch(`/users/${admin.id}`)
        .set(again.auth)
        .send({ roles: ['user', 'admin'] })
        .expect(200);
      await t.http
        .patch(`/users/${other.id}`)
        .set((await root()).auth)
        .send({ roles: ['user'] })
        .expect(200);
    }
    expect(await enabledAdmins()).toEqual([admin.id]);
  });
});
