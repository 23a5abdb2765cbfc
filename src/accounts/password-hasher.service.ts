import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import bcrypt from 'bcrypt';
import type { Piscina } from 'piscina';
import { StartupError } from '../common/errors/startup-error.js';
import { InjectConfig } from '../config/config.token.js';
import type { AppConfig } from '../config/config.schema.js';
import { SecretsService } from '../config/secrets.service.js';
import { UsersRepository } from './users.repository.js';

/** The outcome of checking a password against a stored hash. */
export interface Verification {
  ok: boolean;
  /** The password is right and its hash should be made again with hash(): lower cost, or made before NFC. */
  rehash: boolean;
}

/** How often, at most, the dummy hash's cost is checked again against the stored hashes. */
const DUMMY_REFRESH_MS = 15 * 60 * 1000;

/** bcrypt's lowest cost, and the form of a hash made at it: `$2b$04$` + salt and checksum. */
const MIN_COST = 4;
const MIN_COST_HASH = /^\$2b\$04\$([./A-Za-z0-9]{53})$/;

/**
 * The cores this process may use: Node's count (the CPUs it may run on), or fewer when a
 * cgroup v2 CPU quota (`cpu.max`: quota and period in microseconds, or `max`) allows less, as
 * a container's CPU limit does. Node 20's libuv does not read quotas: in a container limited to
 * 2 CPUs on a 64-core host it counts 64.
 */
export function cpuBudget(cpuMax: string | null = readCpuMax(), cores = availableParallelism()): number {
  const [quota, period] = (cpuMax ?? '').trim().split(/\s+/).map(Number);
  if (quota === undefined || period === undefined || !(quota > 0) || !(period > 0)) return cores;
  return Math.max(1, Math.min(cores, Math.ceil(quota / period)));
}

function readCpuMax(): string | null {
  try {
    return readFileSync('/sys/fs/cgroup/cpu.max', 'utf8');
  } catch {
    return null; // no cgroup v2 here (or not Linux)
  }
}

/** bcrypt's worker threads: one per core it may use, as many comparisons at once as the CPU can run. */
export const BCRYPT_THREADS = cpuBudget();

/**
 * How much lower than the rest of the process bcrypt's threads are scheduled (a nice value
 * added to theirs, Linux only). A login is a few hundred milliseconds of CPU that nobody waits
 * on to the millisecond; the event loop answers requests that take a fraction of one. With both
 * at one priority, a login flood that fills every core makes each cheap request wait for the
 * scheduler to take a core back from bcrypt (several milliseconds at p99 on 2 cores:
 * `login_latency` in `npm run bench`). Lowered, bcrypt still gets every cycle the rest leaves
 * (login throughput unchanged when nothing else runs), and the event loop gets a core as soon
 * as it has work. 10 rather than 19: under a CPU saturated by requests, logins still get about a
 * tenth of a core each instead of starving.
 */
export const BCRYPT_NICE_INCREMENT = 10;

/** How long an idle bcrypt thread beyond the first is kept before it ends. */
const BCRYPT_IDLE_MS = 60_000;

/** The workers' code: beside this module in src/, and copied beside the bundle's main.js. */
const BCRYPT_WORKER = new URL('./bcrypt-worker.mjs', import.meta.url).href;

/**
 * A well-formed bcrypt hash at `cost` that no known password matches, made without doing the
 * work of `cost`: a hash made at the lowest cost, of random bytes, with its cost field
 * rewritten. bcrypt's work for a comparison depends only on the cost field of the hash
 * compared with (2^cost rounds of its key schedule, then the checksum is compared), so a
 * comparison with this one costs exactly what a comparison with a stored hash at `cost` costs.
 * Hashing a dummy at the real cost instead took a whole bcrypt hash (about 240 ms at cost 12
 * on a 2-core machine) before the server could listen.
 */
async function dummyHashAt(cost: number): Promise<string> {
  const low = await bcrypt.hash(randomBytes(32).toString('base64'), MIN_COST);
  const parts = MIN_COST_HASH.exec(low);
  if (!parts) throw new Error(`unexpected bcrypt hash format: ${low.slice(0, 7)}`);
  return `$2b$${String(cost).padStart(2, '0')}$${parts[1]}`;
}

/**
 * Password hashing with bcrypt (native), on worker threads of its own at a lower priority
 * (BCRYPT_THREADS, BCRYPT_NICE_INCREMENT): the event loop stays free, and so does libuv's
 * thread pool, where access tokens are signed and checked (AccessTokenService). The threads
 * start at the first hash or comparison, not with the server.
 *
 * bcrypt reads only the first 72 bytes of its input, and the contract accepts passwords of
 * up to 128 characters (up to 512 bytes in UTF-8), so a password is never given to bcrypt
 * as is: it is first pre-hashed with HMAC-SHA-256 under a server-side pepper and
 * base64-encoded (44 ASCII bytes, no NUL), as OWASP's Password Storage Cheat Sheet describes
 * ("Pre-Hashing Passwords with Bcrypt"). Every byte of the password then counts, and the
 * keyed hash prevents "password shucking" with leaked unsalted hashes.
 *
 * Passwords are Unicode-normalised to NFC before hashing and verifying (NIST SP 800-63B
 * §5.1.1.2), so that "é" typed precomposed or as "e" + combining accent is one password.
 * Hashes made before that were made from the string as sent: verify() tries the NFC form
 * first and, when it fails and the raw string differs from it, the raw string, and reports
 * a success of the raw form as needing a rehash (which login does, from the NFC form).
 */
@Injectable()
export class PasswordHasher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Passwords');
  /**
   * Verified against when the account does not exist, so that an unknown username costs
   * the same bcrypt work as a wrong password (no user enumeration by timing). Its cost is
   * the one most stored hashes have, not BCRYPT_COST: after BCRYPT_COST is raised, existing
   * hashes keep their old cost until their owners log in, and a dummy at the new cost would
   * make every unknown username slower than every known one. The most common cost makes the
   * bulk of the accounts indistinguishable (a minority at another cost stays measurable until
   * it is upgraded); without users it is BCRYPT_COST. Computed at start-up and checked again
   * at most every 15 minutes as hashes are upgraded (at login, on password changes, by other
   * instances).
   */
  private dummyHash = '';
  private dummyCheckedMs = 0;
  /**
   * bcrypt's threads (piscina, loaded with the first job: a server that no one logs in to
   * neither loads it nor starts them); its queue holds the jobs beyond them.
   */
  private pool: Promise<Piscina> | undefined;
  private closed = false;

  constructor(
    @InjectConfig() private readonly config: AppConfig,
    private readonly secrets: SecretsService,
    private readonly users: UsersRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // The threads start at the first hash: a build without the workers' file must fail here,
    // at start-up, not at the first signup or login.
    const worker = fileURLToPath(BCRYPT_WORKER);
    await access(worker).catch(() => {
      throw new StartupError(`bcrypt's worker file is missing: ${worker} (build with npm run build)`);
    });
    await this.refreshDummyHash();
  }

  /**
   * Ends bcrypt's threads (after the server has stopped taking requests). A job that comes
   * later still gets its answer, from bcrypt on libuv's pool, without starting threads again.
   */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = undefined;
    await (await pool?.catch(() => undefined))?.destroy();
  }

  /** The bcrypt cost of the hash verified against for unknown accounts. */
  get dummyHashCost(): number {
    return bcrypt.getRounds(this.dummyHash);
  }

  /** Makes the dummy hash again if the most common stored cost has changed. */
  async refreshDummyHash(): Promise<void> {
    this.dummyCheckedMs = Date.now();
    let cost = this.config.BCRYPT_COST;
    try {
      cost = (await this.users.mostCommonPasswordCost()) ?? cost;
    } catch (error) {
      this.logger.warn(
        `cannot read the stored password costs, the dummy hash uses BCRYPT_COST: ${(error as Error).message}`,
      );
      if (this.dummyHash) return; // keep the one we have
    }
    cost = Math.min(31, Math.max(4, cost));
    if (this.dummyHash && bcrypt.getRounds(this.dummyHash) === cost) return;
    // A cost-4 hash (about a millisecond): on libuv's pool, without starting bcrypt's threads.
    this.dummyHash = await dummyHashAt(cost);
  }

  hash(password: string): Promise<string> {
    const prehashed = this.prehash(password.normalize('NFC'));
    const cost = this.config.BCRYPT_COST;
    return this.closed ? bcrypt.hash(prehashed, cost) : this.run<string>('hash', { data: prehashed, cost });
  }

  /** Compares in constant time (bcrypt's compare); `hash` null means "no such user". */
  async verify(password: string, hash: string | null): Promise<boolean> {
    return (await this.verifyWithRehash(password, hash)).ok;
  }

  /**
   * verify(), also telling whether the stored hash should be replaced by hash(password):
   * made at a lower cost than BCRYPT_COST, or from the password before NFC normalisation.
   * An unknown account ("hash" null) takes the same comparisons as a wrong password.
   */
  async verifyWithRehash(password: string, hash: string | null): Promise<Verification> {
    if (!this.dummyHash) await this.refreshDummyHash();
    else if (Date.now() - this.dummyCheckedMs > DUMMY_REFRESH_MS) void this.refreshDummyHash().catch(() => undefined);
    const target = hash ?? this.dummyHash;
    const nfc = password.normalize('NFC');
    if (await this.compare(this.prehash(nfc), target)) {
      return hash === null ? { ok: false, rehash: false } : { ok: true, rehash: this.needsRehash(hash) };
    }
    // A hash from before normalisation, made from the raw string.
    if (nfc !== password && (await this.compare(this.prehash(password), target))) {
      return { ok: hash !== null, rehash: hash !== null };
    }
    return { ok: false, rehash: false };
  }

  /** True when the hash was made at a lower cost than the configured one (never downgrade). */
  needsRehash(hash: string): boolean {
    return bcrypt.getRounds(hash) < this.config.BCRYPT_COST;
  }

  /**
   * bcrypt's comparison, in its turn among the bcrypt jobs. After shutdown (hash() too): on
   * libuv's pool, without starting threads again.
   */
  private compare(prehashed: string, hash: string): Promise<boolean> {
    return this.closed ? bcrypt.compare(prehashed, hash) : this.run<boolean>('compare', { data: prehashed, hash });
  }

  /** One job of bcrypt-worker.mjs on bcrypt's threads (queued while they are all busy). */
  private async run<T>(
    name: 'compare' | 'hash',
    task: { data: string; hash: string } | { data: string; cost: number },
  ): Promise<T> {
    const pool = (this.pool ??= this.startPool());
    return (await pool).run(task, { name }) as Promise<T>;
  }

  private startPool(): Promise<Piscina> {
    const started = import('piscina').then(({ Piscina }) => {
      const pool = new Piscina({
        filename: BCRYPT_WORKER,
        minThreads: 1,
        maxThreads: BCRYPT_THREADS,
        idleTimeout: BCRYPT_IDLE_MS,
        // Jobs start in the order they came (piscina's default may put one back behind newer ones).
        stricterFIFO: true,
        // Linux only: elsewhere nice() may lower the whole process (macOS) or mean something else.
        niceIncrement: process.platform === 'linux' ? BCRYPT_NICE_INCREMENT : 0,
      });
      // A thread that cannot start (its file or bcrypt unloadable): piscina stops starting
      // threads and emits 'error', which unheard would end the process. The pool is dropped,
      // its queued jobs fail (500s), and the next job starts a new one.
      pool.on('error', (error: unknown) => {
        this.logger.error(`bcrypt's worker threads failed: ${error instanceof Error ? error.message : String(error)}`);
        if (this.pool === started) this.pool = undefined;
        void pool.destroy().catch(() => undefined);
      });
      return pool;
    });
    // A failed start is not kept: the next job tries again.
    started.catch(() => {
      if (this.pool === started) this.pool = undefined;
    });
    return started;
  }

  private prehash(password: string): string {
    return createHmac('sha256', this.secrets.passwordPepper).update(password, 'utf8').digest('base64');
  }
}
