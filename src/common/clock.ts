import { Injectable } from '@nestjs/common';

/** A timer set on a Clock; cancel() is idempotent. */
export interface ClockTimer {
  cancel(): void;
}

/** Time source. Tests replace it to move time forward without sleeping. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }

  nowMs(): number {
    return Date.now();
  }

  /** Resolves after `ms` milliseconds of this clock's time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * Calls `fn` once `ms` milliseconds of this clock's time have passed (a test clock fires it
   * when advanced past that point). The timer never keeps the process alive.
   */
  setTimeout(fn: () => void, ms: number): ClockTimer {
    const handle = setTimeout(fn, ms);
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}
