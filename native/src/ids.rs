//! Fresh connection and client ids.

use std::sync::atomic::{AtomicU64, Ordering};

use longhouse_core::{ClientId, ConnId};

/// Hands out connection ids: random high bits per process, so ids of two
/// instances sharing a store never collide, and a counter below them.
#[derive(Debug)]
pub struct ConnIds {
    prefix: u64,
    counter: AtomicU64,
}

impl ConnIds {
    /// A generator with a random process prefix.
    pub fn new() -> Self {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        ConnIds {
            prefix: u64::from(u32::from_le_bytes(bytes)) << 32,
            counter: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> ConnId {
        ConnId(self.prefix | (self.counter.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF))
    }
}

impl Default for ConnIds {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh client id: a UUID v4 from the OS random source.
pub fn fresh_client_id() -> ClientId {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    ClientId::from_random_bytes(bytes)
}

/// A fresh epoch for a shared space's history, should a script have to
/// begin one (scripts have no randomness of their own).
pub fn fresh_epoch() -> longhouse_core::shared::Epoch {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    longhouse_core::shared::Epoch::from_random(u64::from_le_bytes(bytes))
}

/// A fresh webhook event id: a UUID v4, as client ids are made.
pub fn fresh_event_id() -> String {
    fresh_client_id().as_str().to_owned()
}
