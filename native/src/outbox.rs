//! The queue between a space and one socket's task.

use std::sync::Arc;

use longhouse_core::CloseCode;
use tokio::sync::mpsc;

/// What a socket's task must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send a text frame.
    Text(Arc<str>),
    /// Send a close frame and finish.
    Close(CloseCode),
}

/// The sending half: spaces push to it while holding their lock, so the
/// order of events is the order of the roster.
pub type Outbox = mpsc::UnboundedSender<Outbound>;

/// The receiving half, owned by the socket's task.
pub type Inbox = mpsc::UnboundedReceiver<Outbound>;

/// A fresh queue for one socket.
pub fn outbox() -> (Outbox, Inbox) {
    mpsc::unbounded_channel()
}
