//! Read-only views of the in-memory store, for `GET /{space}` and
//! `GET /metrics`.

use longhouse_core::{ClientInfo, SpaceName};

use super::MemoryStore;

impl MemoryStore {
    /// The space's roster as its hub shows it (empty for an unknown space).
    pub(in crate::store) fn roster(&self, name: &SpaceName) -> Vec<ClientInfo> {
        let entry = self.spaces.lock().expect("spaces lock").get(name).cloned();
        entry.map_or_else(Vec::new, |e| {
            e.lock().expect("space lock").space.hub().view()
        })
    }

    /// How many spaces this process holds.
    pub(in crate::store) fn space_count(&self) -> usize {
        self.spaces.lock().expect("spaces lock").len()
    }
}
