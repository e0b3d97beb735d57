//! Running script calls: one EVALSHA each (loaded on connect; a NOSCRIPT
//! after a server restart loads and retries), timed for `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use longhouse_core::shared::{CodecError, ScriptCall, ScriptKind, ScriptReply, StoreFailure};
use longhouse_core::UnixMillis;
use thiserror::Error;

use super::conn::ScriptConn;

/// Why a Redis operation failed.
#[derive(Debug, Error)]
pub enum RedisStoreError {
    /// Not connected yet.
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// The server or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A script answered something this version cannot read.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl RedisStoreError {
    /// What the space needs to know of it.
    pub fn failure(&self) -> StoreFailure {
        match self {
            RedisStoreError::Unavailable(_) => StoreFailure::Unavailable,
            _ => StoreFailure::Failed,
        }
    }

    /// Whether it suggests the connection itself is gone.
    pub fn is_connection_error(&self) -> bool {
        match self {
            RedisStoreError::Redis(e) => {
                e.is_io_error() || e.is_unrecoverable_error() || e.is_timeout()
            }
            _ => false,
        }
    }
}

/// The scripts and the connection they run on.
pub struct Scripts {
    scripts: HashMap<ScriptKind, redis::Script>,
    conn: Mutex<Option<ScriptConn>>,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            scripts: ScriptKind::ALL
                .into_iter()
                .map(|k| (k, redis::Script::new(k.source())))
                .collect(),
            conn: Mutex::new(None),
        }
    }

    /// The connection, once the link opened it.
    pub fn conn(&self) -> Option<ScriptConn> {
        self.conn.lock().expect("script connection lock").clone()
    }

    pub fn set_conn(&self, conn: ScriptConn) {
        *self.conn.lock().expect("script connection lock") = Some(conn);
    }

    /// Loads every script, so that the first call of each is one EVALSHA.
    pub async fn load_all(&self, conn: &mut ScriptConn) -> redis::RedisResult<()> {
        for script in self.scripts.values() {
            script.load_async(conn).await?;
        }
        Ok(())
    }

    /// Runs one call.
    pub async fn run(&self, call: &ScriptCall) -> Result<ScriptReply, RedisStoreError> {
        let mut conn = self
            .conn()
            .ok_or_else(|| RedisStoreError::Unavailable("not connected yet".into()))?;
        let mut invocation = self.scripts[&call.kind].prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        let started = Instant::now();
        let result = invocation.invoke_async::<String>(&mut conn).await;
        crate::metrics::redis_command(call.kind.name(), started.elapsed());
        Ok(ScriptReply::decode(&result?)?)
    }

    /// The store's clock, for a first estimate of its offset.
    pub async fn time(&self) -> Result<UnixMillis, RedisStoreError> {
        let mut conn = self
            .conn()
            .ok_or_else(|| RedisStoreError::Unavailable("not connected yet".into()))?;
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(UnixMillis(secs * 1000 + micros / 1000))
    }
}
