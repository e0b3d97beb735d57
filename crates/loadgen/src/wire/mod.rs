//! The wire codecs: how a simulated client joins, sends its state and reads
//! what the server tells it, for each protocol the load generator speaks.
//! Everything above this module (the client's bookkeeping, every scenario's
//! measuring and accounting) is the same for all of them, so a comparison
//! differs only in the codec.

mod longhouse;
mod yjs;

use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

pub use longhouse::Longhouse;
pub use yjs::Yjs;

/// Which server the load generator talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Longhouse's JSON protocol (PROTOCOL.md).
    Longhouse,
    /// The Yjs awareness protocol (y-sync messages over y-websocket), as
    /// `@y/websocket-server` serves it: one room is one space.
    Yjs,
}

/// One thing a server message meant, in the terms every scenario counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// This client is present and knows who else is: its id and the roster
    /// (itself included), each with its state if it has one.
    Welcome {
        /// This client's id.
        id: String,
        /// Everyone present, with their states.
        roster: Vec<(String, Option<String>)>,
    },
    /// Someone else joined, with this state.
    Join {
        /// The subject's id.
        id: String,
        /// Its state, if any.
        state: Option<String>,
    },
    /// Someone else's state changed (`None`: cleared).
    Update {
        /// The subject's id.
        id: String,
        /// Its new state.
        state: Option<String>,
    },
    /// Someone else left.
    Leave {
        /// The subject's id.
        id: String,
    },
    /// This client's lease expired.
    Expired,
    /// The server reported an error to this client.
    Error(String),
}

/// A codec's answer to one server message: what it meant, and what the
/// protocol says to send back.
#[derive(Debug, Default)]
pub struct Read {
    /// What the message meant, in order.
    pub seen: Vec<Seen>,
    /// Replies to send.
    pub replies: Vec<Message>,
}

/// A codec speaking one protocol for one client.
pub enum Codec {
    /// Longhouse.
    Longhouse(Longhouse),
    /// Yjs awareness.
    Yjs(Box<Yjs>),
}

impl Codec {
    /// A codec for client number `n`, which joins with `state` (JSON text).
    pub fn new(protocol: Protocol, n: u64, state: Option<String>) -> Codec {
        match protocol {
            Protocol::Longhouse => Codec::Longhouse(Longhouse::new(state)),
            Protocol::Yjs => Codec::Yjs(Box::new(Yjs::new(n, state))),
        }
    }

    /// The path and query to upgrade, for a client of `space` as `identity`.
    pub fn path(&self, space: &str, identity: &str) -> String {
        match self {
            Codec::Longhouse(c) => c.path(space, identity),
            Codec::Yjs(c) => c.path(space),
        }
    }

    /// Messages to send as soon as the socket is open.
    pub fn opening(&mut self) -> Vec<Message> {
        match self {
            Codec::Longhouse(_) => Vec::new(),
            Codec::Yjs(c) => c.opening(),
        }
    }

    /// Decodes one message from the server.
    pub fn read(&mut self, message: &Message) -> Read {
        match (self, message) {
            (Codec::Longhouse(c), Message::Text(text)) => c.read(text.as_str()),
            (Codec::Yjs(c), Message::Binary(bytes)) => c.read(bytes),
            _ => Read::default(),
        }
    }

    /// The message that replaces this client's state with `state` (JSON
    /// object text).
    pub fn update(&mut self, state: &str) -> Message {
        match self {
            Codec::Longhouse(c) => c.update(state),
            Codec::Yjs(c) => c.update(state),
        }
    }

    /// The application-level ping, where the protocol has one (Yjs relies
    /// on WebSocket pings, which the socket answers by itself).
    pub fn ping(&self) -> Option<Message> {
        match self {
            Codec::Longhouse(_) => Some(Longhouse::ping()),
            Codec::Yjs(_) => None,
        }
    }

    /// How often the protocol wants the client to say it is still there
    /// with something other than a ping, if at all; `renew` is then called
    /// about this often.
    pub fn renew_check(&self) -> Option<Duration> {
        match self {
            Codec::Longhouse(_) => None,
            Codec::Yjs(_) => Some(yjs::RENEW_CHECK),
        }
    }

    /// The message a client's own protocol library would send now to keep
    /// its presence alive, if one is due.
    pub fn renew(&mut self) -> Option<Message> {
        match self {
            Codec::Longhouse(_) => None,
            Codec::Yjs(c) => c.renew(),
        }
    }
}
