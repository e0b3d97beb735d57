/**
 * One presence in one space: the socket's life (join, pings, reconnection
 * with back-off, resume with the id, the close codes that stop it), the
 * roster it keeps, and this connection's own state, sent throttled.
 */

import { jsonEqual, Roster, type RosterEvent } from "./roster.js";
import { Throttle } from "./throttle.js";
import type {
  BroadcastMessage,
  ConnectOptions,
  Json,
  Presence,
  PresenceClient,
  PresenceEvents,
  PresenceMember,
  PresenceState,
  PresenceStatus,
  StatusChange,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";
import {
  broadcastMessage,
  checkState,
  CloseCodes,
  joinUrl,
  PING,
  readClient,
  readReason,
  updateMessage,
} from "./wire.js";

type Listeners = { [K in keyof PresenceEvents]: Set<PresenceEvents[K]> };

/** The `Presence` that `connect` returns. */
export class PresenceConnection implements Presence {
  private readonly url: string;
  private readonly options: ConnectOptions;
  private readonly Ctor: WebSocketConstructor;
  private readonly pingMs: number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private readonly connectTimeout: number;
  private readonly maxStateBytes: number;
  private readonly listeners: Listeners = {
    sync: new Set(),
    join: new Set(),
    leave: new Set(),
    update: new Set(),
    memberjoin: new Set(),
    memberleave: new Set(),
    broadcast: new Set(),
    expired: new Set(),
    status: new Set(),
    error: new Set(),
  };
  private socket: WebSocketLike | undefined;
  private roster = new Roster();
  private myId: string | undefined;
  private welcomed = false;
  private failures = 0;
  private pendingError: string | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private current: PresenceStatus = "connecting";
  private error: string | undefined;
  /** This connection's state as last set. */
  private local: PresenceState | null;
  /** The state the server holds for this lease, as far as this client knows. */
  private held: PresenceState | null = null;
  private readonly throttle: Throttle;

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
    this.maxStateBytes = Math.max(0, options.maxStateBytes ?? 1024);
    this.local = checkState(options.state ?? null, this.maxStateBytes);
    this.throttle = new Throttle(Math.max(0, options.updateIntervalMs ?? 50), () => this.sendState());
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

  get state(): PresenceState | null {
    return this.local;
  }

  clients(): PresenceClient[] {
    return this.roster.clients();
  }

  others(): PresenceClient[] {
    return this.roster.others();
  }

  members(): PresenceMember[] {
    return this.roster.members();
  }

  setState(state: PresenceState | null): void {
    this.local = checkState(state, this.maxStateBytes);
    this.roster.setSelfState(this.local);
    if (this.current !== "closed") this.throttle.request();
  }

  broadcast(data: Json): boolean {
    if (data === undefined) throw new TypeError("longhouse: broadcast() needs data (any JSON value)");
    const text = broadcastMessage(data);
    return this.sendText(text);
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
    // A state still held goes first: the others see the leave with it.
    this.throttle.flush();
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

  private tell(events: RosterEvent[]): void {
    for (const e of events) {
      switch (e.kind) {
        case "join":
          this.emit("join", e.client);
          break;
        case "leave":
          this.emit("leave", e.client, e.reason);
          break;
        case "update":
          this.emit("update", e.client, e.previous);
          break;
        case "memberjoin":
          this.emit("memberjoin", e.member);
          break;
        case "memberleave":
          this.emit("memberleave", e.member, e.reason);
          break;
      }
    }
  }

  private setStatus(change: StatusChange): void {
    this.current = change.status;
    if (change.status === "closed") this.throttle.cancel();
    this.emit("status", change);
  }

  /** Sends a text frame if joined; says whether it went. */
  private sendText(text: string): boolean {
    const s = this.socket;
    if (!s || !this.welcomed || s.readyState !== 1) return false;
    try {
      s.send(text);
      return true;
    } catch {
      return false; // the close event will follow
    }
  }

  /** The throttle's send: the local state, if the server does not hold it yet. */
  private sendState(): boolean {
    if (jsonEqual(this.local, this.held)) return false;
    if (!this.sendText(updateMessage(this.local))) return false;
    this.held = this.local;
    return true;
  }

  private open(): void {
    this.retryTimer = undefined;
    this.welcomed = false;
    this.pendingError = undefined;
    let socket: WebSocketLike;
    try {
      socket = new this.Ctor(joinUrl(this.url, this.options, this.myId, this.local));
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
      return;
    }
    if (typeof msg.id === "string" && Array.isArray(msg.clients)) {
      const clients = msg.clients.map(readClient).filter((c: PresenceClient | undefined) => c !== undefined);
      this.welcome(msg.id, clients);
      return;
    }
    if (!this.welcomed) return;
    if (msg.event === "expired") {
      this.emit("expired");
      return;
    }
    if (msg.event === "broadcast" && "data" in msg && (typeof msg.from === "string" || msg.from === null)) {
      const message: BroadcastMessage = { data: msg.data, from: msg.from };
      const sender = msg.from === null ? undefined : this.roster.clients().find((c) => c.id === msg.from);
      if (sender) message.client = sender;
      this.emit("broadcast", message);
      return;
    }
    const client = readClient(msg.client);
    if (!client) return; // {"ping":true}, {"pong":true} and anything unknown: ignored.
    if (msg.event === "remote join") this.tell(this.roster.join(client));
    else if (msg.event === "remote update") this.tell(this.roster.update(client));
    else if (msg.event === "remote leave") this.tell(this.roster.leave(client, readReason(msg.reason)));
  }

  private welcome(id: string, clients: PresenceClient[]): void {
    const events = this.roster.welcome(id, clients);
    this.held = clients.find((c) => c.id === id)?.state ?? null;
    this.roster.setSelfState(this.local);
    this.myId = id;
    this.welcomed = true;
    this.failures = 0;
    this.clearConnectTimer();
    this.startPings();
    this.setStatus({ status: "open" });
    this.emit("sync", this.clients());
    // Whatever changed while we were away, as events.
    this.tell(events);
    // A state set while the join was on its way (or cleared while away,
    // which a resume without `state=` would not clear) still has to go.
    if (!jsonEqual(this.local, this.held)) this.throttle.request();
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
    this.throttle.cancel();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private closed(code: number): void {
    const socket = this.socket;
    this.socket = undefined;
    this.welcomed = false;
    if (socket) detach(socket);
    this.stopPings();
    this.clearConnectTimer();
    const error = this.pendingError;
    switch (code) {
      case CloseCodes.REPLACED:
        this.setStatus({ status: "closed", code, reason: "replaced" });
        return;
      case CloseCodes.REMOVED:
        // The app's backend removed us: coming back by ourselves would undo it.
        this.setStatus({ status: "closed", code, reason: "removed", error });
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
