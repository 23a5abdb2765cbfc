import { Injectable } from '@nestjs/common';

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
}
