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
/** Calls `send` at most once per `intervalMs`, the latest request never lost. */
export declare class Throttle {
    private readonly intervalMs;
    private readonly send;
    private readonly clock;
    private lastSent;
    private timer;
    /**
     * `send` does the work and says whether it sent anything (a send that
     * had nothing to do, or could not, does not start an interval).
     */
    constructor(intervalMs: number, send: () => boolean, clock?: ThrottleClock);
    /** Whether a send is held for the end of the interval. */
    get pending(): boolean;
    /** Asks for a send: now if the interval has passed, else at its end. */
    request(): void;
    /** Sends a held request now (before a close, say). */
    flush(): void;
    /** Drops a held request. */
    cancel(): void;
    private fire;
}
