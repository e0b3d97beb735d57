//! The space's leases in the Durable Object's SQLite storage: one row per
//! lease (its client record: identity, `joinedAt`, state, info, username)
//! and the space's sequence number, so that a space rebuilt after an
//! eviction, a deploy or a restart of `wrangler dev` loses nobody.

use std::collections::BTreeSet;

use longhouse_core::{ClientId, ClientInfo, ConnId, Json, Lease, Roster, Space, Step, UnixMillis};
use serde::Deserialize;
use worker::{console_error, Result, SqlStorage, SqlStorageValue};

/// The object's lease rows.
pub struct LeaseTable {
    sql: SqlStorage,
}

impl LeaseTable {
    /// Opens the tables, creating them on an object's first use and
    /// migrating those an older release created (see [`MIGRATIONS`]).
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
        if let Err(err) = migrate(&sql) {
            console_error!("schema migration: {err}");
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
            state: Option<String>,
            info: Option<String>,
            username: Option<String>,
        }
        #[derive(Deserialize)]
        struct Seq {
            value: f64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT id, identity, joined_at, holder, expires_at, state, info, username \
                 FROM leases",
                None,
            )?
            .to_array()?;
        let leases = rows.into_iter().filter_map(|r| {
            Some(Lease {
                client: ClientInfo {
                    username: r.username,
                    info: r.info.as_deref().and_then(stored_object),
                    state: r.state.as_deref().and_then(stored_object),
                    ..ClientInfo::new(
                        ClientId::parse(&r.id).ok()?,
                        r.identity,
                        millis(r.joined_at),
                    )
                },
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
                    let client = &lease.client;
                    let text = |json: &Option<Json>| {
                        json.as_ref()
                            .map_or(SqlStorageValue::Null, |j| j.as_str().into())
                    };
                    self.sql.exec(
                        "INSERT OR REPLACE INTO leases (id, identity, joined_at, holder, \
                         expires_at, state, info, username) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        vec![
                            id.as_str().into(),
                            client.identity.as_str().into(),
                            number(client.joined_at.0),
                            lease.holder.0.to_string().into(),
                            number(lease.expires_at.0),
                            text(&client.state),
                            text(&client.info),
                            client
                                .username
                                .as_deref()
                                .map_or(SqlStorageValue::Null, Into::into),
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

/// The schema changes since the first release, in order; the tables'
/// version (`meta` key `schema`, absent: 1) counts those applied. All of a
/// migration and its version are written in the same synchronous stretch of
/// one event, which the object's storage commits together.
const MIGRATIONS: &[&str] = &[
    // 2 (protocol v2): a lease's state, signed info and 2015 username, each
    // as its JSON text; NULL when absent.
    "ALTER TABLE leases ADD COLUMN state TEXT; ALTER TABLE leases ADD COLUMN info TEXT; \
     ALTER TABLE leases ADD COLUMN username TEXT",
];

/// Applies the migrations the tables have not had yet.
fn migrate(sql: &SqlStorage) -> Result<()> {
    #[derive(Deserialize)]
    struct Version {
        value: f64,
    }
    let stored: Vec<Version> = sql
        .exec("SELECT value FROM meta WHERE key = 'schema'", None)?
        .to_array()?;
    let version = stored.first().map_or(1, |v| millis(v.value).0.max(1));
    for (at, migration) in (2u64..).zip(MIGRATIONS) {
        if at <= version {
            continue;
        }
        for statement in migration.split(';') {
            sql.exec(statement.trim(), None)?;
        }
        sql.exec(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)",
            vec![number(at)],
        )?;
    }
    Ok(())
}

/// A stored state or info, as the core keeps it; one that no longer parses
/// (never written by this code) is dropped rather than losing the lease.
fn stored_object(text: &str) -> Option<Json> {
    match Json::object(text) {
        Ok(json) => Some(json),
        Err(err) => {
            console_error!("stored state or info unreadable: {err}");
            None
        }
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
