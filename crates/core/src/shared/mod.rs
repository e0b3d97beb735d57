//! A space served through a store that many instances share (Redis): the
//! state machine that keeps one instance's sockets in step with it
//! ([`SharedSpace`]), the requests it makes ([`StoreOp`]), the Lua scripts
//! that carry them out atomically ([`scripts`]), the layout of the data
//! ([`SpaceKeys`]) and the wire form of events and replies.
//!
//! Every rule lives here; a target only moves bytes: it turns each
//! [`StoreCall`] into a script invocation with [`SpaceScripts::script`],
//! runs it, decodes the answer with [`ScriptReply::decode`] and hands it
//! back with [`SharedSpace::reply`], forwards the channel's messages to
//! [`SharedSpace::message`], and wakes the space at
//! [`SharedSpace::poll_timeout`].
//!
//! Three things make the shared roster hold up when the store misbehaves:
//! - **One clock.** Scripts judge leases by the store's `TIME`; instances
//!   learn their offset from it ([`StoreClock`]) for scheduling sweeps and
//!   stamping `joinedAt`.
//! - **Epochs.** A space's history has an epoch beside its sequence; a
//!   script that finds the data missing, incomplete or behind its caller
//!   begins a new one and publishes a reset, and instances resynchronise,
//!   putting back what they know ([`StoreOp::Resync`]).
//! - **Bounds.** Held-back and foreign events are bounded; overflowing
//!   makes the space resynchronise instead of growing.

mod calls;
mod clock;
mod codec;
mod config;
mod keys;
mod machine;
mod step;

pub use calls::{
    scripts, CallId, History, KnownLease, PublishMode, ScriptCall, ScriptClock, ScriptKind,
    SpaceScripts, StoreCall, StoreOp,
};
pub use clock::StoreClock;
pub use codec::{
    decode_published, encode_event, encode_relay, encode_reset, CodecError, Epoch, Published,
    ScriptReply, ScriptStatus,
};
pub use config::SharedConfig;
pub use keys::{hash_tag, SpaceKeys, IDLE_KEEP_MS, KEY_PREFIX};
pub use machine::SharedSpace;
pub use step::{Note, ResyncReason, SharedStep, StoreFailure, Subscription};
