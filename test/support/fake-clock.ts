import { Clock, type ClockTimer } from '../../src/common/clock.js';

/** A clock that tests move by hand: expiry and grace windows without sleeping. */
export class FakeClock extends Clock {
  private offsetMs = 0;
  /** When frozen, the instant (before `offsetMs`) the clock stands still at. */
  private frozenAtMs: number | undefined;
  /** Timers set on this clock, fired by advance() once due (and by real time while it runs). */
  private readonly timers = new Set<{ atMs: number; fire: () => void }>();

  override now(): Date {
    return new Date(this.nowMs());
  }

  override nowMs(): number {
    return (this.frozenAtMs ?? Date.now()) + this.offsetMs;
  }

  /**
   * A running clock waits in real time, as the real one does (several apps in one test
   * must keep agreeing on the time); a frozen one makes the time pass at once, since
   * nothing else would move it.
   */
  override sleep(ms: number): Promise<void> {
    if (this.frozenAtMs === undefined) return super.sleep(ms);
    this.offsetMs += ms;
    return Promise.resolve();
  }

  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
    this.fireDue();
  }

  override setTimeout(fn: () => void, ms: number): ClockTimer {
    let real: NodeJS.Timeout | undefined;
    const timer = {
      atMs: this.nowMs() + ms,
      fire: () => {
        if (!this.timers.delete(timer)) return; // fired or cancelled already
        clearTimeout(real);
        fn();
      },
    };
    this.timers.add(timer);
    // While the clock runs, real time moves it too; a frozen clock fires only on advance().
    if (this.frozenAtMs === undefined) {
      real = setTimeout(() => timer.fire(), Math.max(0, ms));
      real.unref();
    }
    return {
      cancel: () => {
        this.timers.delete(timer);
        clearTimeout(real);
      },
    };
  }

  /** Fires, in time order, every timer whose time has come. */
  private fireDue(): void {
    const due = [...this.timers].filter((t) => t.atMs <= this.nowMs()).sort((a, b) => a.atMs - b.atMs);
    for (const t of due) t.fire();
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
