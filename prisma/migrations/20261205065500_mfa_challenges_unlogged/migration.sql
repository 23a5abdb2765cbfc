-- Login challenges (the first step of a sign-in with two-step verification) live at most
-- MFA_CHALLENGE_TTL seconds and are worth nothing after a crash: the person gives the password
-- again. As an unlogged table, PostgreSQL writes no WAL for them, so counting a guess (the
-- first statement of every second step) commits without waiting for a WAL flush. After a
-- crash the table is emptied, and standbys do not have it.
-- Rewrites the table under an exclusive lock: it holds only the challenges of the last minutes.
ALTER TABLE "mfa_challenges" SET UNLOGGED;
