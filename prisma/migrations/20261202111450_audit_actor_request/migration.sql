-- DropIndex
DROP INDEX "audit_events_created_at_idx";

-- DropIndex
DROP INDEX "audit_events_user_id_created_at_idx";

-- AlterTable
ALTER TABLE "audit_events" ADD COLUMN     "actor_id" UUID,
ADD COLUMN     "request_id" TEXT;

-- CreateIndex
CREATE INDEX "audit_events_user_id_created_at_id_idx" ON "audit_events"("user_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "audit_events_actor_id_created_at_id_idx" ON "audit_events"("actor_id", "created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "audit_events_created_at_id_idx" ON "audit_events"("created_at" DESC, "id" DESC);
