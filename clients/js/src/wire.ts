/**
 * The protocol's wire shapes as this client reads and writes them: close
 * codes, the messages it sends, the join URL, and client objects checked
 * and frozen as they arrive.
 */

import type { ConnectOptions, Json, LeaveReason, PresenceClient, PresenceState } from "./types.js";

/** Close codes of the protocol (sections 8 and 15). */
export const CloseCodes = {
  NORMAL: 1000,
  UNSUPPORTED_DATA: 1007,
  POLICY: 1008,
  TOO_LARGE: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  EXPIRED: 4000,
  REPLACED: 4001,
  REMOVED: 4003,
} as const;

/** The lease renewal message. */
export const PING = '{"action":"ping"}';

/** The update message for a state (`null` clears it). */
export function updateMessage(state: PresenceState | null): string {
  return `{"action":"update","state":${JSON.stringify(state)}}`;
}

/** The broadcast message for `data`. */
export function broadcastMessage(data: Json): string {
  return `{"action":"broadcast","data":${JSON.stringify(data)}}`;
}

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

/** The URL of one join attempt: the space URL with identity, token, username, id and state. */
export function joinUrl(
  url: string,
  options: ConnectOptions,
  id: string | undefined,
  state: PresenceState | null,
): string {
  const u = new URL(url);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  const q = u.searchParams;
  if (options.identity) q.set("identity", options.identity);
  if (options.token) q.set("token", options.token);
  if (options.username) q.set("username", options.username);
  if (id) q.set("id", id);
  else q.delete("id");
  if (state !== null) q.set("state", JSON.stringify(state));
  else q.delete("state");
  return u.toString();
}

/**
 * A state checked the way the server checks it, as a frozen copy: a plain
 * JSON object (or `null`) of at most `maxBytes` UTF-8 bytes.
 */
export function checkState(state: unknown, maxBytes: number): PresenceState | null {
  if (state === null) return null;
  if (typeof state !== "object" || Array.isArray(state)) {
    throw new TypeError("longhouse: a state is a plain JSON object, or null");
  }
  let text: string;
  try {
    text = JSON.stringify(state);
  } catch (e) {
    throw new TypeError(`longhouse: the state is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > maxBytes) {
    throw new RangeError(`longhouse: the state is ${bytes} bytes, more than ${maxBytes}`);
  }
  return deepFreeze(JSON.parse(text)) as PresenceState;
}

/** A client object from the server, checked and frozen, or `undefined` when it is not one. */
export function readClient(c: unknown): PresenceClient | undefined {
  if (c === null || typeof c !== "object") return undefined;
  const o = c as Record<string, unknown>;
  if (typeof o.id !== "string" || typeof o.identity !== "string" || typeof o.joinedAt !== "string") {
    return undefined;
  }
  const client: PresenceClient = { id: o.id, identity: o.identity, joinedAt: o.joinedAt };
  if (isObject(o.state)) client.state = deepFreeze(o.state) as PresenceState;
  if (isObject(o.info)) client.info = deepFreeze(o.info) as PresenceState;
  if (typeof o.username === "string") client.username = o.username;
  return Object.freeze(client);
}

/** A `remote leave`'s reason, when it is one this client knows. */
export function readReason(r: unknown): LeaveReason | undefined {
  return r === "left" || r === "expired" || r === "removed" ? r : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v as object)) deepFreeze(x);
  }
  return v;
}
