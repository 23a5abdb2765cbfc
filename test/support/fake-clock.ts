import { Clock } from '../../src/common/clock.js';

/** A clock that tests move by hand: expiry and grace windows without sleeping. */
export class FakeClock extends Clock {
  private offsetMs = 0;

  override now(): Date {
    return new Date(this.nowMs());
  }

  override nowMs(): number {
    return Date.now() + this.offsetMs;
  }

  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }
}
