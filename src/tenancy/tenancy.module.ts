import { Module } from '@nestjs/common';
import { TenantsController } from './tenants.controller.js';
import { TenantsService } from './tenants.service.js';

/** The tenant API (contract v2 §E): tenants, members, invitations and custom roles. */
@Module({ controllers: [TenantsController], providers: [TenantsService] })
export class TenancyModule {}
