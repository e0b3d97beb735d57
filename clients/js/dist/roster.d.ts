/**
 * The roster a client keeps: connections by id in join order, and the
 * count of connections per identity that turns them into members. Pure:
 * each change returns the events it makes, and the connection emits them.
 *
 * Client objects are frozen (their state too) and kept as they are until
 * they change, so a UI can compare them by reference.
 */
import type { LeaveReason, PresenceClient, PresenceMember, PresenceState } from "./types.js";
/** One thing that changed, in the order it must be told. */
export type RosterEvent = {
    kind: "join";
    client: PresenceClient;
} | {
    kind: "leave";
    client: PresenceClient;
    reason: LeaveReason | undefined;
} | {
    kind: "update";
    client: PresenceClient;
    previous: PresenceClient;
} | {
    kind: "memberjoin";
    member: PresenceMember;
} | {
    kind: "memberleave";
    member: PresenceMember;
    reason: LeaveReason | undefined;
};
/** The roster of one space as this client sees it. */
export declare class Roster {
    private byId;
    private perIdentity;
    private selfId;
    /** This connection's id in the roster, once welcomed. */
    get self(): string | undefined;
    /** Whether a welcome has filled it. */
    get synced(): boolean;
    /**
     * A welcome replaces the roster. On the first one nothing is told (the
     * `sync` says it all); after a reconnect the differences are told as
     * leaves (reason unknown), joins and updates.
     */
    welcome(selfId: string, clients: PresenceClient[]): RosterEvent[];
    /** Someone joined (ignored before the welcome, or when already there). */
    join(client: PresenceClient): RosterEvent[];
    /**
     * Someone left: the client as the server last described it (with its
     * latest state), or the roster's copy when the message was bare.
     */
    leave(client: PresenceClient, reason: LeaveReason | undefined): RosterEvent[];
    /** Someone's state or info changed (ignored for a client this roster does not hold). */
    update(client: PresenceClient): RosterEvent[];
    /** This connection's own entry follows its state as set, at once. */
    setSelfState(state: PresenceState | null): void;
    /** Everyone, in join order. */
    clients(): PresenceClient[];
    /** Everyone but this connection. */
    others(): PresenceClient[];
    /** Connections grouped by identity, in order of each identity's first connection. */
    members(): PresenceMember[];
    private member;
    private count;
}
/** The same client with another state (or none), frozen. */
export declare function withState(client: PresenceClient, state: PresenceState | null): PresenceClient;
/** Whether two descriptions of one client say the same (state and info as JSON values). */
export declare function sameClient(a: PresenceClient, b: PresenceClient): boolean;
/** Deep equality of JSON values (object key order does not matter). */
export declare function jsonEqual(a: unknown, b: unknown): boolean;
