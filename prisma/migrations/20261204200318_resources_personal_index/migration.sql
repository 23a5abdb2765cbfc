-- DropIndex
DROP INDEX "resources_owner_id_created_at_id_idx";

-- CreateIndex
CREATE INDEX "resources_personal_idx" ON "resources"("owner_id", "created_at" DESC, "id" DESC) WHERE (tenant_id IS NULL);

-- CreateIndex
CREATE INDEX "resources_owner_id_idx" ON "resources"("owner_id");
