/**
 * A presence as an external store (React's `useSyncExternalStore`, or any
 * framework's): one connection at a time, attached and detached by whoever
 * owns it, with snapshots that keep their identity until something changes
 * so that renders can be skipped by reference.
 *
 * The store exists before and after its connection (server rendering
 * creates one and never attaches it; strict mode attaches, detaches and
 * attaches again), and it keeps this connection's state across them.
 */

import { connect as defaultConnect } from "./index.js";
import type {
  BroadcastMessage,
  ConnectOptions,
  Json,
  Presence,
  PresenceClient,
  PresenceMember,
  PresenceState,
  PresenceStatus,
} from "./index.js";

/** A new state, or a function of the current one. */
export type StateAction = PresenceState | null | ((current: PresenceState | null) => PresenceState | null);

/** What the store needs of `connect` (the client's own, unless a test or an app wraps it). */
export type ConnectFn = (url: string, options: ConnectOptions) => Presence;

const NONE: readonly never[] = Object.freeze([]);

/** The presence events that change what the store shows. */
const CHANGES = ["sync", "join", "leave", "update", "status"] as const;

/** One presence's roster, state and status, for a UI to subscribe to. */
export class PresenceStore {
  private presence: Presence | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly broadcastHandlers = new Set<(message: BroadcastMessage) => void>();
  private myState: PresenceState | null;
  private detachedStatus: PresenceStatus = "connecting";
  private version = 0;
  private cache: {
    version: number;
    clients: readonly PresenceClient[];
    others: readonly PresenceClient[];
    members: readonly PresenceMember[];
  } = { version: 0, clients: NONE, others: NONE, members: NONE };

  /** `state` is this connection's state to join with; `connectFn` opens connections. */
  constructor(
    state: PresenceState | null = null,
    private readonly connectFn: ConnectFn = defaultConnect,
  ) {
    this.myState = state;
  }

  /** The connection currently attached, if any. */
  get current(): Presence | undefined {
    return this.presence;
  }

  /**
   * Opens a connection (closing any attached one) and returns the function
   * that closes it again; that function does nothing once another
   * connection was attached, so a stale cleanup cannot close a newer one.
   */
  attach(url: string, options: ConnectOptions): () => void {
    this.closeCurrent("connecting");
    const presence = this.connectFn(url, { ...options, state: this.myState });
    this.presence = presence;
    const offs = CHANGES.map((event) => presence.on(event, this.changed));
    offs.push(presence.on("broadcast", (m) => this.deliver(m)));
    let attached = true;
    const detach = () => {
      if (!attached) return;
      attached = false;
      for (const off of offs) off();
      if (this.presence === presence) this.closeCurrent("closed");
    };
    this.changed();
    return detach;
  }

  /** Adds a listener called after every change; returns its removal. */
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** The connection's status (`connecting` before the first attach, `closed` after a detach). */
  readonly getStatus = (): PresenceStatus => this.presence?.status ?? this.detachedStatus;

  /** Everyone in the space, this connection included. */
  readonly getClients = (): readonly PresenceClient[] => this.snapshot().clients;

  /** Everyone but this connection, with their state, info and username. */
  readonly getOthers = (): readonly PresenceClient[] => this.snapshot().others;

  /** Connections grouped by identity. */
  readonly getMembers = (): readonly PresenceMember[] => this.snapshot().members;

  /** This connection's state, as last set. */
  readonly getMyState = (): PresenceState | null => this.myState;

  /** What a server render shows: nobody yet. */
  readonly getServerList = (): readonly never[] => NONE;

  /** What a server render shows for the status. */
  readonly getServerStatus = (): PresenceStatus => "connecting";

  /**
   * Replaces this connection's state (or derives it from the current one):
   * shown at once, sent throttled. Throws as `Presence.setState` does.
   */
  readonly setMyState = (action: StateAction): void => {
    const next = typeof action === "function" ? action(this.myState) : action;
    if (this.presence) {
      this.presence.setState(next);
      this.myState = this.presence.state;
    } else {
      this.myState = next;
    }
    this.changed();
  };

  /** Sends `data` to everyone else now; false while not connected. */
  readonly broadcast = (data: Json): boolean => this.presence?.broadcast(data) ?? false;

  /** Calls `handler` with every broadcast to the space, across reconnections and re-attaches. */
  onBroadcast(handler: (message: BroadcastMessage) => void): () => void {
    this.broadcastHandlers.add(handler);
    return () => {
      this.broadcastHandlers.delete(handler);
    };
  }

  private deliver(message: BroadcastMessage): void {
    for (const handler of [...this.broadcastHandlers]) handler(message);
  }

  private closeCurrent(status: PresenceStatus): void {
    const presence = this.presence;
    this.presence = undefined;
    this.detachedStatus = status;
    if (presence) {
      this.myState = presence.state;
      presence.close();
      this.changed();
    }
  }

  private readonly changed = (): void => {
    this.version += 1;
    for (const listener of [...this.listeners]) listener();
  };

  private snapshot() {
    if (this.cache.version !== this.version) {
      const p = this.presence;
      const clients = p ? p.clients() : [];
      const previous = this.cache;
      const others = p ? p.others() : [];
      this.cache = {
        version: this.version,
        clients: sameItems(previous.clients, clients) ? previous.clients : Object.freeze(clients),
        others: sameItems(previous.others, others) ? previous.others : Object.freeze(others),
        members: sameMembers(previous.members, p ? p.members() : []),
      };
    }
    return this.cache;
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The previous members where nothing in them changed, else the new ones (each member kept when its clients are). */
function sameMembers(previous: readonly PresenceMember[], next: PresenceMember[]): readonly PresenceMember[] {
  const before = new Map(previous.map((m) => [m.identity, m]));
  const merged = next.map((m) => {
    const old = before.get(m.identity);
    return old && old.self === m.self && sameItems(old.clients, m.clients) ? old : Object.freeze(m);
  });
  return sameItems(previous, merged) ? previous : Object.freeze(merged);
}
