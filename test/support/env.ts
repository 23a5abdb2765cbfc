/** True when the tests run against PostgreSQL (TEST_DATABASE_URL) rather than in-memory PGlite. */
export const onPostgres = Boolean(process.env.TEST_DATABASE_URL);

/** Redis for the multi-instance tests. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Settings that keep a test file's many sign-ups from tripping the per-IP sign-up limit. */
export const ROOMY_LIMITS = { SIGNUP_RATE_LIMIT: '100000', REFRESH_RATE_LIMIT: '100000' } as const;
