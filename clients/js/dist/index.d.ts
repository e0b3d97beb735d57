/**
 * Longhouse presence client.
 *
 * `connect(url, { identity })` joins a space and keeps a live roster of it:
 * it pings at a third of the lease, reconnects after a lost connection with
 * exponential back-off and jitter, and resumes with its id so that nobody
 * sees it leave. See docs/PROTOCOL.md for the protocol it speaks.
 *
 * No runtime dependencies: it needs a WebSocket implementation, the global
 * one by default (browsers; Node 22+, or Node 20 with
 * `--experimental-websocket`), or any constructor passed as `WebSocket`.
 */
/** One client present in the space, as the server describes it. */
export interface PresenceClient {
    /** The client's id (a UUID v4, or a requested id). */
    id: string;
    /** Who the user is, exactly as it joined. */
    identity: string;
    /** When it joined: RFC 3339, UTC, millisecond precision. */
    joinedAt: string;
}
/**
 * Where the connection stands.
 *
 * - `connecting`: opening a socket for a fresh join.
 * - `open`: joined; the roster is live.
 * - `reconnecting`: the socket is gone and a new one is being opened or
 *   waited for (resuming with the same id when the server allows).
 * - `closed`: stopped for good (by `close()`, or by the server: replaced
 *   by a newer connection (4001) or a refused join (1008)).
 */
export type PresenceStatus = "connecting" | "open" | "reconnecting" | "closed";
/** Why the status changed, passed with every `status` event. */
export interface StatusChange {
    /** The new status. */
    status: PresenceStatus;
    /** Close code of the socket that ended, when one did. */
    code?: number;
    /** For `reconnecting`: milliseconds until the next attempt. */
    delayMs?: number;
    /** For `reconnecting`: how many attempts failed in a row before this one. */
    attempt?: number;
    /** For `closed`: the server's error message that came with the close, if any. */
    error?: string;
    /** A short machine-readable reason: `closed-by-client`, `replaced`, `refused`, `lost`, `restart`, `expired`. */
    reason?: string;
}
/** The events a `Presence` emits, with their listener signatures. */
export interface PresenceEvents {
    /** A welcome replaced the roster (after each join or resume). */
    sync: (clients: PresenceClient[]) => void;
    /** Someone appeared in the roster. */
    join: (client: PresenceClient) => void;
    /** Someone disappeared from the roster. */
    leave: (client: PresenceClient) => void;
    /** This client's lease ran out; a fresh join follows. */
    expired: () => void;
    /** The connection status changed. */
    status: (change: StatusChange) => void;
    /** The server sent an error message (fatal ones also end in `closed`). */
    error: (message: string) => void;
}
/** The part of the WebSocket API this client uses. */
export interface WebSocketLike {
    /** 0 connecting, 1 open, 2 closing, 3 closed. */
    readonly readyState: number;
    /** Called when the socket opens. */
    onopen: ((event: any) => void) | null;
    /** Called with each message (`event.data`). */
    onmessage: ((event: any) => void) | null;
    /** Called when the socket ends (`event.code`). */
    onclose: ((event: any) => void) | null;
    /** Called on a socket error (a close always follows). */
    onerror: ((event: any) => void) | null;
    /** Sends a text frame. */
    send(data: string): void;
    /** Starts the close handshake. */
    close(code?: number, reason?: string): void;
}
/** A WebSocket constructor, such as `globalThis.WebSocket` or `ws`'s. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/** Options of `connect`. Give `identity` or `token`. */
export interface ConnectOptions {
    /** Who the user is: sent as `?identity=`. */
    identity?: string;
    /** A token standing for the identity, for servers that issue them: sent as `?token=`. */
    token?: string;
    /** The server's lease length (`PRESENCE_TTL`) in ms; pings go every third of it. Default 60000. */
    ttlMs?: number;
    /** Ping period in ms; default `ttlMs / 3`. */
    pingIntervalMs?: number;
    /** An id to join with (resumes it if its lease is alive). Default: the server picks one. */
    id?: string;
    /** First reconnection delay in ms (doubled per failed attempt, with jitter). Default 500. */
    minBackoffMs?: number;
    /** Longest reconnection delay in ms. Default 10000. */
    maxBackoffMs?: number;
    /** How long an attempt may take to be welcomed before it counts as failed, ms. Default 10000. */
    connectTimeoutMs?: number;
    /** The WebSocket constructor to use. Default `globalThis.WebSocket`. */
    WebSocket?: WebSocketConstructor;
}
/** A live presence in one space, returned by `connect`. */
export interface Presence {
    /** The roster of the space, this client included, in join order. */
    clients(): PresenceClient[];
    /** This client's id, once welcomed. */
    readonly id: string | undefined;
    /** The current status. */
    readonly status: PresenceStatus;
    /** The last error message the server sent, if any. */
    readonly lastError: string | undefined;
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): () => void;
    /** Removes a listener. */
    off<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): void;
    /** Leaves the space (a clean close: others see the leave at once) and stops. */
    close(): void;
}
/** Close codes of the protocol (section 8). */
export declare const CloseCodes: {
    readonly NORMAL: 1000;
    readonly UNSUPPORTED_DATA: 1007;
    readonly POLICY: 1008;
    readonly TOO_LARGE: 1009;
    readonly INTERNAL: 1011;
    readonly RESTART: 1012;
    readonly EXPIRED: 4000;
    readonly REPLACED: 4001;
};
/** The one message a client sends. */
export declare const PING = "{\"action\":\"ping\"}";
/**
 * Builds `ws[s]://host/{space}` from a base URL (`ws:`, `wss:`, `http:` or
 * `https:`) and a space name, encoding the space as one path segment.
 */
export declare function spaceUrl(base: string, space: string): string;
/**
 * Joins the space at `url` (`ws://host/{space}`, see `spaceUrl`) and keeps
 * its roster live until `close()`.
 */
export declare function connect(url: string, options: ConnectOptions): Presence;
