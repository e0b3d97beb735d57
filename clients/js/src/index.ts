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
export const CloseCodes = {
  NORMAL: 1000,
  UNSUPPORTED_DATA: 1007,
  POLICY: 1008,
  TOO_LARGE: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  EXPIRED: 4000,
  REPLACED: 4001,
} as const;

/** The one message a client sends. */
export const PING = '{"action":"ping"}';

/**
 * Builds `ws[s]://host/{space}` from a base URL (`ws:`, `wss:`, `http:` or
 * `https:`) and a space name, encoding the space as one path segment.
 */
export function spaceUrl(base: string, space: string): string {
  const u = new URL(base);
  u.protocol = u.protocol === "https:" || u.protocol === "wss:" ? "wss:" : "ws:";
  u.pathname = "/" + encodeURIComponent(space);
  u.search = "";
  u.hash = "";
  return u.toString();
}

/**
 * Joins the space at `url` (`ws://host/{space}`, see `spaceUrl`) and keeps
 * its roster live until `close()`.
 */
export function connect(url: string, options: ConnectOptions): Presence {
  return new PresenceConnection(url, options);
}

type Listeners = { [K in keyof PresenceEvents]: Set<PresenceEvents[K]> };

class PresenceConnection implements Presence {
  private readonly url: string;
  private readonly options: ConnectOptions;
  private readonly Ctor: WebSocketConstructor;
  private readonly pingMs: number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private readonly connectTimeout: number;
  private readonly listeners: Listeners = {
    sync: new Set(),
    join: new Set(),
    leave: new Set(),
    expired: new Set(),
    status: new Set(),
    error: new Set(),
  };
  private socket: WebSocketLike | undefined;
  private roster = new Map<string, PresenceClient>();
  private myId: string | undefined;
  private welcomed = false;
  private failures = 0;
  private pendingError: string | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private current: PresenceStatus = "connecting";
  private error: string | undefined;

  constructor(url: string, options: ConnectOptions) {
    if (!options || (!options.identity && !options.token)) {
      throw new TypeError("longhouse: connect() needs an identity or a token");
    }
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      throw new TypeError(
        "longhouse: no WebSocket implementation: pass options.WebSocket (on Node 20, or run with --experimental-websocket)",
      );
    }
    this.Ctor = Ctor;
    this.url = url;
    this.options = options;
    const ttl = options.ttlMs ?? 60_000;
    this.pingMs = Math.max(10, options.pingIntervalMs ?? Math.floor(ttl / 3));
    this.minBackoff = Math.max(1, options.minBackoffMs ?? 500);
    this.maxBackoff = Math.max(this.minBackoff, options.maxBackoffMs ?? 10_000);
    this.connectTimeout = Math.max(1, options.connectTimeoutMs ?? 10_000);
    this.myId = options.id;
    // Let the caller attach listeners before the first event.
    queueMicrotask(() => {
      if (this.current !== "closed") this.open();
    });
  }

  get id(): string | undefined {
    return this.myId;
  }

  get status(): PresenceStatus {
    return this.current;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  clients(): PresenceClient[] {
    return [...this.roster.values()].map((c) => ({ ...c }));
  }

  on<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): () => void {
    this.listeners[event].add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): void {
    this.listeners[event].delete(listener);
  }

  close(): void {
    if (this.current === "closed") return;
    const socket = this.socket;
    this.socket = undefined;
    this.stopTimers();
    if (socket) {
      detach(socket);
      if (socket.readyState === 0) {
        // Closing a socket that is still connecting fails it without a
        // close frame, which the server would take for a lost connection
        // (a ghost until the lease ends): close cleanly once it is open.
        socket.onopen = () => closeQuietly(socket);
      } else {
        closeQuietly(socket);
      }
    }
    this.setStatus({ status: "closed", reason: "closed-by-client" });
  }

  private emit<K extends keyof PresenceEvents>(event: K, ...args: Parameters<PresenceEvents[K]>): void {
    for (const listener of [...this.listeners[event]]) {
      try {
        (listener as (...a: unknown[]) => void)(...args);
      } catch (e) {
        // A listener's bug must not break the connection.
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setStatus(change: StatusChange): void {
    this.current = change.status;
    this.emit("status", change);
  }

  private joinUrl(): string {
    const u = new URL(this.url);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    if (this.options.identity) u.searchParams.set("identity", this.options.identity);
    if (this.options.token) u.searchParams.set("token", this.options.token);
    if (this.myId) u.searchParams.set("id", this.myId);
    else u.searchParams.delete("id");
    return u.toString();
  }

  private open(): void {
    this.retryTimer = undefined;
    this.welcomed = false;
    this.pendingError = undefined;
    let socket: WebSocketLike;
    try {
      socket = new this.Ctor(this.joinUrl());
    } catch (e) {
      // A URL the implementation refuses will never work.
      this.error = e instanceof Error ? e.message : String(e);
      this.emit("error", this.error);
      this.setStatus({ status: "closed", reason: "refused", error: this.error });
      return;
    }
    this.socket = socket;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.message(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(typeof event?.code === "number" ? event.code : 1006);
    };
    socket.onerror = () => {
      // Browsers follow an error with a close event; some implementations
      // (Node 20's) do not when the connection could not be made at all.
      if (this.socket === socket && socket.readyState !== 1) this.failed(socket);
    };
    this.connectTimer = setTimeout(() => {
      if (this.socket === socket && !this.welcomed) this.failed(socket);
    }, this.connectTimeout);
  }

  /** An attempt that will not be welcomed: drop it and count a lost connection. */
  private failed(socket: WebSocketLike): void {
    detach(socket);
    closeQuietly(socket);
    this.closed(1006);
  }

  private message(data: unknown): void {
    if (typeof data !== "string") return;
    let msg: any;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== "object") return;
    if (typeof msg.error === "string") {
      this.pendingError = msg.error;
      this.error = msg.error;
      this.emit("error", msg.error);
    } else if (msg.event === "remote join" && isClient(msg.client)) {
      if (!this.welcomed) return;
      const client = pick(msg.client);
      this.roster.set(client.id, client);
      this.emit("join", { ...client });
    } else if (msg.event === "remote leave" && isClient(msg.client)) {
      if (!this.welcomed) return;
      const client = this.roster.get(msg.client.id) ?? pick(msg.client);
      if (this.roster.delete(client.id)) this.emit("leave", { ...client });
    } else if (msg.event === "expired") {
      this.emit("expired");
    } else if (typeof msg.id === "string" && Array.isArray(msg.clients)) {
      this.welcome(msg.id, msg.clients.filter(isClient).map(pick));
    }
    // {"ping":true}, {"pong":true} and anything unknown: ignored.
  }

  private welcome(id: string, clients: PresenceClient[]): void {
    const previous = this.roster;
    const wasSynced = previous.size > 0;
    this.roster = new Map(clients.map((c) => [c.id, c]));
    this.myId = id;
    this.welcomed = true;
    this.failures = 0;
    this.clearConnectTimer();
    this.startPings();
    this.setStatus({ status: "open" });
    this.emit("sync", this.clients());
    // Whatever changed while we were away, as events.
    if (wasSynced) {
      for (const [cid, c] of previous) {
        if (!this.roster.has(cid)) this.emit("leave", { ...c });
      }
      for (const [cid, c] of this.roster) {
        if (!previous.has(cid)) this.emit("join", { ...c });
      }
    }
  }

  private startPings(): void {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      const s = this.socket;
      if (s && s.readyState === 1) {
        try {
          s.send(PING);
        } catch {
          // the close event will follow
        }
      }
    }, this.pingMs);
  }

  private stopPings(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private clearConnectTimer(): void {
    if (this.connectTimer !== undefined) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  private stopTimers(): void {
    this.stopPings();
    this.clearConnectTimer();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private closed(code: number): void {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) detach(socket);
    this.stopPings();
    this.clearConnectTimer();
    const error = this.pendingError;
    switch (code) {
      case CloseCodes.REPLACED:
        this.setStatus({ status: "closed", code, reason: "replaced" });
        return;
      case CloseCodes.POLICY:
        this.setStatus({ status: "closed", code, reason: "refused", error });
        return;
      case CloseCodes.RESTART:
        // Leases are kept: come back at once with the same id.
        this.retry(code, 0, "restart");
        return;
      case CloseCodes.EXPIRED:
        // Others already saw us leave: a fresh join, not a resume.
        this.myId = undefined;
        this.retry(code, 0, "expired");
        return;
      default: {
        // Lost (1006), internal error (1011), anything else: back off and
        // resume with our id. The first retry after a working connection
        // goes almost at once.
        const attempt = this.failures;
        const delay = this.backoff(attempt);
        this.failures += 1;
        this.retry(code, delay, "lost", attempt);
      }
    }
  }

  /** Full jitter: a random delay up to the exponential cap. */
  private backoff(attempt: number): number {
    const cap = Math.min(this.maxBackoff, this.minBackoff * 2 ** attempt);
    const floor = attempt === 0 ? 0 : cap / 2;
    return Math.round(floor + Math.random() * (cap - floor));
  }

  private retry(code: number, delayMs: number, reason: string, attempt = 0): void {
    this.setStatus({ status: "reconnecting", code, delayMs, attempt, reason });
    if (this.current !== "reconnecting") return; // a listener closed us
    if (delayMs <= 0) this.open();
    else this.retryTimer = setTimeout(() => this.open(), delayMs);
  }
}

function detach(socket: WebSocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
}

function closeQuietly(socket: WebSocketLike): void {
  try {
    socket.close(CloseCodes.NORMAL);
  } catch {
    // already closing or closed
  }
}

function isClient(c: unknown): c is PresenceClient {
  if (c === null || typeof c !== "object") return false;
  const o = c as Record<string, unknown>;
  return typeof o.id === "string" && typeof o.identity === "string" && typeof o.joinedAt === "string";
}

function pick(c: PresenceClient): PresenceClient {
  return { id: c.id, identity: c.identity, joinedAt: c.joinedAt };
}
