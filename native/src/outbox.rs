//! The queue between a space and one socket's task: bounded, so a client
//! that stops reading cannot grow the server's memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use longhouse_core::CloseCode;
use tokio::sync::{mpsc, Notify};
use tracing::warn;

/// What a socket's task must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send a text frame.
    Text(Arc<str>),
    /// Send a close frame and finish.
    Close(CloseCode),
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The socket's task is gone.
    #[error("socket task gone")]
    Closed,
    /// The queue is full: the client stopped reading. The socket task is
    /// told to drop the connection as lost.
    #[error("client not reading, queue full")]
    Overflow,
}

#[derive(Default)]
struct Overflow {
    happened: AtomicBool,
    notify: Notify,
}

/// The sending half: spaces push to it while holding their lock, so the
/// order of events is the order of the roster. It never blocks: when the
/// queue is full the socket is given up on instead.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    overflow: Arc<Overflow>,
}

impl Outbox {
    /// Queues `message`, or, if the queue is full, flags the socket as a
    /// client that stopped reading (its task then ends it as a lost
    /// connection: the lease runs on, as for a network drop).
    pub fn send(&self, message: Outbound) -> Result<(), SendError> {
        match self.tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.overflow.happened.swap(true, Ordering::SeqCst) {
                    warn!(
                        capacity = self.tx.max_capacity(),
                        "client stopped reading: dropping its connection as lost"
                    );
                    self.overflow.notify.notify_one();
                }
                Err(SendError::Overflow)
            }
        }
    }
}

/// The receiving half, owned by the socket's task.
pub struct Inbox {
    rx: mpsc::Receiver<Outbound>,
    overflow: Arc<Overflow>,
}

impl Inbox {
    /// The next message, `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }

    /// The next message if one is already queued, without waiting: lets
    /// the socket's task write a burst with one flush.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        self.rx.try_recv().ok()
    }

    /// A handle that resolves once the queue overflowed, usable while the
    /// inbox itself is borrowed for `recv`.
    pub fn overflow(&self) -> Overflowed {
        Overflowed(self.overflow.clone())
    }
}

/// See [`Inbox::overflow`].
pub struct Overflowed(Arc<Overflow>);

impl Overflowed {
    /// Resolves once the queue overflowed (at once if it already has).
    pub async fn wait(&self) {
        let notified = self.0.notify.notified();
        if self.0.happened.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

/// A fresh queue for one socket holding at most `capacity` messages.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflow = Arc::new(Overflow::default());
    (
        Outbox {
            tx,
            overflow: overflow.clone(),
        },
        Inbox { rx, overflow },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_flags_overflow_instead_of_growing() {
        let (tx, mut rx) = outbox(2);
        let text = || Outbound::Text("x".into());
        assert_eq!(tx.send(text()), Ok(()));
        assert_eq!(tx.send(text()), Ok(()));
        assert_eq!(tx.send(text()), Err(SendError::Overflow));
        assert_eq!(tx.send(text()), Err(SendError::Overflow));
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.overflow().wait())
            .await
            .expect("overflow is signalled");
        assert_eq!(rx.recv().await, Some(text()));
        drop(rx);
        assert_eq!(tx.send(text()), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn no_overflow_no_signal() {
        let (tx, rx) = outbox(4);
        tx.send(Outbound::Close(CloseCode::Normal)).unwrap();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), rx.overflow().wait()).await;
        assert!(waited.is_err());
    }
}
