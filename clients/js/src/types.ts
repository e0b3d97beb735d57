/**
 * The public types of the Longhouse client: what the server describes, what
 * a `Presence` emits, and how it is configured.
 */

/** A JSON value, as the server forwards it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A presence state: a JSON object its client sets and everyone else sees (section 10). */
export type PresenceState = { [key: string]: Json };

/** One connection present in the space, as the server describes it. */
export interface PresenceClient {
  /** The client's id (a UUID v4, or a requested id). */
  id: string;
  /** Who the user is, exactly as it joined. */
  identity: string;
  /** When it joined: RFC 3339, UTC, millisecond precision. */
  joinedAt: string;
  /** Its presence state; absent when it has none. */
  state?: PresenceState;
  /** Facts the app's backend vouches for (a signed token's `info` claim); absent without one. */
  info?: PresenceState;
  /** The 2015 `username` parameter, when it joined with one. */
  username?: string;
}

/**
 * A member: an identity present in the space, however many connections
 * (tabs, devices) it has. One person with three tabs is one avatar.
 */
export interface PresenceMember {
  /** The identity the connections share. */
  identity: string;
  /** Its connections, in join order (never empty). */
  clients: PresenceClient[];
  /** Whether one of them is this connection. */
  self: boolean;
}

/** Why someone left (section 12); `undefined` when the server did not say (v1, or a reconnect's catch-up). */
export type LeaveReason = "left" | "expired" | "removed";

/**
 * Where the connection stands.
 *
 * - `connecting`: opening a socket for a fresh join.
 * - `open`: joined; the roster is live.
 * - `reconnecting`: the socket is gone and a new one is being opened or
 *   waited for (resuming with the same id when the server allows).
 * - `closed`: stopped for good (by `close()`, or by the server: replaced
 *   by a newer connection (4001), removed by the server API (4003) or a
 *   refused join (1008)).
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
  /**
   * A short machine-readable reason: `closed-by-client`, `replaced`,
   * `removed`, `refused`, `lost`, `restart`, `expired`.
   */
  reason?: string;
}

/** A message another client (or the app's backend) broadcast to the space (section 13). */
export interface BroadcastMessage {
  /** The data, as sent. */
  data: Json;
  /** The sender's client id; `null` when the app's backend sent it through the server API. */
  from: string | null;
  /** The sender as the roster knows it (absent for the server, or a sender not in the roster). */
  client?: PresenceClient;
}

/** The events a `Presence` emits, with their listener signatures. */
export interface PresenceEvents {
  /** A welcome replaced the roster (after each join or resume). */
  sync: (clients: PresenceClient[]) => void;
  /** A connection appeared in the roster. */
  join: (client: PresenceClient) => void;
  /** A connection disappeared from the roster, with its last state. */
  leave: (client: PresenceClient, reason: LeaveReason | undefined) => void;
  /** Another connection's state (or info) changed: the client as it is now, and as it was. */
  update: (client: PresenceClient, previous: PresenceClient) => void;
  /** An identity's first connection appeared (after the first `sync`). */
  memberjoin: (member: PresenceMember) => void;
  /** An identity's last connection disappeared. */
  memberleave: (member: PresenceMember, reason: LeaveReason | undefined) => void;
  /** Someone broadcast a message to the space. */
  broadcast: (message: BroadcastMessage) => void;
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
  /** The 2015 service's display name: sent as `?username=`, echoed in client objects. */
  username?: string;
  /** The state to join with (sent as `?state=`, so nobody sees a join without it). */
  state?: PresenceState | null;
  /** Least time between two state updates sent, ms (the server's `UPDATE_INTERVAL_MS`). Default 50. */
  updateIntervalMs?: number;
  /** Largest state accepted by `setState`, in UTF-8 bytes of its JSON (the server's `MAX_STATE_BYTES`). Default 1024. */
  maxStateBytes?: number;
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
  /** Everyone else: the roster without this connection. */
  others(): PresenceClient[];
  /** The roster grouped by identity, in order of each identity's first connection. */
  members(): PresenceMember[];
  /** This client's id, once welcomed. */
  readonly id: string | undefined;
  /** The current status. */
  readonly status: PresenceStatus;
  /** The last error message the server sent, if any. */
  readonly lastError: string | undefined;
  /** This connection's state, as last set (sent or about to be). */
  readonly state: PresenceState | null;
  /**
   * Replaces this connection's state (`null` clears it). Sent at most once
   * per `updateIntervalMs` (the latest state always goes, at the trailing
   * edge), so it may be called from every `mousemove`. Throws a
   * `TypeError` for anything but a plain JSON object or `null`, and a
   * `RangeError` past `maxStateBytes`.
   */
  setState(state: PresenceState | null): void;
  /**
   * Sends `data` (any JSON value) to everyone else in the space now.
   * Nothing is stored. Returns whether it was sent (false while not
   * connected).
   */
  broadcast(data: Json): boolean;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): () => void;
  /** Removes a listener. */
  off<K extends keyof PresenceEvents>(event: K, listener: PresenceEvents[K]): void;
  /** Leaves the space (a clean close: others see the leave at once, with the latest state) and stops. */
  close(): void;
}
