import type { DynamicModule, Provider } from '@nestjs/common';
import { APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { ClsPluginTransactional } from '@nestjs-cls/transactional';
import { TransactionalAdapterPrisma } from '@nestjs-cls/transactional-adapter-prisma';
import { ClsModule } from 'nestjs-cls';
import { DatabaseModule } from './database.module.js';
import { PrismaService } from './prisma.service.js';

/**
 * nestjs-cls with the transactional plugin (TransactionHost: ambient transactions), and no
 * per-request machinery. A transaction opens its own context (TransactionHost.withTransaction
 * runs in `cls.run`), so nothing needs one per request, and no ClsMiddleware, ClsGuard or
 * ClsInterceptor is mounted. ClsModule.forRoot registers a global guard and a global
 * interceptor all the same, which do nothing when not mounted (`() => true`,
 * `next.handle()`), but their presence alone makes NestJS run every request's handler through
 * its guard and interceptor chains: for the interceptor, an RxJS pipeline per request (about
 * 3% of a refresh's CPU in `node bench/profile.mjs refresh`). They are left out here, which is
 * right only while nothing is mounted (the defaults kept below): mounting one would need them.
 */
export function transactionalCls(): DynamicModule {
  const module = ClsModule.forRoot({
    global: true,
    plugins: [
      new ClsPluginTransactional({
        imports: [DatabaseModule],
        adapter: new TransactionalAdapterPrisma({ prismaInjectionToken: PrismaService }),
      }),
    ],
  });
  return { ...module, imports: module.imports?.map(withoutNoOpEnhancers) };
}

const NO_OP_ENHANCERS: readonly unknown[] = [APP_GUARD, APP_INTERCEPTOR];

function withoutNoOpEnhancers<T>(imported: T): T {
  const dynamic = imported as Partial<DynamicModule>;
  if (typeof dynamic !== 'object' || dynamic === null || !Array.isArray(dynamic.providers)) return imported;
  const providers = dynamic.providers.filter(
    (p: Provider) => !(typeof p === 'object' && 'provide' in p && NO_OP_ENHANCERS.includes(p.provide)),
  );
  return { ...dynamic, providers } as T;
}
