//! Where presence lives: the small interface the connection code talks to,
//! implemented in memory and, with `REDIS_URL`, in Redis.

mod dispatch;
mod inspect;
mod memory;
mod redis;
mod wakeups;

pub use self::redis::RedisStore;
pub use memory::MemoryStore;

use std::sync::Arc;

use longhouse_core::{ConnId, Disconnect, Frame, JoinRequest, SpaceName};

use crate::outbox::Outbox;

/// How long a stopping server waits for its last store calls (the updates
/// its sockets held) before it closes what is left.
const STORE_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The store behind every space of this process.
#[derive(Clone)]
pub enum Store {
    /// Presence in this process only.
    Memory(Arc<MemoryStore>),
    /// Presence in Redis, shared by every instance that uses it.
    Redis(Arc<RedisStore>),
}

impl Store {
    /// Joins `conn` as `request` asks; everything it must be told, welcome
    /// or refusal, arrives through `outbox`.
    pub async fn join(&self, conn: ConnId, request: &JoinRequest, outbox: Outbox) {
        match self {
            Store::Memory(m) => m.join(conn, request, outbox),
            Store::Redis(r) => r.join(conn, request, outbox),
        }
    }

    /// One frame from a joined socket.
    pub async fn frame(&self, space: &SpaceName, conn: ConnId, frame: Frame<'_>) {
        match self {
            Store::Memory(m) => m.frame(space, conn, frame),
            Store::Redis(r) => r.frame(space, conn, frame),
        }
    }

    /// A socket ended; a clean close ends its lease.
    pub async fn closed(&self, space: &SpaceName, conn: ConnId, how: Disconnect) {
        match self {
            Store::Memory(m) => m.closed(space, conn, how),
            Store::Redis(r) => r.closed(space, conn, how),
        }
    }

    /// Closes every socket with 1012, keeping leases, and refuses new joins.
    /// With Redis, the updates the sockets held back (coalescing) are
    /// stored first, each socket closed once its own is: returns when every
    /// space is done with Redis, or after [`STORE_DRAIN`].
    pub async fn shutdown(&self) {
        match self {
            Store::Memory(m) => m.shutdown(),
            Store::Redis(r) => {
                r.shutdown();
                let drained = async {
                    while !r.settled() {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                };
                if tokio::time::timeout(STORE_DRAIN, drained).await.is_err() {
                    tracing::warn!("stopping: store calls still in flight after the drain period");
                }
            }
        }
    }

    /// `Ok` when the store can serve joins, or why not.
    pub async fn health(&self) -> Result<(), String> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Redis(r) => r.health(),
        }
    }
}
