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
import type { BroadcastMessage, ConnectOptions, Json, Presence, PresenceClient, PresenceMember, PresenceState, PresenceStatus } from "./index.js";
/** A new state, or a function of the current one. */
export type StateAction = PresenceState | null | ((current: PresenceState | null) => PresenceState | null);
/** What the store needs of `connect` (the client's own, unless a test or an app wraps it). */
export type ConnectFn = (url: string, options: ConnectOptions) => Presence;
/** One presence's roster, state and status, for a UI to subscribe to. */
export declare class PresenceStore {
    private readonly connectFn;
    private presence;
    private readonly listeners;
    private readonly broadcastHandlers;
    private myState;
    private detachedStatus;
    private version;
    private cache;
    /** `state` is this connection's state to join with; `connectFn` opens connections. */
    constructor(state?: PresenceState | null, connectFn?: ConnectFn);
    /** The connection currently attached, if any. */
    get current(): Presence | undefined;
    /**
     * Opens a connection (closing any attached one) and returns the function
     * that closes it again; that function does nothing once another
     * connection was attached, so a stale cleanup cannot close a newer one.
     */
    attach(url: string, options: ConnectOptions): () => void;
    /** Adds a listener called after every change; returns its removal. */
    readonly subscribe: (listener: () => void) => (() => void);
    /** The connection's status (`connecting` before the first attach, `closed` after a detach). */
    readonly getStatus: () => PresenceStatus;
    /** Everyone in the space, this connection included. */
    readonly getClients: () => readonly PresenceClient[];
    /** Everyone but this connection, with their state, info and username. */
    readonly getOthers: () => readonly PresenceClient[];
    /** Connections grouped by identity. */
    readonly getMembers: () => readonly PresenceMember[];
    /** This connection's state, as last set. */
    readonly getMyState: () => PresenceState | null;
    /** What a server render shows: nobody yet. */
    readonly getServerList: () => readonly never[];
    /** What a server render shows for the status. */
    readonly getServerStatus: () => PresenceStatus;
    /**
     * Replaces this connection's state (or derives it from the current one):
     * shown at once, sent throttled. Throws as `Presence.setState` does.
     */
    readonly setMyState: (action: StateAction) => void;
    /** Sends `data` to everyone else now; false while not connected. */
    readonly broadcast: (data: Json) => boolean;
    /** Calls `handler` with every broadcast to the space, across reconnections and re-attaches. */
    onBroadcast(handler: (message: BroadcastMessage) => void): () => void;
    private deliver;
    private closeCurrent;
    private readonly changed;
    private snapshot;
}
