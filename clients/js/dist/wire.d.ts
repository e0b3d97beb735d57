/**
 * The protocol's wire shapes as this client reads and writes them: close
 * codes, the messages it sends, the join URL, and client objects checked
 * and frozen as they arrive.
 */
import type { ConnectOptions, Json, LeaveReason, PresenceClient, PresenceState } from "./types.js";
/** Close codes of the protocol (sections 8 and 15). */
export declare const CloseCodes: {
    readonly NORMAL: 1000;
    readonly UNSUPPORTED_DATA: 1007;
    readonly POLICY: 1008;
    readonly TOO_LARGE: 1009;
    readonly INTERNAL: 1011;
    readonly RESTART: 1012;
    readonly EXPIRED: 4000;
    readonly REPLACED: 4001;
    readonly REMOVED: 4003;
};
/** The lease renewal message. */
export declare const PING = "{\"action\":\"ping\"}";
/** The update message for a state (`null` clears it). */
export declare function updateMessage(state: PresenceState | null): string;
/** The broadcast message for `data`. */
export declare function broadcastMessage(data: Json): string;
/**
 * Builds `ws[s]://host/{space}` from a base URL (`ws:`, `wss:`, `http:` or
 * `https:`) and a space name, encoding the space as one path segment.
 */
export declare function spaceUrl(base: string, space: string): string;
/** The URL of one join attempt: the space URL with identity, token, username, id and state. */
export declare function joinUrl(url: string, options: ConnectOptions, id: string | undefined, state: PresenceState | null): string;
/**
 * A state checked the way the server checks it, as a frozen copy: a plain
 * JSON object (or `null`) of at most `maxBytes` UTF-8 bytes.
 */
export declare function checkState(state: unknown, maxBytes: number): PresenceState | null;
/** A client object from the server, checked and frozen, or `undefined` when it is not one. */
export declare function readClient(c: unknown): PresenceClient | undefined;
/** A `remote leave`'s reason, when it is one this client knows. */
export declare function readReason(r: unknown): LeaveReason | undefined;
