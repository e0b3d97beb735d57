//! Read-only views of the Redis store, for `GET /{space}` and
//! `GET /metrics`.

use longhouse_core::{ClientInfo, SpaceName};

use super::{log_events, RedisStore, RedisStoreError};
use crate::clock::now;

impl RedisStore {
    /// A snapshot of the space's roster from Redis: the resync script with
    /// nothing known, which changes nothing but sweeping what has run out.
    pub(in crate::store) async fn roster(
        &self,
        name: &SpaceName,
    ) -> Result<Vec<ClientInfo>, RedisStoreError> {
        let reply = self.run(self.calls(name).resync(0, &[], now())).await?;
        log_events(name, &reply.events);
        Ok(reply
            .snapshot
            .map(|s| s.leases.into_iter().map(|(client, _)| client).collect())
            .unwrap_or_default())
    }

    /// How many spaces have sockets on this instance.
    pub(in crate::store) fn space_count(&self) -> usize {
        self.spaces.lock().expect("spaces lock").by_name.len()
    }
}

/// The `script` label of a Redis command latency.
pub(super) fn script_name(kind: longhouse_core::shared_store::ScriptKind) -> &'static str {
    use longhouse_core::shared_store::ScriptKind::*;
    match kind {
        Join => "join",
        Renew => "renew",
        Leave => "leave",
        Sweep => "sweep",
        Resync => "resync",
    }
}
