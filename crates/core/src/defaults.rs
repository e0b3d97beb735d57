//! Every default of PROTOCOL.md's settings (sections 9 and 15), in one
//! place: the native server's flags, the Worker's vars and the core's own
//! `Default`s all read them from here, so the targets cannot drift.

/// `PORT`: the native server's listen port.
pub const DEFAULT_PORT: u16 = 5003;
/// `PRESENCE_TTL`: lease length, ms.
pub const DEFAULT_PRESENCE_TTL_MS: u64 = 60_000;
/// `KEEPALIVE_MS`: the native server's keepalive period, ms (0: off).
pub const DEFAULT_KEEPALIVE_MS: u64 = 30_000;
/// `MAX_MESSAGE_BYTES`: largest accepted message, bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4096;
/// `MAX_CLIENTS_PER_SPACE`, on every target.
pub const DEFAULT_MAX_CLIENTS_PER_SPACE: usize = 1000;
/// `MESSAGE_RATE` (messages a second, sustained), on every target. Updates
/// count towards it, and section 10 wants 60 updates a second (a
/// mousemove handler) allowed indefinitely, pings on top: coalescing, not
/// refusal, bounds the fan-out.
pub const DEFAULT_MESSAGE_RATE: u32 = 100;
/// `MESSAGE_BURST` (messages at once), on every target: two seconds of the
/// rate, so that a browser's bunched events never trip it.
pub const DEFAULT_MESSAGE_BURST: u32 = 200;
/// `MAX_STATE_BYTES`: the largest state (as sent) or token `info` claim.
pub const DEFAULT_MAX_STATE_BYTES: usize = 1024;
/// `UPDATE_INTERVAL_MS`: one client's updates reach the others at most once
/// per this many ms (0: every update).
pub const DEFAULT_UPDATE_INTERVAL_MS: u64 = 50;
/// `MAX_CONNECTIONS` (native): WebSockets one instance serves at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `HANDSHAKE_TIMEOUT_MS` (native): how long a connection may take to send
/// its HTTP request head.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// `MAX_QUEUED_MESSAGES` (native): messages queued for one socket.
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 1_024;

// --- A space served through a shared store (Redis) -------------------------
// Not settings of PROTOCOL.md, but the timings and bounds behind its rules
// (section 3's convergence, section 4's one-second expiry), kept here with
// the settings so that each number lives once.

/// How long a hub waits behind a gap in the event sequence (an event lost
/// or late on the subscription) before it resynchronises from a snapshot.
pub const DEFAULT_GAP_PATIENCE_MS: u64 = 200;
/// The shortest time between two sweeps of one space by one instance: a
/// sweep that found nothing due (the store's clock a hair behind the
/// estimate) is not repeated at once.
pub const DEFAULT_SWEEP_SPACING_MS: u64 = 50;
/// How long a failed sweep or resync waits before it is tried again.
pub const DEFAULT_RETRY_MS: u64 = 250;
/// How long a join waits for its space's subscription before it is refused
/// with 1011.
pub const DEFAULT_SUBSCRIBE_WAIT_MS: u64 = 3_000;
/// The lease an instance puts back, after the store lost a space, for a
/// client it only knows of (held on another instance): short, so that a
/// lease nobody renews never outlives its TTL by more than about a second;
/// the instance that holds the socket claims it with a full lease.
pub const DEFAULT_PLACEHOLDER_MS: u64 = 1_000;
/// The most events a hub holds back behind a gap; beyond it the space
/// resynchronises at once instead of holding more.
pub const DEFAULT_MAX_HELD_EVENTS: usize = 1_024;
/// The most events of another history (epoch) a space holds while it
/// resynchronises; beyond it they are dropped and the space resynchronises
/// again.
pub const DEFAULT_MAX_FOREIGN_EVENTS: usize = 256;
/// `SUBSCRIPTION_QUEUE` (native, Redis): messages queued between the
/// subscription connection and the spaces; beyond it messages are dropped
/// and every space resynchronises.
pub const DEFAULT_SUBSCRIPTION_QUEUE: usize = 4_096;
