//! The space's webhook outbox in the Durable Object's SQLite storage: one
//! row per member event not yet delivered (or given up), in the order it
//! was made, so that an event survives the object's eviction, a deploy or a
//! restart of `wrangler dev` and is sent again by the object that wakes.

use longhouse_core::webhook::{EventType, WebhookEvent};
use longhouse_core::UnixMillis;
use serde::Deserialize;
use worker::{console_error, Result, SqlStorage, SqlStorageValue};

/// The object's undelivered member events.
pub struct OutboxTable {
    sql: SqlStorage,
}

impl OutboxTable {
    /// Opens the table, creating it on an object's first use.
    pub fn open(sql: SqlStorage) -> Self {
        if let Err(err) = sql.exec(
            "CREATE TABLE IF NOT EXISTS webhook_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
             id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, space TEXT NOT NULL, identity TEXT, \
             reason TEXT, at INTEGER NOT NULL)",
            None,
        ) {
            console_error!("schema: {err}");
        }
        OutboxTable { sql }
    }

    /// Every stored event, oldest first.
    pub fn load(&self) -> Result<Vec<WebhookEvent>> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            #[serde(rename = "type")]
            kind: String,
            space: String,
            identity: Option<String>,
            reason: Option<String>,
            at: f64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT id, type, space, identity, reason, at FROM webhook_outbox ORDER BY seq",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let Some(kind) = EventType::parse(&r.kind) else {
                    // Written by a newer release: left for it.
                    console_error!("stored webhook event of unknown type {:?}", r.kind);
                    return None;
                };
                Some(WebhookEvent {
                    id: r.id,
                    kind,
                    space: r.space,
                    identity: r.identity,
                    reason: r.reason,
                    at: crate::lease_table::millis(r.at),
                })
            })
            .collect())
    }

    /// Stores `event` behind every earlier one.
    pub fn insert(&self, event: &WebhookEvent) -> Result<()> {
        let text = |v: &Option<String>| {
            v.as_deref()
                .map_or(SqlStorageValue::Null, SqlStorageValue::from)
        };
        self.sql.exec(
            "INSERT OR IGNORE INTO webhook_outbox (id, type, space, identity, reason, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                event.id.as_str().into(),
                event.kind.as_str().into(),
                event.space.as_str().into(),
                text(&event.identity),
                text(&event.reason),
                number(event.at),
            ],
        )?;
        Ok(())
    }

    /// Forgets events that are done with (delivered, or given up).
    pub fn delete<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Result<()> {
        for id in ids {
            self.sql
                .exec("DELETE FROM webhook_outbox WHERE id = ?", vec![id.into()])?;
        }
        Ok(())
    }
}

/// A millisecond time as SQLite stores it through JavaScript (exact below
/// 2^53).
#[allow(clippy::cast_precision_loss)]
fn number(at: UnixMillis) -> SqlStorageValue {
    SqlStorageValue::from(at.0 as f64)
}
