import { Clock } from '../../src/common/clock.js';

/** A clock that tests move by hand: expiry and grace windows without sleeping. */
export class FakeClock extends Clock {
  private offsetMs = 0;
  /** When frozen, the instant (before `offsetMs`) the clock stands still at. */
  private frozenAtMs: number | undefined;

  override now(): Date {
    return new Date(this.nowMs());
  }

  override nowMs(): number {
    return (this.frozenAtMs ?? Date.now()) + this.offsetMs;
  }

  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }

  /**
   * Stops the clock (at its current reading, or at `atMs`): only advance() moves it then.
   * For tests whose outcome must not depend on how long the requests themselves take.
   */
  freeze(atMs: number = this.nowMs()): void {
    this.frozenAtMs = atMs;
    this.offsetMs = 0;
  }

  /** Lets the clock run again, from where it stands now. */
  unfreeze(): void {
    if (this.frozenAtMs === undefined) return;
    this.offsetMs = this.frozenAtMs + this.offsetMs - Date.now();
    this.frozenAtMs = undefined;
  }
}
