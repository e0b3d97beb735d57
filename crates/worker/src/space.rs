//! The `Space` Durable Object: one per space, the space's WebSocket hub. It
//! is an adapter: every rule comes from `longhouse_core::Space`; this file
//! moves frames, closes, storage and the alarm between the runtime and it.
//!
//! It must be right after any eviction (hibernation happens after ~10 s
//! idle), so nothing lives only in memory: leases are rows of the object's
//! SQLite storage, and each open socket carries an attachment naming its
//! connection and client. A woken object rebuilds its space from both.

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeSet, HashMap};

use longhouse_core::{
    event_kind, Auth, ClientId, ClientInfo, CloseCode, ConnId, Disconnect, Frame, JoinRequest,
    Lease, Output, Roster, ServerMessage, Space as CoreSpace, SpaceConfig, Step, TokenBucket,
    UnixMillis, PING_TEXT, PONG_TEXT,
};
use serde::{Deserialize, Serialize};
use worker::{
    console_error, console_log, durable_object, DurableObject, Env, Error, Request, Response,
    Result, SqlStorage, SqlStorageValue, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
    WebSocketRequestResponsePair,
};

use crate::config::{ConfigError, EdgeConfig};
use crate::{ffi, now, short_lived};

/// What each socket carries across hibernation (`serializeAttachment`,
/// limited to 2 KiB: this is under 120 bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    /// The connection id, as decimal text (a JavaScript number would lose
    /// the low bits of a u64).
    conn: String,
    /// The client id it was welcomed with.
    id: String,
    /// Set before the object closes the socket itself (4000, 4001, 1008…):
    /// its close report then changes nothing.
    closed: bool,
}

impl Attachment {
    fn conn(&self) -> Option<ConnId> {
        self.conn.parse().ok().map(ConnId)
    }
}

/// The in-memory half, rebuilt after every wake.
struct Live {
    space: CoreSpace,
    sockets: HashMap<ConnId, WebSocket>,
    /// The last auto-response time already counted as a renewal, per socket.
    auto_pings: HashMap<ConnId, u64>,
    /// Each socket's message rate (in memory: a wake refills it).
    buckets: HashMap<ConnId, TokenBucket>,
    /// The alarm as last set by this instance (`None`: none pending).
    alarm_at: Option<u64>,
}

/// What the object serves with, from the Worker's vars.
struct Settings {
    edge: EdgeConfig,
    config: SpaceConfig,
    auth: Auth,
}

/// The Durable Object class `Space` (binding `SPACES` in `wrangler.toml`).
#[durable_object]
pub struct Space {
    state: State,
    sql: SqlStorage,
    /// An unusable var makes the object refuse to serve, as the Worker does.
    settings: std::result::Result<Settings, ConfigError>,
    live: RefCell<Option<Live>>,
}

impl DurableObject for Space {
    fn new(state: State, env: Env) -> Self {
        // Runs on first use and again on every wake from hibernation.
        let settings = crate::edge_config(&env).map(|edge| Settings {
            config: SpaceConfig {
                ttl_ms: edge.presence_ttl_ms,
                max_message_bytes: edge.max_message_bytes,
            },
            auth: crate::auth(&edge),
            edge,
        });
        // Exact pings are answered by the runtime without waking the object;
        // their timestamps count as renewals when it next wakes.
        match WebSocketRequestResponsePair::new(PING_TEXT, PONG_TEXT) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(err) => console_error!("auto-response not set: {err:?}"),
        }
        let sql = state.storage().sql();
        for schema in [
            "CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, identity TEXT NOT NULL, \
             joined_at INTEGER NOT NULL, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ] {
            if let Err(err) = sql.exec(schema, None) {
                console_error!("schema: {err}");
            }
        }
        Self {
            state,
            sql,
            settings,
            live: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let settings = match &self.settings {
            Ok(settings) => settings,
            Err(error) => return short_lived::misconfigured(&req, error),
        };
        let url = req.url()?;
        let request = match JoinRequest::parse_with(url.path(), url.query(), &settings.auth, now())
        {
            Ok(r) => r,
            // The Worker refuses bad joins before they get here.
            Err(e) => return Response::error(e.to_string(), 400),
        };
        let pair = WebSocketPair::new()?;
        let server = pair.server;
        self.state.accept_web_socket(&server);
        let conn = ConnId(u64::from_le_bytes(
            random_bytes()[..8].try_into().expect("8 bytes"),
        ));
        let step = {
            let mut live = self.live()?;
            live.sockets.insert(conn, server.clone());
            let step = live.space.join(conn, &request, fresh_client_id, now());
            let attachment = match live.space.hub().client_of(conn) {
                Some(id) => Attachment {
                    conn: conn.0.to_string(),
                    id: id.to_string(),
                    closed: false,
                },
                None => Attachment {
                    conn: conn.0.to_string(),
                    id: String::new(),
                    closed: true,
                },
            };
            server.serialize_attachment(&attachment)?;
            step
        };
        self.carry_out(request.space.as_str(), step).await?;
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.trace("message");
        let Some(conn) = open_conn(&ws) else {
            return Ok(());
        };
        let settings = match &self.settings {
            Ok(settings) => settings,
            Err(error) => {
                // Only a socket accepted before the vars went bad can get
                // here: tell it why, as the Worker tells new joins.
                let _ = ws.send_with_str(ServerMessage::Error(error.public_message()).encode());
                close(&ws, conn, CloseCode::InternalError);
                return Ok(());
            }
        };
        let step = {
            let mut live = self.live()?;
            let mut step = self.count_auto_pings(&mut live);
            let now = now();
            let (rate, burst) = (settings.edge.message_rate, settings.edge.message_burst);
            let within_rate = live
                .buckets
                .entry(conn)
                .or_insert_with(|| TokenBucket::new(rate, burst, now.0))
                .take(now.0);
            let next = match &message {
                _ if !within_rate => live.space.frame(conn, Frame::RateLimited, now),
                // The runtime decodes text frames with replacement: a U+FFFD
                // is the only trace a non-UTF-8 frame leaves (see README).
                WebSocketIncomingMessage::String(text) if text.contains('\u{FFFD}') => {
                    live.space.frame(conn, Frame::InvalidUtf8, now)
                }
                WebSocketIncomingMessage::String(text) => {
                    live.space.frame(conn, Frame::Text(text.as_bytes()), now)
                }
                WebSocketIncomingMessage::Binary(_) => live.space.frame(conn, Frame::Binary, now),
            };
            merge(&mut step, next);
            step
        };
        self.carry_out(&self.space_name(), step).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        // Complete the closing handshake (a no-op where the runtime already
        // replied itself); 1005, 1006 and 1015 may not be sent.
        let reply = match code {
            1005 | 1006 | 1015 => 1000,
            code => u16::try_from(code).unwrap_or(1000),
        };
        let _ = ws.close(Some(reply), Some(reason));
        // 1006 is what the runtime reports for a connection that dropped
        // without a close frame: the lease runs on.
        let how = if code == 1006 || !was_clean {
            Disconnect::Lost
        } else {
            Disconnect::Clean
        };
        self.socket_ended(&ws, how).await
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        console_log!(
            "{}",
            log_line(&self.space_name(), "socket error", &error.to_string())
        );
        self.socket_ended(&ws, Disconnect::Lost).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.trace("alarm");
        if let Err(error) = &self.settings {
            // Leases wait in storage, unswept, until a deploy with usable
            // vars wakes the object again; nobody can be connected to hear
            // of them meanwhile (every join is refused).
            console_error!(
                "{}",
                log_line(&self.space_name(), "config error", &error.to_string())
            );
            return Response::error(error.public_message(), 500);
        }
        let step = {
            let mut live = self.live()?;
            live.alarm_at = None;
            let mut step = self.count_auto_pings(&mut live);
            merge(&mut step, live.space.tick(now()));
            step
        };
        self.carry_out(&self.space_name(), step).await?;
        Response::ok("swept")
    }
}

impl Space {
    /// The live space, rebuilt from storage and attachments after a wake.
    /// Only the handlers that have checked the settings call it.
    fn live(&self) -> Result<RefMut<'_, Live>> {
        let mut slot = self.live.borrow_mut();
        if slot.is_none() {
            *slot = Some(self.rebuild()?);
        }
        Ok(RefMut::map(slot, |s| s.as_mut().expect("just filled")))
    }

    /// A log line per handler invocation, with `TRACE_HANDLERS=1`.
    fn trace(&self, handler: &str) {
        if self
            .settings
            .as_ref()
            .is_ok_and(|settings| settings.edge.trace_handlers)
        {
            console_log!("{}", log_line(&self.space_name(), handler, ""));
        }
    }

    fn rebuild(&self) -> Result<Live> {
        self.trace("rebuild");
        let settings = self
            .settings
            .as_ref()
            .map_err(|error| Error::RustError(error.to_string()))?;
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
                client: ClientInfo {
                    id: ClientId::parse(&r.id).ok()?,
                    identity: r.identity,
                    joined_at: millis(r.joined_at),
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
        let mut space = CoreSpace::restore(settings.config, Roster::restore(leases, seq))
            .with_max_clients(settings.edge.max_clients());
        let mut sockets = HashMap::new();
        for ws in self.state.get_websockets() {
            let Some(attachment) = ws.deserialize_attachment::<Attachment>().ok().flatten() else {
                continue;
            };
            if attachment.closed {
                continue;
            }
            let (Some(conn), Ok(id)) = (attachment.conn(), ClientId::parse(&attachment.id)) else {
                continue;
            };
            space.reattach(conn, id);
            sockets.insert(conn, ws);
        }
        Ok(Live {
            space,
            sockets,
            auto_pings: HashMap::new(),
            buckets: HashMap::new(),
            // Unknown after a wake: the next carry-out sets it again.
            alarm_at: None,
        })
    }

    /// Pings the runtime answered while the object slept renew their leases
    /// as of when they were answered.
    fn count_auto_pings(&self, live: &mut Live) -> Step {
        let mut step = Step::default();
        let answered: Vec<(ConnId, u64)> = live
            .sockets
            .iter()
            .filter_map(|(conn, ws)| Some((*conn, auto_ping(&self.state, live, *conn, ws)?)))
            .collect();
        for (conn, at) in answered {
            live.auto_pings.insert(conn, at);
            merge(&mut step, live.space.renew_at(conn, UnixMillis(at)));
        }
        step
    }

    async fn socket_ended(&self, ws: &WebSocket, how: Disconnect) -> Result<()> {
        let Some(conn) = open_conn(ws).filter(|_| self.settings.is_ok()) else {
            return Ok(());
        };
        let step = {
            let mut live = self.live()?;
            // A lost connection keeps its lease: its last auto-answered ping
            // must count before the socket is forgotten.
            if let Some(at) = auto_ping(&self.state, &live, conn, ws) {
                let renewed = live.space.renew_at(conn, UnixMillis(at));
                self.persist(&live, &renewed)?;
            }
            live.sockets.remove(&conn);
            live.auto_pings.remove(&conn);
            live.buckets.remove(&conn);
            live.space.closed(conn, how, now())
        };
        self.carry_out(&self.space_name(), step).await
    }

    /// Does what a step says: sends, closes, writes the changed leases, logs
    /// the events, and keeps the alarm at the earliest expiry.
    async fn carry_out(&self, space: &str, step: Step) -> Result<()> {
        let alarm = {
            let mut live = self.live()?;
            for output in &step.outputs {
                match output {
                    Output::Send { conn, text } => {
                        if let Some(ws) = live.sockets.get(conn) {
                            let _ = ws.send_with_str(text);
                        }
                    }
                    Output::Close { conn, code } => {
                        if let Some(ws) = live.sockets.remove(conn) {
                            close(&ws, *conn, *code);
                        }
                    }
                }
            }
            self.persist(&live, &step)?;
            for event in &step.events {
                let client = event.event.client();
                console_log!(
                    "{}",
                    log_line(space, event_kind(&event.event), client.id.as_str())
                );
            }
            let next = live.space.next_deadline().map(|t| t.0);
            (next != live.alarm_at).then(|| {
                live.alarm_at = next;
                next
            })
        };
        if let Some(next) = alarm {
            let storage = self.state.storage();
            match next {
                Some(at) => {
                    let offset = i64::try_from(at).unwrap_or(i64::MAX) - now_ms_i64();
                    storage.set_alarm(offset.max(0)).await?;
                }
                None => storage.delete_alarm().await?,
            }
        }
        Ok(())
    }

    /// Writes every lease the step touched as it now stands.
    fn persist(&self, live: &Live, step: &Step) -> Result<()> {
        let touched: BTreeSet<&ClientId> = step
            .events
            .iter()
            .map(|e| &e.event.client().id)
            .chain(&step.renewed)
            .collect();
        for id in touched {
            match live.space.roster().get(id) {
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
                vec![number(live.space.roster().seq())],
            )?;
        }
        Ok(())
    }

    fn space_name(&self) -> String {
        self.state.id().name().unwrap_or_default()
    }
}

/// When the runtime last answered an exact ping on `ws`, if that answer has
/// not been counted as a renewal yet.
fn auto_ping(state: &State, live: &Live, conn: ConnId, ws: &WebSocket) -> Option<u64> {
    let at = u64::try_from(ffi::auto_response_timestamp_ms(state, ws)?).ok()?;
    (live.auto_pings.get(&conn) != Some(&at)).then_some(at)
}

/// The connection of a socket the object has not closed itself.
fn open_conn(ws: &WebSocket) -> Option<ConnId> {
    let attachment = ws.deserialize_attachment::<Attachment>().ok().flatten()?;
    if attachment.closed {
        return None;
    }
    attachment.conn()
}

/// Marks a socket as closed by the object, then closes it.
fn close(ws: &WebSocket, conn: ConnId, code: CloseCode) {
    let attachment = Attachment {
        conn: conn.0.to_string(),
        id: ws
            .deserialize_attachment::<Attachment>()
            .ok()
            .flatten()
            .map(|a| a.id)
            .unwrap_or_default(),
        closed: true,
    };
    let _ = ws.serialize_attachment(&attachment);
    let _ = ws.close(Some(code.code()), Some(code.reason()));
}

fn merge(into: &mut Step, from: Step) {
    into.outputs.extend(from.outputs);
    into.events.extend(from.events);
    into.renewed.extend(from.renewed);
}

/// One structured log line, as JSON so `wrangler tail` output can be parsed.
fn log_line(space: &str, event: &str, client: &str) -> String {
    serde_json::json!({ "space": space, "event": event, "client": client }).to_string()
}

fn fresh_client_id() -> ClientId {
    ClientId::from_random_bytes(random_bytes())
}

fn random_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

fn now_ms_i64() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
