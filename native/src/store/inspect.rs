//! What plain HTTP requests may ask of the store: a space's roster and how
//! many spaces there are.

use longhouse_core::{ClientInfo, SpaceName};

use super::Store;

impl Store {
    /// Who is present in `space` now, or why the store cannot tell.
    pub async fn roster(&self, space: &SpaceName) -> Result<Vec<ClientInfo>, String> {
        match self {
            Store::Memory(m) => Ok(m.roster(space)),
            Store::Redis(r) => r.roster(space).await.map_err(|e| e.to_string()),
        }
    }

    /// Spaces with sockets on this instance.
    pub fn space_count(&self) -> usize {
        match self {
            Store::Memory(m) => m.space_count(),
            Store::Redis(r) => r.space_count(),
        }
    }
}
