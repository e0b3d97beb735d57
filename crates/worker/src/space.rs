//! The `Space` Durable Object: one per space, holding that space's sockets
//! through the WebSocket Hibernation API.
//!
//! This is the pipeline probe, not the protocol: it exercises every runtime
//! API the real hub needs (hibernatable accept with tags, attachments, the
//! auto-response and its timestamp, SQL and key-value storage, alarms) with a
//! trivial broadcast behaviour.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    console_error, durable_object, DurableObject, Env, Error, Request, Response, Result,
    SqlStorage, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
    WebSocketRequestResponsePair,
};

use crate::config::EdgeConfig;
use crate::ffi;

/// The text a client sends to renew its lease (PROTOCOL.md section 4).
pub const PING: &str = r#"{"action":"ping"}"#;
/// The runtime's answer to [`PING`], sent without waking the object.
pub const PONG: &str = r#"{"pong":true}"#;
/// A probe-only request for the object's view of the socket.
const STATS: &str = r#"{"action":"stats"}"#;

/// Key-value storage key: how many times `alarm()` has run.
const ALARMS_KEY: &str = "alarms";
/// Key-value storage key: when the pending alarm was scheduled for, ms.
const ALARM_AT_KEY: &str = "alarm_at";

/// Per-socket state kept by the runtime across hibernation
/// (`serializeAttachment`, at most 2 KiB once structured-cloned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The client id (also the socket's hibernation tag).
    pub id: String,
    /// The `identity` query parameter.
    pub identity: String,
    /// When the socket joined, ms since the epoch.
    pub joined_at_ms: i64,
    /// Set when a newer socket took over this id: closing it is no leave.
    #[serde(default)]
    pub replaced: bool,
}

/// The Durable Object class `Space` (binding `SPACES` in `wrangler.toml`).
#[durable_object]
pub struct Space {
    state: State,
    sql: SqlStorage,
    config: EdgeConfig,
    /// When this instance was constructed: a later value for the same
    /// sockets shows that the object hibernated and woke up again.
    born_at_ms: i64,
}

impl DurableObject for Space {
    fn new(state: State, env: Env) -> Self {
        // Runs on first use and again on every wake from hibernation.
        let config = EdgeConfig::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()))
            .unwrap_or_else(|err| {
                console_error!("{err}; using defaults");
                EdgeConfig::default()
            });
        match WebSocketRequestResponsePair::new(PING, PONG) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(err) => console_error!("auto-response not set: {err:?}"),
        }
        let sql = state.storage().sql();
        if let Err(err) = sql.exec(
            "CREATE TABLE IF NOT EXISTS clients (\
               id TEXT PRIMARY KEY, identity TEXT NOT NULL, joined_at INTEGER NOT NULL)",
            None,
        ) {
            console_error!("schema: {err}");
        }
        Self {
            state,
            sql,
            config,
            born_at_ms: now_ms(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        if !crate::is_websocket_upgrade(&req) {
            return Response::error("Upgrade Required", 426);
        }
        let url = req.url()?;
        let query = |key: &str| {
            url.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        let id = query("id").unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let identity = query("identity").unwrap_or_else(|| "anonymous".to_owned());
        let now = now_ms();

        // A socket already holding this id is replaced (close code 4001).
        // Its attachment is marked first so that its close causes no leave.
        for old in self.state.get_websockets_with_tag(&id) {
            if let Some(mut previous) = old.deserialize_attachment::<Attachment>()? {
                previous.replaced = true;
                old.serialize_attachment(&previous)?;
            }
            let _ = old.close(Some(4001), Some("replaced"));
        }

        let pair = WebSocketPair::new()?;
        let server = pair.server;
        self.state.accept_websocket_with_tags(&server, &[&id]);
        let attachment = Attachment {
            id: id.clone(),
            identity: identity.clone(),
            joined_at_ms: now,
            replaced: false,
        };
        server.serialize_attachment(&attachment)?;
        self.sql.exec(
            "INSERT OR REPLACE INTO clients (id, identity, joined_at) VALUES (?, ?, ?)",
            vec![id.as_str().into(), identity.as_str().into(), now.into()],
        )?;
        self.ensure_alarm(now).await?;

        server.send(&json!({
            "id": id,
            "identity": identity,
            "joinedAt": rfc3339_ms(now),
            "sockets": self.state.get_websockets().len(),
        }))?;
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let Some(me) = ws.deserialize_attachment::<Attachment>()? else {
            return Err(Error::RustError("socket without attachment".into()));
        };
        match message {
            WebSocketIncomingMessage::String(text) if text == STATS => {
                ws.send(&self.stats(&ws, &me).await?)?;
            }
            WebSocketIncomingMessage::String(text) => {
                let out = json!({ "from": me.id, "text": text }).to_string();
                for peer in self.state.get_websockets() {
                    let _ = peer.send_with_str(&out);
                }
            }
            WebSocketIncomingMessage::Binary(bytes) => {
                ws.send(&json!({ "binary": bytes.len() }))?;
            }
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake. From compatibility date 2026-04-07
        // (web_socket_auto_reply_to_close) the runtime has already replied
        // and this is a no-op; before it, without this the client waits and
        // then sees 1006. 1005/1006/1015 may not be sent.
        let reply = match code {
            1005 | 1006 | 1015 => 1000,
            code => u16::try_from(code).unwrap_or(1000),
        };
        let _ = ws.close(Some(reply), Some(reason));
        self.leave(&ws)
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        console_error!("websocket error: {error}");
        self.leave(&ws)
    }

    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let fired = now_ms();
        let scheduled: Option<i64> = storage.get(ALARM_AT_KEY).await?;
        let count = storage.get::<u64>(ALARMS_KEY).await?.unwrap_or(0) + 1;
        storage.put(ALARMS_KEY, count).await?;
        storage.delete(ALARM_AT_KEY).await?;
        let note = json!({
            "event": "alarm",
            "count": count,
            "scheduledAt": scheduled,
            "firedAt": fired,
        })
        .to_string();
        let sockets = self.state.get_websockets();
        for ws in &sockets {
            let _ = ws.send_with_str(&note);
        }
        if !sockets.is_empty() {
            self.ensure_alarm(fired).await?;
        }
        Response::ok("alarm")
    }
}

impl Space {
    /// Schedules the next alarm one lease from `now` unless one is pending.
    async fn ensure_alarm(&self, now: i64) -> Result<()> {
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_some() {
            return Ok(());
        }
        let ttl = i64::try_from(self.config.presence_ttl_ms).unwrap_or(i64::MAX);
        let at = now.saturating_add(ttl.max(1));
        let when = DateTime::<Utc>::from_timestamp_millis(at)
            .ok_or_else(|| Error::RustError(format!("alarm time {at} out of range")))?;
        storage.set_alarm(when).await?;
        storage.put(ALARM_AT_KEY, at).await
    }

    /// Forgets a socket that closed or failed and tells the others.
    fn leave(&self, ws: &WebSocket) -> Result<()> {
        let Some(me) = ws.deserialize_attachment::<Attachment>()? else {
            return Ok(());
        };
        if me.replaced {
            return Ok(());
        }
        self.sql.exec(
            "DELETE FROM clients WHERE id = ?",
            vec![me.id.as_str().into()],
        )?;
        let out = json!({ "left": me.id }).to_string();
        for peer in self.state.get_websockets() {
            let other = peer
                .deserialize_attachment::<Attachment>()
                .ok()
                .flatten()
                .is_some_and(|a| a.id != me.id && !a.replaced);
            if other {
                let _ = peer.send_with_str(&out);
            }
        }
        Ok(())
    }

    /// What the object knows about `ws` and its space, for the probe.
    async fn stats(&self, ws: &WebSocket, me: &Attachment) -> Result<serde_json::Value> {
        #[derive(Deserialize)]
        struct Count {
            n: i64,
        }
        let clients = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM clients", None)?
            .one::<Count>()?
            .n;
        let storage = self.state.storage();
        Ok(json!({
            "stats": {
                "attachment": me,
                "tags": self.state.get_tags(ws),
                "space": self.state.id().name(),
                "sockets": self.state.get_websockets().len(),
                "clients": clients,
                "dbBytes": self.sql.database_size(),
                "alarms": storage.get::<u64>(ALARMS_KEY).await?.unwrap_or(0),
                "alarmAt": storage.get_alarm().await?,
                "autoResponseAt": ffi::auto_response_timestamp_ms(&self.state, ws),
                "bornAt": self.born_at_ms,
                "now": now_ms(),
                "config": {
                    "presenceTtlMs": self.config.presence_ttl_ms,
                    "maxMessageBytes": self.config.max_message_bytes,
                    "keepaliveMs": self.config.keepalive_ms,
                },
            }
        }))
    }
}

/// The runtime clock (JavaScript `Date.now()` through chrono's `wasmbind`),
/// ms since the epoch. Inside a Worker it only advances across I/O.
fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `ms` as RFC 3339 UTC with millisecond precision and a `Z` suffix.
fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}
