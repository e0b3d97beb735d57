/**
 * One presence in one space: the socket's life (join, pings, reconnection
 * with back-off, resume with the id, the close codes that stop it), the
 * roster it keeps, and this connection's own state, sent throttled.
 */
import type { ConnectOptions, Json, Presence, PresenceClient, PresenceEvents, PresenceMember, PresenceState, PresenceStatus } from "./types.js";
/** The `Presence` that `connect` returns. */
export declare class PresenceConnection implements Presence {
    private readonly url;
    private readonly options;
    private readonly Ctor;
    private readonly pingMs;
    private readonly minBackoff;
    private readonly maxBackoff;
    private readonly connectTimeout;
    private readonly maxStateBytes;
    private readonly listeners;
    private socket;
    private roster;
    private myId;
    private welcomed;
    private failures;
    private pendingError;
    private pingTimer;
    private retryTimer;
    private connectTimer;
    private current;
    private error;
    /** This connection's state as last set. */
    private local;
    /** The state the server holds for this lease, as far as this client knows. */
    private held;
    private readonly throttle;
    constructor(url: string, options: ConnectOptions);
    get id(): string | undefined;
    get status(): PresenceStatus;
    get lastError(): string | undefined;
    get state(): PresenceState | null;
    clients(): PresenceClient[];
    others(): PresenceClient[];
    members(): PresenceMember[];
    setState(state: PresenceState | null): void;
    broadcast(data: Json): boolean;
    on<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): () => void;
    off<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): void;
    close(): void;
    private emit;
    private tell;
    private setStatus;
    /** Sends a text frame if joined; says whether it went. */
    private sendText;
    /** The throttle's send: the local state, if the server does not hold it yet. */
    private sendState;
    private open;
    /** An attempt that will not be welcomed: drop it and count a lost connection. */
    private failed;
    private message;
    private welcome;
    private startPings;
    private stopPings;
    private clearConnectTimer;
    private stopTimers;
    private closed;
    /** Full jitter: a random delay up to the exponential cap. */
    private backoff;
    private retry;
}
