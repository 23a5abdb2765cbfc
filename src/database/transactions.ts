import type { TransactionalAdapterPrisma } from '@nestjs-cls/transactional-adapter-prisma';
import type { PrismaService } from './prisma.service.js';

/**
 * Ambient transactions (nestjs-cls): a repository injects `TransactionHost<PrismaTx>` and
 * queries through `txHost.tx`, the Prisma client of the transaction its caller is in
 * (`txHost.withTransaction(fn)` or a `@Transactional()` method) or the plain client
 * outside one. Services so compose several repository calls into one transaction without
 * passing a client down.
 */
export type PrismaTx = TransactionalAdapterPrisma<PrismaService>;
export { Transactional, TransactionHost } from '@nestjs-cls/transactional';
