// Prisma's schema engine compiled to WebAssembly, driven through a driver adapter instead of a
// connection string, so migrations work without the native engine binary.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { compileFunction } from 'node:vm';
import type { PGlite } from '@electric-sql/pglite';
import {
  bindMigrationAwareSqlAdapterFactory,
  DriverAdapterError,
  isDriverAdapterError,
  type SqlDriverAdapter,
  type SqlDriverAdapterFactory,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import { PGLITE_ADAPTER_NAME } from '../open-database.js';
import type * as EngineGlue from '@prisma/schema-engine-wasm/schema_engine_bg';
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

type Runtime = typeof EngineGlue;

/** One instance of the engine, shared by the runs that overlap in time or follow closely. */
interface Loaded {
  runtime: Promise<Runtime>;
  /** Runs using it now. */
  users: number;
  /** The engine's pending timers: cleared when the instance is dropped. */
  timers: Set<NodeJS.Timeout>;
  /** Armed when the last run finishes: drops the instance unless another run starts first. */
  drop?: NodeJS.Timeout;
}

/**
 * How long an unused instance is kept: runs that follow one another (the CLI's create, the tests'
 * applications) share one compilation of the module, and a server drops it soon after start-up.
 */
const ENGINE_KEPT_MS = 2_000;

let current: Loaded | undefined;

/**
 * The engine's WebAssembly module, instantiated for as long as runs use it: a migration at
 * start-up is followed by hours of serving, and the instance (compiled code, linear memory,
 * the glue's caches: about 12 MB of RSS) must not stay behind for them. ENGINE_KEPT_MS after
 * the last run it is dropped (see releaseEngine), and a later run instantiates a new one.
 */
function acquireEngine(): Loaded {
  if (current === undefined) {
    const timers = new Set<NodeJS.Timeout>();
    const loaded: Loaded = { runtime: instantiateEngine(timers), users: 0, timers };
    // A failed load is not kept: the next run tries again.
    loaded.runtime.catch(() => {
      if (current === loaded) current = undefined;
    });
    current = loaded;
  }
  clearTimeout(current.drop);
  current.users += 1;
  return current;
}

function releaseEngine(loaded: Loaded): void {
  loaded.users -= 1;
  if (loaded.users > 0 || current !== loaded) return;
  loaded.drop = setTimeout(() => {
    if (current !== loaded || loaded.users > 0) return;
    current = undefined;
    // The lock timer the engine arms (see instantiateEngine) would hold the instance for 10 s more.
    for (const timer of loaded.timers) clearTimeout(timer);
    loaded.timers.clear();
  }, ENGINE_KEPT_MS).unref();
}

/**
 * Instantiates the engine's WebAssembly module with a glue module of its own. The package's main
 * entry imports the `.wasm` file as an ES module, which Node does not support without flags; and
 * the glue (`schema_engine_bg.js`) keeps the instance in module state, which an ES module import
 * would hold for the life of the process. So the glue's source (plain functions and classes,
 * no imports) is compiled here as a function's body each time, and its state goes with the last
 * reference to it.
 */
async function instantiateEngine(timers: Set<NodeJS.Timeout>): Promise<Runtime> {
  const require = createRequire(import.meta.url);
  // The .wasm file is not in the package's exports map: locate it next to the glue module.
  const gluePath = require.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
  const [source, bytes] = await Promise.all([
    readFile(gluePath, 'utf8'),
    readFile(join(dirname(gluePath), 'schema_engine_bg.wasm')),
  ]);
  const runtime = evaluateGlue(source, gluePath);
  const imports: Record<string, unknown> = { ...runtime };
  // The engine arms a 10 s timer when it requests its advisory lock and never clears it; an
  // unref'd timer keeps it from holding a finished process (e.g. the CLI) open for 10 s, and
  // releaseEngine clears it.
  for (const name of Object.keys(imports)) {
    if (name.startsWith('__wbg_setTimeout_')) {
      imports[name] = (callback: () => void, ms: number) => {
        const timer = setTimeout(() => {
          timers.delete(timer);
          callback();
        }, ms).unref();
        timers.add(timer);
        return timer;
      };
    }
  }
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { './schema_engine_bg.js': imports });
  (runtime as unknown as { __wbg_set_wasm(exports: WasmExports): void }).__wbg_set_wasm(exports);
  exports.__wbindgen_start();
  return runtime;
}

/** The glue module's exports, from a fresh evaluation of its source. */
function evaluateGlue(source: string, filename: string): Runtime {
  const exported = /^export (function|class) ([\w$]+)/gm;
  const names = [...source.matchAll(exported)].map((match) => match[2]!);
  const body = source.replace(exported, '$1 $2');
  // Anything else exported or imported would be lost here: fail loudly (every migration test
  // fails) rather than run a half-wired engine, should a new version of the package add any.
  if (names.length === 0 || /^\s*(import|export)\b/m.test(body)) {
    throw new Error(`${filename}: unexpected module syntax (only exported functions and classes are supported)`);
  }
  return compileFunction(`${body}\nreturn { ${names.join(', ')} };`, [], { filename })() as Runtime;
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
  const loaded = acquireEngine();
  try {
    return await runEngine(await loaded.runtime, factory, options, fn);
  } finally {
    releaseEngine(loaded);
  }
}

async function runEngine<T>(
  { SchemaEngine }: Runtime,
  factory: SqlDriverAdapterFactory,
  options: EngineOptions,
  fn: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
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
  return factory.adapterName === PGLITE_ADAPTER_NAME;
}

function wrapAdapter(inner: SqlDriverAdapter, dropEngineLock: boolean): SqlDriverAdapter {
  const pglite: unknown = isPglite(inner) ? Reflect.get(inner, 'client') : undefined;
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
      pglite === undefined
        ? (script) => inner.executeScript(script)
        : (script) => runPgliteScript(inner, pglite, script),
    startTransaction: (isolationLevel) => inner.startTransaction(isolationLevel),
    dispose: () => inner.dispose(),
  };
  if (inner.getConnectionInfo) adapter.getConnectionInfo = () => inner.getConnectionInfo!();
  return adapter;
}

async function runPgliteScript(inner: SqlDriverAdapter, client: unknown, script: string): Promise<void> {
  // Loaded here, not at the top: on PostgreSQL the server never loads PGlite.
  const { messages, PGlite } = await import('@electric-sql/pglite');
  if (!(client instanceof PGlite)) return inner.executeScript(script);
  const db: PGlite = client;
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
