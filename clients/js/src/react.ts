/**
 * React hooks for Longhouse presence (`@longhouse/client/react`; React 18
 * or later is a peer dependency, nothing else is needed at run time).
 *
 * ```jsx
 * function App() {
 *   const presence = usePresence(url, { identity: "ann@example.com" });
 *   return <PresenceProvider value={presence}><Cursors /></PresenceProvider>;
 * }
 * function Cursors() {
 *   const others = useOthers();               // with state, info, username
 *   const [me, setMe] = useMyState();         // setMe is throttled
 *   ...
 * }
 * ```
 *
 * Built on `useSyncExternalStore` over a `PresenceStore`. The connection is
 * opened by an effect, so a server render opens none, and strict mode's
 * mount, unmount and mount leaves exactly one open.
 */

import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";

import type {
  BroadcastMessage,
  ConnectOptions,
  Json,
  PresenceClient,
  PresenceMember,
  PresenceState,
  PresenceStatus,
} from "./index.js";
import { PresenceStore, type ConnectFn, type StateAction } from "./store.js";

export { PresenceStore } from "./store.js";
export type { ConnectFn, StateAction } from "./store.js";

const PresenceContext = createContext<PresenceStore | null>(null);

/**
 * The options that make a connection another one: when any of these (or
 * the URL) changes, the hook closes its connection and opens a new one.
 * The state is not among them: it follows `setMyState`.
 */
function connectionKey(url: string | null, o: ConnectOptions): string {
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
    o.connectTimeoutMs,
  ]);
}

/**
 * Owns a connection to the space at `url` for as long as the calling
 * component is mounted (`null`: none yet, e.g. while a token is fetched).
 * `options.state` is the state to join with. Pass the returned store to
 * `<PresenceProvider value={…}>` so that the hooks below it use it.
 * `connectFn` replaces the client's `connect` (to wrap or instrument it).
 */
export function usePresence(url: string | null, options: ConnectOptions, connectFn?: ConnectFn): PresenceStore {
  const [store] = useState(() => new PresenceStore(options.state ?? null, connectFn));
  const key = connectionKey(url, options);
  useEffect(() => {
    if (url === null) return undefined;
    return store.attach(url, options);
    // Only what `connectionKey` names makes a new connection.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [store, key]);
  return store;
}

/** Gives the hooks below it the store of `usePresence`. */
export function PresenceProvider(props: { value: PresenceStore; children?: ReactNode }) {
  return createElement(PresenceContext.Provider, { value: props.value }, props.children);
}

/** The store passed in, or else the nearest provider's. */
export function usePresenceStore(store?: PresenceStore): PresenceStore {
  const context = useContext(PresenceContext);
  const s = store ?? context;
  if (!s) throw new Error("longhouse: no presence here: wrap the tree in <PresenceProvider value={usePresence(…)}>");
  return s;
}

/** Everyone else in the space, with their state, info and username; re-renders when it changes. */
export function useOthers(store?: PresenceStore): readonly PresenceClient[] {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getOthers, s.getServerList);
}

/** Everyone in the space (this connection included), grouped by identity. */
export function useMembers(store?: PresenceStore): readonly PresenceMember[] {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getMembers, s.getServerList);
}

/**
 * This connection's state and its setter (a value, or a function of the
 * current state). The setter shows the state at once and sends it
 * throttled (trailing edge), so it may be called on every `mousemove`.
 */
export function useMyState(
  store?: PresenceStore,
): [PresenceState | null, (action: StateAction) => void] {
  const s = usePresenceStore(store);
  const state = useSyncExternalStore(s.subscribe, s.getMyState, s.getMyState);
  return [state, s.setMyState];
}

/**
 * Calls `handler` with every broadcast to the space (the latest `handler`
 * given, without re-subscribing) and returns the function that broadcasts.
 */
export function useBroadcast(
  handler?: (message: BroadcastMessage) => void,
  store?: PresenceStore,
): (data: Json) => boolean {
  const s = usePresenceStore(store);
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => s.onBroadcast((message) => latest.current?.(message)), [s]);
  return s.broadcast;
}

/** The connection's status: `connecting`, `open`, `reconnecting` or `closed`. */
export function useStatus(store?: PresenceStore): PresenceStatus {
  const s = usePresenceStore(store);
  return useSyncExternalStore(s.subscribe, s.getStatus, s.getServerStatus);
}
