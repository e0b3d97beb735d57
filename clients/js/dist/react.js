// src/react.ts
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore
} from "react";

// src/store.ts
import { connect as defaultConnect } from "./index.js";
var NONE = Object.freeze([]);
var CHANGES = ["sync", "join", "leave", "update", "status"];
var PresenceStore = class {
  /** `state` is this connection's state to join with; `connectFn` opens connections. */
  constructor(state = null, connectFn = defaultConnect) {
    this.connectFn = connectFn;
    this.listeners = /* @__PURE__ */ new Set();
    this.broadcastHandlers = /* @__PURE__ */ new Set();
    this.detachedStatus = "connecting";
    this.version = 0;
    this.cache = { version: 0, clients: NONE, others: NONE, members: NONE };
    /** Adds a listener called after every change; returns its removal. */
    this.subscribe = (listener) => {
      this.listeners.add(listener);
      return () => {
        this.listeners.delete(listener);
      };
    };
    /** The connection's status (`connecting` before the first attach, `closed` after a detach). */
    this.getStatus = () => this.presence?.status ?? this.detachedStatus;
    /** Everyone in the space, this connection included. */
    this.getClients = () => this.snapshot().clients;
    /** Everyone but this connection, with their state, info and username. */
    this.getOthers = () => this.snapshot().others;
    /** Connections grouped by identity. */
    this.getMembers = () => this.snapshot().members;
    /** This connection's state, as last set. */
    this.getMyState = () => this.myState;
    /** What a server render shows: nobody yet. */
    this.getServerList = () => NONE;
    /** What a server render shows for the status. */
    this.getServerStatus = () => "connecting";
    /**
     * Replaces this connection's state (or derives it from the current one):
     * shown at once, sent throttled. Throws as `Presence.setState` does.
     */
    this.setMyState = (action) => {
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
    this.broadcast = (data) => this.presence?.broadcast(data) ?? false;
    this.changed = () => {
      this.version += 1;
      for (const listener of [...this.listeners]) listener();
    };
    this.myState = state;
  }
  /** The connection currently attached, if any. */
  get current() {
    return this.presence;
  }
  /**
   * Opens a connection (closing any attached one) and returns the function
   * that closes it again; that function does nothing once another
   * connection was attached, so a stale cleanup cannot close a newer one.
   */
  attach(url, options) {
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
  /** Calls `handler` with every broadcast to the space, across reconnections and re-attaches. */
  onBroadcast(handler) {
    this.broadcastHandlers.add(handler);
    return () => {
      this.broadcastHandlers.delete(handler);
    };
  }
  deliver(message) {
    for (const handler of [...this.broadcastHandlers]) handler(message);
  }
  closeCurrent(status) {
    const presence = this.presence;
    this.presence = void 0;
    this.detachedStatus = status;
    if (presence) {
      this.myState = presence.state;
      presence.close();
      this.changed();
    }
  }
  snapshot() {
    if (this.cache.version !== this.version) {
      const p = this.presence;
      const clients = p ? p.clients() : [];
      const previous = this.cache;
      const others = p ? p.others() : [];
      this.cache = {
        version: this.version,
        clients: sameItems(previous.clients, clients) ? previous.clients : Object.freeze(clients),
        others: sameItems(previous.others, others) ? previous.others : Object.freeze(others),
        members: sameMembers(previous.members, p ? p.members() : [])
      };
    }
    return this.cache;
  }
};
function sameItems(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
function sameMembers(previous, next) {
  const before = new Map(previous.map((m) => [m.identity, m]));
  const merged = next.map((m) => {
    const old = before.get(m.identity);
    return old && old.self === m.self && sameItems(old.clients, m.clients) ? old : Object.freeze(m);
  });
  return sameItems(previous, merged) ? previous : Object.freeze(merged);
}

// src/react.ts
var PresenceContext = createContext(null);
function connectionKey(url, o) {
  return JSON.stringify([
    url,
    o.identity,
    o.token,
    o.username,
    o.id,
    o.ttlMs,
    o.pingIntervalMs,
    o.updateIntervalMs,
    o.maxStateBytes,
    o.minBackoffMs,
    o.maxBackoffMs,
    o.connectTimeoutMs
  ]);
}
function usePresence(url, options, connectFn) {
  const [store] = useState(() => new PresenceStore(options.state ?? null, connectFn));
  const key = connectionKey(url, options);
  useEffect(() => {
    if (url === null) return void 0;
    return store.attach(url, options);
  }, [store, key]);
  return store;
}
function PresenceProvider(props) {
  return createElement(PresenceContext.Provider, { value: props.value }, props.children);
}
function usePresenceStore(store) {
  const context = useContext(PresenceContext);
  const s = store ?? context;
  if (!s) throw new Error("longhouse: no presence here: wrap the tree in <PresenceProvider value={usePresence(\u2026)}>");
  return s;
}
function useOthers(store) {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getOthers, s.getServerList);
}
function useMembers(store) {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getMembers, s.getServerList);
}
function useMyState(store) {
  const s = usePresenceStore(store);
  const state = useSyncExternalStore(s.subscribe, s.getMyState, s.getMyState);
  return [state, s.setMyState];
}
function useBroadcast(handler, store) {
  const s = usePresenceStore(store);
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => s.onBroadcast((message) => latest.current?.(message)), [s]);
  return s.broadcast;
}
function useStatus(store) {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getStatus, s.getServerStatus);
}
export {
  PresenceProvider,
  PresenceStore,
  useBroadcast,
  useMembers,
  useMyState,
  useOthers,
  usePresence,
  usePresenceStore,
  useStatus
};
