-- DropIndex
DROP INDEX "sessions_user_id_idx";

-- CreateIndex
CREATE INDEX "sessions_user_id_revoked_at_idx" ON "sessions"("user_id", "revoked_at");
