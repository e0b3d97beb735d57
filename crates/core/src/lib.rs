//! Longhouse core: the presence protocol as a sans-IO state machine.
//!
//! Targets own sockets, clocks, timers and storage; this crate owns every
//! rule. A target parses a join with [`JoinRequest::parse`], feeds a
//! [`Space`] (or, with a store shared by many instances, a
//! [`shared::SharedSpace`]) with joins, frames, closes and the time, and
//! carries out the [`Output`]s it gets back.

pub mod api;
mod client_id;
mod close;
mod conn_id;
pub mod defaults;
mod error_kind;
mod hs256;
mod hub;
mod inbound;
mod join;
mod json;
mod limits;
mod output;
mod roster;
mod roster_view;
pub mod shared;
mod space;
mod time;
pub mod token;
pub mod webhook;
mod wire;

pub use client_id::{ClientId, MAX_ID_CHARS};
pub use close::CloseCode;
pub use conn_id::ConnId;
pub use defaults::{
    DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_CLIENTS_PER_SPACE, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STATE_BYTES, DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGE_RATE, DEFAULT_PRESENCE_TTL_MS,
    DEFAULT_UPDATE_INTERVAL_MS,
};
pub use error_kind::ErrorKind;
pub use hub::{refuse, Framed, Hub};
pub use inbound::{decode, decode_limited, ClientMessage, Frame, MessageError};
pub use join::{
    InvalidReason, JoinError, JoinRequest, ResumeChanges, SpaceName, MAX_IDENTITY_CHARS,
    MAX_SPACE_CHARS, MAX_USERNAME_CHARS,
};
pub use json::{Json, JsonError};
pub use limits::{origin_allowed, parse_origins, TokenBucket};
pub use output::{Command, Disconnect, Output, Relay};
pub use roster::{Lease, LeaveCause, Roster, RosterEvent, Sequenced};
pub use roster_view::{roster_json, roster_token};
pub use space::{event_kind, refuse_join, Space, SpaceConfig, Step};
pub use time::UnixMillis;
pub use token::{Auth, AuthError, Authorized};
pub use wire::{ClientInfo, ServerMessage, KEEPALIVE_TEXT, PING_TEXT, PONG_TEXT, REMOVED_TEXT};
