/**
 * At most one send per interval, trailing edge: a request when the interval
 * since the last send has passed goes at once; a sooner one is held until
 * the interval ends, and whatever is latest then is what goes. Requests
 * while one is held add nothing, so a `mousemove` handler may call it on
 * every event.
 */

/** The clock a `Throttle` reads and sets timers on (the global one by default). */
export interface ThrottleClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Runs `f` after `ms`. */
  setTimeout(f: () => void, ms: number): unknown;
  /** Cancels a timer `setTimeout` made. */
  clearTimeout(timer: unknown): void;
}

const globalClock: ThrottleClock = {
  now: () => (typeof performance !== "undefined" ? performance.now() : Date.now()),
  setTimeout: (f, ms) => setTimeout(f, ms),
  clearTimeout: (t) => clearTimeout(t as ReturnType<typeof setTimeout>),
};

/** Calls `send` at most once per `intervalMs`, the latest request never lost. */
export class Throttle {
  private lastSent = Number.NEGATIVE_INFINITY;
  private timer: unknown = undefined;

  /**
   * `send` does the work and says whether it sent anything (a send that
   * had nothing to do, or could not, does not start an interval).
   */
  constructor(
    private readonly intervalMs: number,
    private readonly send: () => boolean,
    private readonly clock: ThrottleClock = globalClock,
  ) {}

  /** Whether a send is held for the end of the interval. */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  /** Asks for a send: now if the interval has passed, else at its end. */
  request(): void {
    if (this.timer !== undefined) return;
    const wait = this.lastSent + this.intervalMs - this.clock.now();
    if (wait <= 0) {
      this.fire();
    } else {
      this.timer = this.clock.setTimeout(() => {
        this.timer = undefined;
        // Timers may fire a little early (their clock is coarser): wait out the rest.
        this.request();
      }, wait);
    }
  }

  /** Sends a held request now (before a close, say). */
  flush(): void {
    if (this.timer === undefined) return;
    this.cancel();
    this.fire();
  }

  /** Drops a held request. */
  cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire(): void {
    if (this.send()) this.lastSent = this.clock.now();
  }
}
