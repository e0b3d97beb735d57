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
import { type ReactNode } from "react";
import type { BroadcastMessage, ConnectOptions, Json, PresenceClient, PresenceMember, PresenceState, PresenceStatus } from "./index.js";
import { PresenceStore, type ConnectFn, type StateAction } from "./store.js";
export { PresenceStore } from "./store.js";
export type { ConnectFn, StateAction } from "./store.js";
/**
 * Owns a connection to the space at `url` for as long as the calling
 * component is mounted (`null`: none yet, e.g. while a token is fetched).
 * `options.state` is the state to join with. Pass the returned store to
 * `<PresenceProvider value={…}>` so that the hooks below it use it.
 * `connectFn` replaces the client's `connect` (to wrap or instrument it).
 */
export declare function usePresence(url: string | null, options: ConnectOptions, connectFn?: ConnectFn): PresenceStore;
/** Gives the hooks below it the store of `usePresence`. */
export declare function PresenceProvider(props: {
    value: PresenceStore;
    children?: ReactNode;
}): import("react").FunctionComponentElement<import("react").ProviderProps<PresenceStore | null>>;
/** The store passed in, or else the nearest provider's. */
export declare function usePresenceStore(store?: PresenceStore): PresenceStore;
/** Everyone else in the space, with their state, info and username; re-renders when it changes. */
export declare function useOthers(store?: PresenceStore): readonly PresenceClient[];
/** Everyone in the space (this connection included), grouped by identity. */
export declare function useMembers(store?: PresenceStore): readonly PresenceMember[];
/**
 * This connection's state and its setter (a value, or a function of the
 * current state). The setter shows the state at once and sends it
 * throttled (trailing edge), so it may be called on every `mousemove`.
 */
export declare function useMyState(store?: PresenceStore): [PresenceState | null, (action: StateAction) => void];
/**
 * Calls `handler` with every broadcast to the space (the latest `handler`
 * given, without re-subscribing) and returns the function that broadcasts.
 */
export declare function useBroadcast(handler?: (message: BroadcastMessage) => void, store?: PresenceStore): (data: Json) => boolean;
/** The connection's status: `connecting`, `open`, `reconnecting` or `closed`. */
export declare function useStatus(store?: PresenceStore): PresenceStatus;
