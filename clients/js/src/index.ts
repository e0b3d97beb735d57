/**
 * Longhouse presence client.
 *
 * `connect(url, { identity })` joins a space and keeps a live roster of it,
 * with every connection's presence state: it pings at a third of the
 * lease, reconnects after a lost connection with exponential back-off and
 * jitter, and resumes with its id so that nobody sees it leave. `setState`
 * shares this connection's state (throttled, trailing edge), `broadcast`
 * sends a message to the space, and `members()` groups connections by
 * identity. See docs/PROTOCOL.md for the protocol it speaks.
 *
 * No runtime dependencies: it needs a WebSocket implementation, the global
 * one by default (browsers; Node 22+, or Node 20 with
 * `--experimental-websocket`), or any constructor passed as `WebSocket`.
 */

import { PresenceConnection } from "./connection.js";
import type { ConnectOptions, Presence } from "./types.js";

export type {
  BroadcastMessage,
  ConnectOptions,
  Json,
  LeaveReason,
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
export { CloseCodes, PING, spaceUrl } from "./wire.js";

/**
 * Joins the space at `url` (`ws://host/{space}`, see `spaceUrl`) and keeps
 * its roster live until `close()`.
 */
export function connect(url: string, options: ConnectOptions): Presence {
  return new PresenceConnection(url, options);
}
