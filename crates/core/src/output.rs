//! What the state machines ask their target to do.

use std::sync::Arc;

use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::conn_id::ConnId;
use crate::json::Json;

/// An effect on one local socket, in the order it must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this text frame. The same `Arc` is shared by every recipient of a
    /// broadcast, so a message is encoded once.
    Send {
        /// The recipient.
        conn: ConnId,
        /// One JSON object.
        text: Arc<str>,
    },
    /// Close the socket with this code; the hub has already forgotten it, so
    /// its later close report changes nothing.
    Close {
        /// The socket.
        conn: ConnId,
        /// Why.
        code: CloseCode,
    },
}

/// A change a hub asks of whoever keeps the roster (the in-process
/// [`crate::Roster`], or a shared store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A ping: extend the lease.
    Renew {
        /// The lease.
        id: ClientId,
        /// The connection that pinged.
        holder: ConnId,
    },
    /// A clean close or a protocol violation: end the lease now.
    Leave {
        /// The lease.
        id: ClientId,
        /// The connection that closed.
        holder: ConnId,
        /// An update coalescing still held: the leave shows this state
        /// (`Some(None)`: cleared) instead of the stored one.
        held: Option<Option<Json>>,
    },
    /// A (coalesced) state update: store it, renew the lease, tell the
    /// others.
    Update {
        /// The lease.
        id: ClientId,
        /// The connection that sent it.
        holder: ConnId,
        /// The new state; `None` clears it.
        state: Option<Json>,
    },
    /// A broadcast or a cursor: relay it to everyone else, renew the
    /// lease.
    Relay {
        /// The sender's lease.
        id: ClientId,
        /// The sender's connection.
        holder: ConnId,
        /// What to relay.
        relay: Relay,
    },
}

/// A message relayed from one client to the others of its space; nothing
/// of it is stored (section 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// `{"action":"broadcast","data":…}`.
    Broadcast(Json),
    /// `{"action":"cursor",…}`, every field as sent.
    Cursor(std::sync::Arc<serde_json::Map<String, serde_json::Value>>),
}

impl Relay {
    /// The message everyone else gets from `from`.
    pub fn message(&self, from: &ClientId) -> crate::wire::ServerMessage {
        match self {
            Relay::Broadcast(data) => crate::wire::ServerMessage::Broadcast {
                from: Some(from.clone()),
                data: data.clone(),
            },
            Relay::Cursor(fields) => crate::wire::ServerMessage::Cursor {
                from: from.clone(),
                fields: fields.clone(),
            },
        }
    }
}

/// How a socket ended, as the target saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client sent a close frame: the lease ends at once.
    Clean,
    /// The connection dropped without a close frame: the lease runs on so
    /// the client can resume.
    Lost,
}
