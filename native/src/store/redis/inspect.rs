//! Read-only views of the Redis store, for `GET /{space}` and
//! `GET /metrics`.

use std::collections::HashMap;

use longhouse_core::shared::{CallId, History, ScriptClock, StoreCall, StoreOp};
use longhouse_core::{ClientInfo, SpaceName, Step};

use super::{lock, RedisStore, RedisStoreError};
use crate::ids::fresh_epoch;
use crate::store::dispatch::carry_out;

impl RedisStore {
    /// The space's roster from Redis: a resync that knows nothing, which
    /// changes nothing but sweeping what has run out.
    pub(in crate::store) async fn roster(
        &self,
        name: &SpaceName,
    ) -> Result<Vec<ClientInfo>, RedisStoreError> {
        let call = StoreCall {
            id: CallId(0),
            history: History::default(),
            op: StoreOp::Resync { known: Vec::new() },
        };
        let script = self
            .scripts_for(name)
            .script(&call, ScriptClock::Store, &fresh_epoch());
        let reply = self.scripts.run(&script).await?;
        let swept = Step {
            events: reply.events,
            ..Step::default()
        };
        carry_out(name, &mut HashMap::new(), swept, |_| false);
        Ok(reply
            .snapshot
            .map(|leases| leases.into_iter().map(|(client, _)| client).collect())
            .unwrap_or_default())
    }

    /// How many spaces have sockets on this instance.
    pub(in crate::store) fn space_count(&self) -> usize {
        lock(&self.spaces).by_name.len()
    }
}
