//! The queue between a space and one socket's task: bounded, so a client
//! that stops reading cannot grow the server's memory.
//!
//! One small allocation per socket (a lock around a `VecDeque` that holds
//! room only while messages wait, and two `Notify`s) instead of a tokio
//! `mpsc` channel, whose first block of 32 slots and cache-padded halves
//! cost about 960 B per idle socket (BENCHMARKS.md, "Per idle socket").
//!
//! The keepalive comes through here too, as a flag the process's wheel
//! raises (a [`Bell`]): the socket's task then waits on one queue for
//! everything it writes, not on a second waker of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use longhouse_core::CloseCode;
use tokio::sync::Notify;
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

struct State {
    queue: VecDeque<Outbound>,
    /// The outbox was dropped: nothing more will come.
    sender_gone: bool,
    /// The inbox was dropped: nobody reads any more.
    receiver_gone: bool,
    overflowed: bool,
    /// A keepalive is due (raised by the wheel, taken by [`Inbox::next`]);
    /// a flag, not a queued message: no room held, never more than one.
    ping_due: bool,
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
    /// Something was queued, a keepalive fell due, or the outbox went.
    ready: Notify,
    /// The queue overflowed.
    overflow: Notify,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No code under this lock panics; the data is whole either way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending half: spaces push to it while holding their lock, so the
/// order of events is the order of the roster. It never blocks: when the
/// queue is full the socket is given up on instead.
pub struct Outbox(Arc<Shared>);

impl Outbox {
    /// Queues `message`, or, if the queue is full, flags the socket as a
    /// client that stopped reading (its task then ends it as a lost
    /// connection: the lease runs on, as for a network drop).
    pub fn send(&self, message: Outbound) -> Result<(), SendError> {
        let mut state = self.0.state();
        if state.receiver_gone {
            return Err(SendError::Closed);
        }
        if state.queue.len() >= self.0.capacity {
            let first = !state.overflowed;
            state.overflowed = true;
            drop(state);
            if first {
                warn!(
                    capacity = self.0.capacity,
                    "client stopped reading: dropping its connection as lost"
                );
                self.0.overflow.notify_one();
                // A reader waiting for the next message learns it too.
                self.0.ready.notify_one();
            }
            return Err(SendError::Overflow);
        }
        let was_empty = state.queue.is_empty();
        state.queue.push_back(message);
        drop(state);
        if was_empty {
            // The reader empties the queue before it waits again, so one
            // wake-up per burst is enough.
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.0.state().sender_gone = true;
        self.0.ready.notify_one();
    }
}

/// What [`Inbox::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A message to carry out.
    Message(Outbound),
    /// Send a keepalive (PROTOCOL.md section 7).
    Keepalive,
    /// The queue overflowed: the client stopped reading.
    Overflowed,
    /// The outbox is gone and nothing is left.
    Closed,
}

/// The receiving half, owned by the socket's task.
pub struct Inbox(Arc<Shared>);

impl Inbox {
    /// The next message, `None` once the outbox is gone and the queue empty.
    pub async fn recv(&mut self) -> Option<Outbound> {
        loop {
            // A wake-up sent between this check and the wait is kept by
            // `Notify` as a permit, so none is lost.
            {
                let mut state = self.0.state();
                if let Some(message) = pop(&mut state) {
                    return Some(message);
                }
                if state.sender_gone {
                    return None;
                }
            }
            self.0.ready.notified().await;
        }
    }

    /// The next message, or the news that the queue overflowed (checked
    /// first: a client that stopped reading is given up on at once), or a
    /// keepalive that fell due (before what is queued, so a busy socket's
    /// ping is not held back), or `Closed` once the outbox is gone and the
    /// queue empty. One future for all, so an idle socket's task waits on
    /// one thing only besides its reader.
    pub async fn next(&mut self) -> Next {
        loop {
            {
                let mut state = self.0.state();
                if state.overflowed {
                    return Next::Overflowed;
                }
                if state.ping_due {
                    state.ping_due = false;
                    return Next::Keepalive;
                }
                if let Some(message) = pop(&mut state) {
                    return Next::Message(message);
                }
                if state.sender_gone {
                    return Next::Closed;
                }
            }
            self.0.ready.notified().await;
        }
    }

    /// The next message if one is already queued, without waiting: lets
    /// the socket's task write a burst with one flush.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        pop(&mut self.0.state())
    }

    /// Puts `message` back at the head of the queue, to be read next.
    pub fn unread(&mut self, message: Outbound) {
        self.0.state().queue.push_front(message);
    }

    /// A handle that resolves once the queue overflowed, usable while the
    /// inbox itself is borrowed for `recv`.
    pub fn overflow(&self) -> Overflowed {
        Overflowed(self.0.clone())
    }

    /// The handle the keepalive wheel rings for this socket.
    pub fn bell(&self) -> Bell {
        Bell(Arc::downgrade(&self.0))
    }
}

/// Raises one socket's keepalive flag; held by the keepalive wheel. Weak,
/// so the wheel never keeps a gone socket's queue alive.
pub struct Bell(Weak<Shared>);

impl Bell {
    /// Tells the socket a keepalive is due (once, however often rung
    /// before it is sent). Returns `false` if the socket's task is gone.
    pub fn ring(&self) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let mut state = shared.state();
        if state.receiver_gone {
            return false;
        }
        let raised = !state.ping_due;
        state.ping_due = true;
        drop(state);
        if raised {
            shared.ready.notify_one();
        }
        true
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.receiver_gone = true;
        state.queue = VecDeque::new();
    }
}

fn pop(state: &mut State) -> Option<Outbound> {
    let message = state.queue.pop_front();
    if state.queue.is_empty() && state.queue.capacity() > 0 {
        // An idle socket holds no slots: one allocation per burst instead.
        state.queue = VecDeque::new();
    }
    message
}

/// See [`Inbox::overflow`].
pub struct Overflowed(Arc<Shared>);

impl Overflowed {
    /// Resolves once the queue overflowed (at once if it already has).
    pub async fn wait(&self) {
        loop {
            let notified = self.0.overflow.notified();
            if self.0.state().overflowed {
                return;
            }
            notified.await;
        }
    }
}

/// A fresh queue for one socket holding at most `capacity` messages.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            queue: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
            overflowed: false,
            ping_due: false,
        }),
        ready: Notify::new(),
        overflow: Notify::new(),
    });
    (Outbox(shared.clone()), Inbox(shared))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

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

    #[tokio::test]
    async fn the_queue_drains_after_the_outbox_goes_then_ends() {
        let (tx, mut rx) = outbox(4);
        tx.send(Outbound::Text("a".into())).unwrap();
        tx.send(Outbound::Text("b".into())).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(Outbound::Text("a".into())));
        assert_eq!(rx.try_recv(), Some(Outbound::Text("b".into())));
        let end = tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await;
        assert_eq!(end, Ok(None));
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken_by_a_send_from_another_task() {
        let (tx, mut rx) = outbox(4);
        let reader = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send(Outbound::Close(CloseCode::Normal)).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), reader)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, Some(Outbound::Close(CloseCode::Normal)));
    }

    #[test]
    fn a_burst_does_not_stay_allocated_once_read() {
        let (tx, mut rx) = outbox(1000);
        for _ in 0..500 {
            tx.send(Outbound::Text("x".into())).unwrap();
        }
        while rx.try_recv().is_some() {}
        assert_eq!(rx.0.state().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn next_tells_an_overflow_before_what_is_queued() {
        let (tx, mut rx) = outbox(1);
        tx.send(Outbound::Text("a".into())).unwrap();
        assert_eq!(rx.next().await, Next::Message(Outbound::Text("a".into())));
        tx.send(Outbound::Text("b".into())).unwrap();
        assert_eq!(
            tx.send(Outbound::Text("c".into())),
            Err(SendError::Overflow)
        );
        assert_eq!(rx.next().await, Next::Overflowed);
        drop(tx);
        let (tx, mut rx) = outbox(1);
        drop(tx);
        assert_eq!(rx.next().await, Next::Closed);
    }

    #[tokio::test]
    async fn a_rung_bell_is_one_keepalive_before_what_is_queued() {
        let (tx, mut rx) = outbox(4);
        let bell = rx.bell();
        tx.send(Outbound::Text("a".into())).unwrap();
        assert!(bell.ring());
        assert!(bell.ring(), "rung twice before it is sent: still one");
        assert_eq!(rx.next().await, Next::Keepalive);
        assert_eq!(rx.next().await, Next::Message(Outbound::Text("a".into())));
        assert_eq!(rx.next().now_or_never(), None, "nothing more");
        drop(tx);
        assert_eq!(rx.next().await, Next::Closed);
        drop(rx);
        assert!(!bell.ring(), "a gone socket is not rung");
    }

    #[tokio::test]
    async fn a_bell_wakes_a_waiting_reader() {
        let (_tx, mut rx) = outbox(4);
        let bell = rx.bell();
        let reader = tokio::spawn(async move { rx.next().await });
        tokio::task::yield_now().await;
        assert!(bell.ring());
        let got = tokio::time::timeout(std::time::Duration::from_secs(2), reader)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, Next::Keepalive);
    }
}
