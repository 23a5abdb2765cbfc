// Prisma's schema engine compiled to WebAssembly, driven through a driver adapter instead of a
// connection string, so migrations work without the native engine binary.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { messages, PGlite } from '@electric-sql/pglite';
import {
  bindMigrationAwareSqlAdapterFactory,
  DriverAdapterError,
  isDriverAdapterError,
  type SqlDriverAdapter,
  type SqlDriverAdapterFactory,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import * as runtime from '@prisma/schema-engine-wasm/schema_engine_bg';
import type { SchemaContainer, SchemaEngine, SchemaFilter } from '@prisma/schema-engine-wasm/schema_engine_bg';

export type {
  MigrationList,
  SchemaContainer,
  SchemaEngine,
  SchemaFilter,
} from '@prisma/schema-engine-wasm/schema_engine_bg';

/** No externally managed tables or enums. */
export const NO_FILTER: SchemaFilter = { externalTables: [], externalEnums: [] };

/** The session-level advisory lock the engine takes before applying migrations (same key as `prisma migrate`). */
export const ENGINE_LOCK_KEY = 72707369;
const ENGINE_LOCK_SQL = /^\s*SELECT pg_advisory_lock\(72707369\)\s*;?\s*$/i;

export interface EngineOptions {
  /** Schema files handed to the engine at construction (not needed to apply migrations). */
  schema?: SchemaContainer[];
  /**
   * Drop the engine's own `pg_advisory_lock`, because the caller already holds that lock on
   * another connection. The engine never unlocks: on a pool the lock would otherwise stay held by
   * whichever pooled connection ran it, blocking every later migrator until that connection closes.
   * (Should a new engine word the statement differently, it would wait on the caller's lock and
   * fail after its 10 s timeout: every PostgreSQL run fails, loudly.)
   */
  callerHoldsLock?: boolean;
  /** Receives the engine's JSON log lines. */
  log?: (line: string) => void;
}

// TypeScript declares WebAssembly in the DOM lib, which this project does not load; the part used:
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: WasmExports };
};
interface WasmExports {
  __wbindgen_start(): void;
}

let loaded: Promise<typeof runtime> | undefined;

/**
 * Instantiates the engine's WebAssembly module once per process. The package's main entry imports
 * the `.wasm` file as an ES module, which Node does not support without flags, so the glue module
 * is wired to an instance created here instead. The glue keeps the instance in module state: it
 * must never be instantiated twice.
 */
export function loadSchemaEngine(): Promise<typeof runtime> {
  loaded ??= (async () => {
    const require = createRequire(import.meta.url);
    // The .wasm file is not in the package's exports map: locate it next to the glue module.
    const glue = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bytes = await readFile(join(dirname(glue), 'schema_engine_bg.wasm'));
    const imports: Record<string, unknown> = { ...runtime };
    // The engine arms a 10 s timer when it requests its advisory lock and never clears it; an
    // unref'd timer keeps it from holding a finished process (e.g. the CLI) open for 10 s.
    for (const name of Object.keys(imports)) {
      if (name.startsWith('__wbg_setTimeout_')) {
        imports[name] = (callback: () => void, ms: number) => setTimeout(callback, ms).unref();
      }
    }
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { './schema_engine_bg.js': imports });
    (runtime as unknown as { __wbg_set_wasm(exports: WasmExports): void }).__wbg_set_wasm(exports);
    exports.__wbindgen_start();
    return runtime;
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

/**
 * Runs `fn` with an engine connected through `factory`, then frees the engine and disposes every
 * adapter it opened (the engine itself never disposes them; for `PrismaPg` without an external
 * pool each adapter owns a pool whose sockets would otherwise keep the process alive).
 */
export async function withSchemaEngine<T>(
  factory: SqlDriverAdapterFactory,
  options: EngineOptions,
  fn: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const { SchemaEngine } = await loadSchemaEngine();
  const opened: SqlDriverAdapter[] = [];
  const open = async (connect: () => Promise<SqlDriverAdapter>): Promise<SqlDriverAdapter> => {
    const adapter = wrapAdapter(await connect(), options.callerHoldsLock ?? false);
    opened.push(adapter);
    return adapter;
  };
  const tracked: SqlMigrationAwareDriverAdapterFactory = {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: () => open(() => factory.connect()),
    connectToShadowDb: () => {
      const shadow = (factory as Partial<SqlMigrationAwareDriverAdapterFactory>).connectToShadowDb;
      if (!shadow) return Promise.reject(new Error(`${factory.adapterName} cannot open a shadow database`));
      return open(() => shadow.call(factory));
    },
  };
  const engine = await SchemaEngine.new(
    { datamodels: options.schema?.map((file): [string, string] => [file.path, file.content]) },
    options.log ?? (() => undefined),
    bindMigrationAwareSqlAdapterFactory(tracked),
  );
  try {
    return await fn(engine);
  } finally {
    engine.free();
    await Promise.allSettled(opened.map((adapter) => adapter.dispose()));
  }
}

/** True for adapters running on an in-process PGlite rather than a PostgreSQL server. */
export function isPglite(factory: Pick<SqlDriverAdapterFactory, 'adapterName'>): boolean {
  return factory.adapterName === 'pglite-prisma-adapter';
}

function wrapAdapter(inner: SqlDriverAdapter, dropEngineLock: boolean): SqlDriverAdapter {
  const pglite = isPglite(inner) ? Reflect.get(inner, 'client') : undefined;
  const adapter: SqlDriverAdapter = {
    provider: inner.provider,
    adapterName: inner.adapterName,
    queryRaw: (query) => inner.queryRaw(query),
    executeRaw: (query) =>
      dropEngineLock && ENGINE_LOCK_SQL.test(query.sql) ? Promise.resolve(0) : inner.executeRaw(query),
    // pglite-prisma-adapter 0.7.2 starts `exec` without awaiting it: a failing migration script
    // would be recorded as applied and its error would surface as an unhandled rejection. The
    // script runs on the adapter's PGlite instead (a private field of that version; the
    // broken-migration test fails if it moves).
    executeScript:
      pglite instanceof PGlite ? (script) => runPgliteScript(pglite, script) : (script) => inner.executeScript(script),
    startTransaction: (isolationLevel) => inner.startTransaction(isolationLevel),
    dispose: () => inner.dispose(),
  };
  if (inner.getConnectionInfo) adapter.getConnectionInfo = () => inner.getConnectionInfo!();
  return adapter;
}

async function runPgliteScript(db: PGlite, script: string): Promise<void> {
  try {
    await db.exec(script);
  } catch (error) {
    if (!(error instanceof messages.DatabaseError)) throw error;
    throw new DriverAdapterError({
      kind: 'postgres',
      code: error.code ?? 'XX000',
      severity: error.severity ?? 'ERROR',
      message: error.message,
      detail: error.detail,
      column: error.column,
      hint: error.hint,
    });
  }
}

/**
 * A readable message for errors from the engine or an adapter. Engine errors carry a Rust span
 * trace after the message ("   0: schema_engine_wasm::..."); adapter errors carry only a kind.
 */
export function engineErrorMessage(error: unknown): string {
  if (isDriverAdapterError(error)) {
    const cause = error.cause;
    if (cause.kind === 'postgres') return `${cause.message} (${cause.code})`;
    if (cause.originalMessage) return cause.originalMessage;
    const { kind, ...details } = cause;
    const fields = Object.entries(details).filter(([, value]) => value !== undefined);
    return fields.length === 0
      ? kind
      : `${kind} (${fields.map(([key, value]) => `${key}: ${String(value)}`).join(', ')})`;
  }
  const text = error instanceof Error ? error.message : String(error);
  const trace = text.search(/\n\s*0: /);
  return (trace === -1 ? text : text.slice(0, trace)).trim();
}
