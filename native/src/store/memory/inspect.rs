//! Read-only views of the in-memory store, for `GET /{space}` and
//! `GET /metrics`.

use longhouse_core::{ClientInfo, SpaceName};

use super::{lock, MemoryStore};

impl MemoryStore {
    /// The space's roster as its hub shows it (empty for an unknown space).
    pub(in crate::store) fn roster(&self, name: &SpaceName) -> Vec<ClientInfo> {
        self.entry(name)
            .map_or_else(Vec::new, |slot| lock(&slot.entry).space.hub().view())
    }

    /// How many spaces this process holds.
    pub(in crate::store) fn space_count(&self) -> usize {
        lock(&self.spaces).len()
    }
}
