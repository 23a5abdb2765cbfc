import type { Redis } from 'ioredis';

/** Consecutive failures under one key (an account or an IP) and when the last one was. */
export interface AttemptRecord {
  failures: number;
  lastFailureMs: number;
}

/**
 * Where failure counters live: this process, or Redis so that every instance counts the
 * same attempts. Time is the caller's (an injectable clock); the store's own expiry only
 * cleans up.
 */
export interface AttemptStore {
  get(key: string): Promise<AttemptRecord | null>;
  recordFailure(key: string, nowMs: number, keepMs: number): Promise<AttemptRecord>;
  reset(key: string): Promise<void>;
  /** Remembers `key` until `nowMs + keepMs` (a source that has logged in to an account). */
  mark(key: string, nowMs: number, keepMs: number): Promise<void>;
  /** Whether `key` was marked and its mark has not run out at `nowMs`. */
  isMarked(key: string, nowMs: number): Promise<boolean>;
}

/** Most keys kept in memory; past it expired ones go first, then the oldest. */
const MAX_MEMORY_KEYS = 100_000;

export class MemoryAttemptStore implements AttemptStore {
  private readonly records = new Map<string, AttemptRecord & { expiresMs: number }>();
  /** Marks apart from the counters: failures from many addresses cannot push them out. */
  private readonly marks = new Map<string, number>();

  async get(key: string): Promise<AttemptRecord | null> {
    return this.records.get(key) ?? null;
  }

  async recordFailure(key: string, nowMs: number, keepMs: number): Promise<AttemptRecord> {
    const previous = this.records.get(key);
    const failures = previous && previous.expiresMs > nowMs ? previous.failures + 1 : 1;
    const record = { failures, lastFailureMs: nowMs, expiresMs: nowMs + keepMs };
    this.records.delete(key); // re-inserted last: the Map's order is oldest-updated first
    this.records.set(key, record);
    if (this.records.size > MAX_MEMORY_KEYS) this.prune(nowMs);
    return { failures, lastFailureMs: nowMs };
  }

  async reset(key: string): Promise<void> {
    this.records.delete(key);
  }

  async mark(key: string, nowMs: number, keepMs: number): Promise<void> {
    this.marks.delete(key);
    this.marks.set(key, nowMs + keepMs);
    if (this.marks.size > MAX_MEMORY_KEYS) {
      for (const [k, until] of this.marks) if (until <= nowMs) this.marks.delete(k);
      for (const k of this.marks.keys()) {
        if (this.marks.size <= MAX_MEMORY_KEYS * 0.9) break;
        this.marks.delete(k);
      }
    }
  }

  async isMarked(key: string, nowMs: number): Promise<boolean> {
    return (this.marks.get(key) ?? 0) > nowMs;
  }

  /** Bounded memory whatever the keys (e.g. many client addresses). */
  private prune(nowMs: number): void {
    for (const [key, r] of this.records) if (r.expiresMs <= nowMs) this.records.delete(key);
    for (const key of this.records.keys()) {
      if (this.records.size <= MAX_MEMORY_KEYS * 0.9) break;
      this.records.delete(key);
    }
  }
}

/** Atomic read-modify-write of the counter: restart it when the window went by. */
const RECORD_FAILURE = `
local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local now = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
if now - last >= keep then f = 0 end
f = f + 1
redis.call('HSET', KEYS[1], 'f', f, 'last', now)
redis.call('PEXPIRE', KEYS[1], keep + 60000)
return f
`;

export class RedisAttemptStore implements AttemptStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'gatehouse:attempts:',
  ) {}

  async get(key: string): Promise<AttemptRecord | null> {
    const [f, last] = await this.redis.hmget(this.prefix + key, 'f', 'last');
    if (f === null || last === null) return null;
    return { failures: Number(f), lastFailureMs: Number(last) };
  }

  async recordFailure(key: string, nowMs: number, keepMs: number): Promise<AttemptRecord> {
    const failures = (await this.redis.eval(RECORD_FAILURE, 1, this.prefix + key, nowMs, keepMs)) as number;
    return { failures, lastFailureMs: nowMs };
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }

  /** One SET: the value is the caller's deadline, Redis's expiry only cleans up. */
  async mark(key: string, nowMs: number, keepMs: number): Promise<void> {
    await this.redis.set(`${this.prefix}mark:${key}`, String(nowMs + keepMs), 'PX', keepMs + 60_000);
  }

  async isMarked(key: string, nowMs: number): Promise<boolean> {
    const until = await this.redis.get(`${this.prefix}mark:${key}`);
    return until !== null && Number(until) > nowMs;
  }
}
