import type { Redis } from 'ioredis';

/** Consecutive failures under one key (an account or an IP) and when the last one was. */
export interface AttemptRecord {
  failures: number;
  lastFailureMs: number;
}

/** How long failures are remembered and how long the back-off may grow. */
export interface BackoffPolicy {
  /** A counter is forgotten this long after its last failure. */
  windowMs: number;
  /** The longest wait ever imposed. */
  maxWaitMs: number;
}

/** One counter an attempt is charged to. */
export interface CounterSpec {
  key: string;
  /** Failures allowed before the back-off starts. */
  limit: number;
  /** A mark (see mark()) that, while live, lifts this counter's wait (the attempt still counts). */
  unlessMarked?: string;
}

/** What release() needs to take an admitted attempt out of one counter again. */
export interface ReservedCount {
  key: string;
  /** When the counter's current run of failures began: a reset or a restart since then is left alone. */
  runStartMs: number;
  /** The counter's last failure before this attempt (null: the attempt started the run). */
  previousLastMs: number | null;
}

/** An admitted attempt, counted as a failure on each of its counters at `atMs`. */
export interface Reservation {
  atMs: number;
  counts: ReservedCount[];
}

export type ReserveOutcome = { admitted: true; reservation: Reservation } | { admitted: false; waitMs: number };

/**
 * Milliseconds still to wait under `record` at `nowMs` (0: go ahead): `limit` failures are
 * free, then 1 s after the last failure, doubling with each further one, at most maxWaitMs.
 * (The Redis script RESERVE computes the same.)
 */
export function backoffWaitMs(
  record: AttemptRecord | null,
  limit: number,
  nowMs: number,
  policy: BackoffPolicy,
): number {
  if (!record) return 0;
  if (nowMs - record.lastFailureMs >= policy.windowMs) return 0;
  if (record.failures < limit) return 0;
  const backoff = Math.min(1000 * 2 ** (record.failures - limit), policy.maxWaitMs);
  return Math.max(0, record.lastFailureMs + backoff - nowMs);
}

/**
 * Where failure counters live: this process, or Redis so that every instance counts the
 * same attempts. Time is the caller's (an injectable clock); the store's own expiry only
 * cleans up.
 *
 * An attempt is counted before its password is verified: reserve() answers the wait and,
 * when there is none, counts the attempt as a failure on every counter, in one atomic step,
 * so that concurrent attempts cannot all pass a check made before any of them is counted.
 */
export interface AttemptStore {
  get(key: string): Promise<AttemptRecord | null>;
  /**
   * Atomically: the longest wait of `counters` at `nowMs` and, when it is 0, one failure
   * stamped `nowMs` counted on each of them. A counter whose `unlessMarked` mark is live
   * does not make the attempt wait.
   */
  reserve(counters: readonly CounterSpec[], nowMs: number, policy: BackoffPolicy): Promise<ReserveOutcome>;
  /**
   * Takes an admitted attempt out of these counters again (its password was right): one
   * failure fewer, and the last failure back to what it was before it when no other attempt
   * was counted since. A counter reset or restarted since the attempt is left alone.
   */
  release(counts: readonly ReservedCount[], atMs: number): Promise<void>;
  reset(key: string): Promise<void>;
  /** Remembers `key` until `nowMs + keepMs` (a source that has logged in to an account). */
  mark(key: string, nowMs: number, keepMs: number): Promise<void>;
  /** Whether `key` was marked and its mark has not run out at `nowMs`. */
  isMarked(key: string, nowMs: number): Promise<boolean>;
}

/** Most keys kept in memory; past it expired ones go first, then the oldest. */
const MAX_MEMORY_KEYS = 100_000;

/** A counter as the stores keep it: its run's start and how many failures carry `lastFailureMs` (for release()). */
interface StoredRecord extends AttemptRecord {
  runStartMs: number;
  atLast: number;
  expiresMs: number;
}

export class MemoryAttemptStore implements AttemptStore {
  private readonly records = new Map<string, StoredRecord>();
  /** Marks apart from the counters: failures from many addresses cannot push them out. */
  private readonly marks = new Map<string, number>();

  async get(key: string): Promise<AttemptRecord | null> {
    const r = this.records.get(key);
    return r ? { failures: r.failures, lastFailureMs: r.lastFailureMs } : null;
  }

  /** Synchronous from the first read to the last write: nothing else runs in between. */
  async reserve(counters: readonly CounterSpec[], nowMs: number, policy: BackoffPolicy): Promise<ReserveOutcome> {
    let waitMs = 0;
    for (const c of counters) {
      const w = backoffWaitMs(this.live(c.key, nowMs), c.limit, nowMs, policy);
      if (w > waitMs && !(c.unlessMarked !== undefined && this.marked(c.unlessMarked, nowMs))) waitMs = w;
    }
    if (waitMs > 0) return { admitted: false, waitMs };
    const counts = counters.map((c) => this.count(c.key, nowMs, policy.windowMs));
    if (this.records.size > MAX_MEMORY_KEYS) this.prune(nowMs);
    return { admitted: true, reservation: { atMs: nowMs, counts } };
  }

  async release(counts: readonly ReservedCount[], atMs: number): Promise<void> {
    for (const c of counts) {
      const r = this.records.get(c.key);
      if (!r || r.runStartMs !== c.runStartMs) continue;
      if (r.failures <= 1) {
        this.records.delete(c.key);
        continue;
      }
      r.failures -= 1;
      if (r.lastFailureMs === atMs && --r.atLast <= 0 && c.previousLastMs !== null) {
        r.expiresMs += c.previousLastMs - r.lastFailureMs;
        r.lastFailureMs = c.previousLastMs;
        r.atLast = 1;
      }
    }
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
    return this.marked(key, nowMs);
  }

  private marked(key: string, nowMs: number): boolean {
    return (this.marks.get(key) ?? 0) > nowMs;
  }

  /** The counter, unless its window went by since its last failure. */
  private live(key: string, nowMs: number): StoredRecord | null {
    const r = this.records.get(key);
    return r && r.expiresMs > nowMs ? r : null;
  }

  /** One more failure at `nowMs`, restarting the counter when its window went by. */
  private count(key: string, nowMs: number, windowMs: number): ReservedCount {
    const previous = this.live(key, nowMs);
    const record: StoredRecord = previous
      ? {
          failures: previous.failures + 1,
          lastFailureMs: nowMs,
          runStartMs: previous.runStartMs,
          atLast: previous.lastFailureMs === nowMs ? previous.atLast + 1 : 1,
          expiresMs: nowMs + windowMs,
        }
      : { failures: 1, lastFailureMs: nowMs, runStartMs: nowMs, atLast: 1, expiresMs: nowMs + windowMs };
    this.records.delete(key); // re-inserted last: the Map's order is oldest-updated first
    this.records.set(key, record);
    return { key, runStartMs: record.runStartMs, previousLastMs: previous ? previous.lastFailureMs : null };
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

/**
 * reserve() in one script, so one atomic step: the wait of every counter (as
 * backoffWaitMs()), and when none must wait, one failure on each, restarting a counter whose
 * window went by. A counter is a hash: f (failures), last (last failure), start (its run's
 * first failure), n (failures stamped `last`).
 * KEYS: the counters, then the marks. ARGV: now, window, max wait, then for each counter its
 * limit and the index in KEYS of the mark that lifts its wait (0: none).
 * Answers {wait} when the attempt must wait, else {0, start1, prev1, start2, prev2, ...}
 * (prev: the counter's last failure before this one, -1 when this one started its run).
 */
const RESERVE = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxWait = tonumber(ARGV[3])
local count = (#ARGV - 3) / 2
local live = {}
local wait = 0
for i = 1, count do
  local h = redis.call('HMGET', KEYS[i], 'f', 'last', 'start', 'n')
  local f, last = tonumber(h[1]), tonumber(h[2])
  local r = false
  if f and last and now - last < window then
    r = { f = f, last = last, start = tonumber(h[3]) or last, n = tonumber(h[4]) or 1 }
  end
  live[i] = r
  local limit = tonumber(ARGV[2 + 2 * i])
  if r and r.f >= limit then
    local w = math.max(0, r.last + math.min(1000 * 2 ^ (r.f - limit), maxWait) - now)
    if w > wait then
      local mark = tonumber(ARGV[3 + 2 * i])
      if mark == 0 or (tonumber(redis.call('GET', KEYS[mark])) or 0) <= now then wait = w end
    end
  end
end
if wait > 0 then return { wait } end
local out = { 0 }
for i = 1, count do
  local r = live[i]
  local f, start, n, prev = 1, now, 1, -1
  if r then
    f, start, prev = r.f + 1, r.start, r.last
    if r.last == now then n = r.n + 1 end
  end
  redis.call('HSET', KEYS[i], 'f', f, 'last', now, 'start', start, 'n', n)
  redis.call('PEXPIRE', KEYS[i], window + 60000)
  out[#out + 1] = start
  out[#out + 1] = prev
end
return out
`;

/**
 * release() in one script. KEYS: the counters. ARGV: the attempt's time, then for each
 * counter the start and prev that RESERVE answered.
 */
const RELEASE = `
local at = tonumber(ARGV[1])
for i = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[i], 'f', 'last', 'start', 'n')
  local f, last = tonumber(h[1]), tonumber(h[2])
  if f and last and (tonumber(h[3]) or last) == tonumber(ARGV[2 * i]) then
    if f <= 1 then
      redis.call('DEL', KEYS[i])
    else
      local n = tonumber(h[4]) or 1
      local prev = tonumber(ARGV[2 * i + 1])
      if last == at then
        n = n - 1
        if n <= 0 and prev >= 0 then last, n = prev, 1 end
      end
      redis.call('HSET', KEYS[i], 'f', f - 1, 'last', last, 'n', n)
    end
  end
end
return 0
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

  /** One script for every counter and mark involved (see RESERVE): one atomic step on the Redis server. */
  async reserve(counters: readonly CounterSpec[], nowMs: number, policy: BackoffPolicy): Promise<ReserveOutcome> {
    const marks: string[] = [];
    const args: Array<string | number> = [nowMs, policy.windowMs, policy.maxWaitMs];
    for (const c of counters) {
      if (c.unlessMarked !== undefined) marks.push(this.markKey(c.unlessMarked));
      args.push(c.limit, c.unlessMarked !== undefined ? counters.length + marks.length : 0);
    }
    const keys = [...counters.map((c) => this.prefix + c.key), ...marks];
    const answer = (await this.redis.eval(RESERVE, keys.length, ...keys, ...args)) as number[];
    if (answer[0]! > 0) return { admitted: false, waitMs: answer[0]! };
    const counts = counters.map((c, i) => {
      const previous = answer[2 + 2 * i]!;
      return { key: c.key, runStartMs: answer[1 + 2 * i]!, previousLastMs: previous >= 0 ? previous : null };
    });
    return { admitted: true, reservation: { atMs: nowMs, counts } };
  }

  async release(counts: readonly ReservedCount[], atMs: number): Promise<void> {
    if (counts.length === 0) return;
    const args = counts.flatMap((c) => [c.runStartMs, c.previousLastMs ?? -1]);
    await this.redis.eval(RELEASE, counts.length, ...counts.map((c) => this.prefix + c.key), atMs, ...args);
  }

  async reset(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }

  /** One SET: the value is the caller's deadline, Redis's expiry only cleans up. */
  async mark(key: string, nowMs: number, keepMs: number): Promise<void> {
    await this.redis.set(this.markKey(key), String(nowMs + keepMs), 'PX', keepMs + 60_000);
  }

  async isMarked(key: string, nowMs: number): Promise<boolean> {
    const until = await this.redis.get(this.markKey(key));
    return until !== null && Number(until) > nowMs;
  }

  private markKey(key: string): string {
    return `${this.prefix}mark:${key}`;
  }
}
