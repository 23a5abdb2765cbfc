import { Global, Module } from '@nestjs/common';
import { TenantAccessService } from './tenant-access.service.js';
import { TenantsRepository } from './tenants.repository.js';

/**
 * Tenants' data and the per-request membership lookup (contract v2 §E), shared by the tenant
 * API, the resource routes, the session's tenant selection and account deletion.
 */
@Global()
@Module({
  providers: [TenantsRepository, TenantAccessService],
  exports: [TenantsRepository, TenantAccessService],
})
export class TenantsModule {}
