//! Every default of PROTOCOL.md's settings (sections 9 and 15), in one
//! place: the native server's flags, the Worker's vars and the core's own
//! `Default`s all read them from here, so the targets cannot drift.

/// `PRESENCE_TTL`: lease length, ms.
pub const DEFAULT_PRESENCE_TTL_MS: u64 = 60_000;
/// `KEEPALIVE_MS`: the native server's keepalive period, ms (0: off).
pub const DEFAULT_KEEPALIVE_MS: u64 = 30_000;
/// `MAX_MESSAGE_BYTES`: largest accepted message, bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4096;
/// `MAX_CLIENTS_PER_SPACE`, on every target.
pub const DEFAULT_MAX_CLIENTS_PER_SPACE: usize = 1000;
/// `MESSAGE_RATE` (messages a second, sustained), on every target.
pub const DEFAULT_MESSAGE_RATE: u32 = 10;
/// `MESSAGE_BURST` (messages at once), on every target.
pub const DEFAULT_MESSAGE_BURST: u32 = 20;
