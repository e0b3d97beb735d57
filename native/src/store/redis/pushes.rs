//! The bounded queue between the subscription connection and the spaces.
//! The redis crate hands each push to a sender without waiting; this one
//! keeps at most `SUBSCRIPTION_QUEUE` of them. Beyond that a message is
//! dropped and the queue says so, so that every space resynchronises from
//! the store instead of memory growing. A disconnection is never dropped:
//! it is a flag, not a queued message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind};
use tokio::sync::{mpsc, Notify};

#[derive(Default)]
struct Flags {
    overflowed: AtomicBool,
    disconnected: AtomicBool,
    notify: Notify,
}

/// The crate's side.
#[derive(Clone)]
pub struct PushSender {
    tx: mpsc::Sender<PushInfo>,
    flags: Arc<Flags>,
}

/// The link's side.
pub struct PushQueue {
    rx: mpsc::Receiver<PushInfo>,
    flags: Arc<Flags>,
}

/// What the link gets next.
pub enum Pushed {
    /// One push (a message, or another kind the link ignores).
    Push(PushInfo),
    /// Messages were dropped since the last time this was reported.
    Overflowed,
    /// The connection is gone.
    Disconnected,
}

/// A queue of at most `capacity` pushes.
pub fn push_queue(capacity: usize) -> (PushSender, PushQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let flags = Arc::new(Flags::default());
    (
        PushSender {
            tx,
            flags: flags.clone(),
        },
        PushQueue { rx, flags },
    )
}

impl AsyncPushSender for PushSender {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        if info.kind == PushKind::Disconnection {
            self.flags.disconnected.store(true, Ordering::SeqCst);
            self.flags.notify.notify_one();
            return Ok(());
        }
        match self.tx.try_send(info) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.flags.overflowed.store(true, Ordering::SeqCst);
                self.flags.notify.notify_one();
                Err(SendError)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError),
        }
    }
}

impl PushQueue {
    /// The next thing to handle: a disconnection first, then an overflow,
    /// then the queued pushes in order.
    pub async fn next(&mut self) -> Pushed {
        loop {
            if self.flags.disconnected.load(Ordering::SeqCst) {
                return Pushed::Disconnected;
            }
            if self.flags.overflowed.swap(false, Ordering::SeqCst) {
                return Pushed::Overflowed;
            }
            let notified = self.flags.notify.notified();
            tokio::select! {
                push = self.rx.recv() => return match push {
                    Some(p) => Pushed::Push(p),
                    None => Pushed::Disconnected,
                },
                () = notified => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![redis::Value::Int(i64::from(n))],
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_says_so_and_a_disconnection_always_gets_through() {
        let (tx, mut q) = push_queue(2);
        assert!(tx.send(message(1)).is_ok());
        assert!(tx.send(message(2)).is_ok());
        assert!(tx.send(message(3)).is_err(), "beyond the bound: dropped");
        assert!(matches!(q.next().await, Pushed::Overflowed));
        assert!(matches!(q.next().await, Pushed::Push(p) if p.data == message(1).data));
        assert!(matches!(q.next().await, Pushed::Push(p) if p.data == message(2).data));
        assert!(tx.send(message(4)).is_ok());
        assert!(tx.send(message(5)).is_ok());
        let disconnect = PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        };
        assert!(tx.send(disconnect).is_ok(), "never dropped");
        assert!(matches!(q.next().await, Pushed::Disconnected));
    }
}
