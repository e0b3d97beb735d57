//! The Durable Object's open sockets and what it keeps for each one: the
//! message rate bucket and the last auto-answered ping already counted as a
//! renewal. One entry per socket, so forgetting a socket forgets all of it,
//! whichever side closed it (the client, or the object with 4000, 4001,
//! 1008, 1009…).
//!
//! Generic over the socket handle so that it compiles, and is tested, on
//! the host; the object uses `worker::WebSocket`.

use std::collections::HashMap;

use longhouse_core::{ConnId, TokenBucket};

/// One socket and its state.
struct Entry<W> {
    ws: W,
    /// In memory only: a wake refills it.
    bucket: TokenBucket,
    /// The auto-response time last counted as a renewal (ms since the
    /// epoch), so that the same answer is not counted twice.
    counted_ping: Option<u64>,
}

/// The open sockets of one object, by connection.
pub struct Sockets<W> {
    entries: HashMap<ConnId, Entry<W>>,
    rate: u32,
    burst: u32,
}

impl<W> Sockets<W> {
    /// No sockets yet; each one added gets a `MESSAGE_RATE`/`MESSAGE_BURST`
    /// bucket of its own.
    pub fn new(rate: u32, burst: u32) -> Self {
        Sockets {
            entries: HashMap::new(),
            rate,
            burst,
        }
    }

    /// Adds an open socket with a full bucket and no ping counted.
    pub fn insert(&mut self, conn: ConnId, ws: W, now_ms: u64) {
        let bucket = TokenBucket::new(self.rate, self.burst, now_ms);
        self.entries.insert(
            conn,
            Entry {
                ws,
                bucket,
                counted_ping: None,
            },
        );
    }

    /// The socket, if it is open.
    pub fn get(&self, conn: ConnId) -> Option<&W> {
        self.entries.get(&conn).map(|e| &e.ws)
    }

    /// Forgets the socket and everything kept for it; returns it to close.
    pub fn remove(&mut self, conn: ConnId) -> Option<W> {
        self.entries.remove(&conn).map(|e| e.ws)
    }

    /// Takes one message from the socket's bucket: false when it is over
    /// its rate. An unknown socket has no bucket and is never limited (the
    /// object ignores its frames anyway).
    pub fn within_rate(&mut self, conn: ConnId, now_ms: u64) -> bool {
        self.entries
            .get_mut(&conn)
            .is_none_or(|e| e.bucket.take(now_ms))
    }

    /// The socket's latest auto-answered ping, as `read` finds it on the
    /// socket, if it has not been counted yet; it counts as of now.
    pub fn uncounted_ping(
        &mut self,
        conn: ConnId,
        read: impl FnOnce(&W) -> Option<u64>,
    ) -> Option<u64> {
        let entry = self.entries.get_mut(&conn)?;
        let at = read(&entry.ws)?;
        if entry.counted_ping == Some(at) {
            return None;
        }
        entry.counted_ping = Some(at);
        Some(at)
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);

    #[test]
    fn each_socket_has_its_own_bucket() {
        let mut sockets = Sockets::new(1, 2);
        sockets.insert(A, "a", 0);
        sockets.insert(B, "b", 0);
        assert!(sockets.within_rate(A, 0));
        assert!(sockets.within_rate(A, 0));
        assert!(!sockets.within_rate(A, 0), "a's burst of 2 is spent");
        assert!(sockets.within_rate(B, 0), "b's is not");
        assert!(sockets.within_rate(A, 1000), "a second refills one");
    }

    #[test]
    fn a_ping_is_counted_once() {
        let mut sockets = Sockets::new(10, 20);
        sockets.insert(A, "a", 0);
        assert_eq!(sockets.uncounted_ping(A, |_| None), None);
        assert_eq!(sockets.uncounted_ping(A, |_| Some(500)), Some(500));
        assert_eq!(sockets.uncounted_ping(A, |_| Some(500)), None);
        assert_eq!(sockets.uncounted_ping(A, |_| Some(900)), Some(900));
        // The reader is handed the socket itself.
        assert_eq!(
            sockets.uncounted_ping(A, |ws| (*ws == "a").then_some(1200)),
            Some(1200)
        );
        assert_eq!(sockets.uncounted_ping(B, |_| Some(1)), None, "not open");
    }

    /// Whoever closes a socket, removing it leaves nothing behind: the
    /// object's memory follows its open sockets, and a socket added again
    /// under the same connection starts afresh.
    #[test]
    fn removing_a_socket_forgets_its_bucket_and_its_counted_ping() {
        let mut sockets = Sockets::new(1, 1);
        sockets.insert(A, "a", 0);
        sockets.insert(B, "b", 0);
        assert!(sockets.within_rate(A, 0));
        assert!(!sockets.within_rate(A, 0));
        assert_eq!(sockets.uncounted_ping(A, |_| Some(700)), Some(700));
        assert_eq!(sockets.remove(A), Some("a"));
        assert_eq!(sockets.len(), 1);
        assert_eq!(sockets.get(A), None);
        assert_eq!(sockets.remove(A), None);
        sockets.insert(A, "a again", 0);
        assert!(sockets.within_rate(A, 0), "a fresh bucket");
        assert_eq!(
            sockets.uncounted_ping(A, |_| Some(700)),
            Some(700),
            "no ping counted yet"
        );
        sockets.remove(A);
        sockets.remove(B);
        assert!(sockets.is_empty());
    }
}
