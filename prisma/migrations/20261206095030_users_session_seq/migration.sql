-- Every statement that opens a session moves the user's session_seq on in the UPDATE that locks
-- the user's row, and a login compares it with the value its snapshot read, to know whether the
-- live sessions it counted are all the user has (the cap on sessions per user, docs/concepts.md).
-- A constant default: PostgreSQL adds the column without rewriting the table.
-- AlterTable
ALTER TABLE "users" ADD COLUMN     "session_seq" INTEGER NOT NULL DEFAULT 0;
