//! The space's leases in the Durable Object's SQLite storage: one row per
//! lease and the space's sequence number, so that a space rebuilt after an
//! eviction, a deploy or a restart of `wrangler dev` loses nobody.

use std::collections::BTreeSet;

use longhouse_core::{ClientId, ClientInfo, ConnId, Lease, Roster, Space, Step, UnixMillis};
use serde::Deserialize;
use worker::{console_error, Result, SqlStorage, SqlStorageValue};

/// The object's lease rows.
pub struct LeaseTable {
    sql: SqlStorage,
}

impl LeaseTable {
    /// Opens the tables, creating them on an object's first use.
    pub fn open(sql: SqlStorage) -> Self {
        for schema in [
            "CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, identity TEXT NOT NULL, \
             joined_at INTEGER NOT NULL, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            if let Err(err) = sql.exec(schema, None) {
                console_error!("schema: {err}");
            }
        }
        LeaseTable { sql }
    }

    /// The stored roster: every lease and the sequence number.
    pub fn load(&self) -> Result<Roster> {
        #[derive(Deserialize)]
        struct Row {
            id: String,
            identity: String,
            joined_at: f64,
            holder: String,
            expires_at: f64,
        }
        #[derive(Deserialize)]
        struct Seq {
            value: f64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT id, identity, joined_at, holder, expires_at FROM leases",
                None,
            )?
            .to_array()?;
        let leases = rows.into_iter().filter_map(|r| {
            Some(Lease {
                // State, info and username are not stored here yet
                // (issue 11, the edge's part).
                client: ClientInfo::new(
                    ClientId::parse(&r.id).ok()?,
                    r.identity,
                    millis(r.joined_at),
                ),
                holder: ConnId(r.holder.parse().ok()?),
                expires_at: millis(r.expires_at),
            })
        });
        let seq: Vec<Seq> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = 'seq'", None)?
            .to_array()?;
        let seq = seq.first().map_or(0, |s| millis(s.value).0);
        Ok(Roster::restore(leases, seq))
    }

    /// Writes every lease `step` touched as it now stands in `space`.
    pub fn persist(&self, space: &Space, step: &Step) -> Result<()> {
        let touched: BTreeSet<&ClientId> = step
            .events
            .iter()
            .map(|e| &e.event.client().id)
            .chain(&step.renewed)
            .collect();
        for id in touched {
            match space.roster().get(id) {
                Some(lease) => {
                    self.sql.exec(
                        "INSERT OR REPLACE INTO leases (id, identity, joined_at, holder, expires_at) \
                         VALUES (?, ?, ?, ?, ?)",
                        vec![
                            id.as_str().into(),
                            lease.client.identity.as_str().into(),
                            number(lease.client.joined_at.0),
                            lease.holder.0.to_string().into(),
                            number(lease.expires_at.0),
                        ],
                    )?;
                }
                None => {
                    self.sql
                        .exec("DELETE FROM leases WHERE id = ?", vec![id.as_str().into()])?;
                }
            }
        }
        if !step.events.is_empty() {
            self.sql.exec(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('seq', ?)",
                vec![number(space.roster().seq())],
            )?;
        }
        Ok(())
    }
}

/// SQLite integers cross into JavaScript as numbers: exact below 2^53,
/// which every millisecond time and sequence number here is.
#[allow(clippy::cast_precision_loss)]
fn number(v: u64) -> SqlStorageValue {
    SqlStorageValue::from(v as f64)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn millis(v: f64) -> UnixMillis {
    UnixMillis(if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    })
}
