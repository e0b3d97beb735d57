//! Connection ids: which socket holds a lease.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names one WebSocket connection. A lease records the connection that holds
/// it, so a close from a replaced socket cannot end its successor's lease and
/// an expiry or a resume reaches the right socket on whichever instance it
/// lives. Targets make them unique across instances (random high bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
