//! The `Space` Durable Object: one per space, the space's WebSocket hub. It
//! is an adapter: every rule comes from `longhouse_core::Space`; this file
//! moves frames, closes, storage and the alarm between the runtime and it.
//!
//! It must be right after any eviction (hibernation happens after ~10 s
//! idle), so nothing lives only in memory: leases are rows of the object's
//! SQLite storage, and each open socket carries an attachment naming its
//! connection and client. A woken object rebuilds its space from both.
//! Its HTTP API answers are in `space/http.rs`, its webhook POSTs in
//! `space/delivery.rs`.

mod delivery;
mod http;

use std::cell::{RefCell, RefMut};
use std::rc::{Rc, Weak};

use longhouse_core::{
    event_kind, Auth, ClientId, CloseCode, ConnId, Disconnect, Frame, JoinRequest, Output,
    RosterEvent, ServerMessage, Space as CoreSpace, SpaceConfig, Step, UnixMillis, PING_TEXT,
    PONG_TEXT,
};
use serde::{Deserialize, Serialize};
use worker::{
    console_error, console_log, durable_object, DurableObject, Env, Error, Request, Response,
    Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
    WebSocketRequestResponsePair,
};

use crate::config::{ConfigError, EdgeConfig};
use crate::lease_table::LeaseTable;
use crate::outbox_table::OutboxTable;
use crate::sockets::Sockets;
use crate::webhooks::Webhooks;
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
    /// The open sockets, each with its rate bucket and counted ping.
    sockets: Sockets<WebSocket>,
    /// The alarm as last set by this instance (`None`: none pending).
    alarm_at: Option<u64>,
    /// Member events and their delivery, with `WEBHOOK_URL` set.
    webhooks: Option<Webhooks>,
}

/// What the object serves with, from the Worker's vars.
struct Settings {
    edge: EdgeConfig,
    config: SpaceConfig,
    auth: Auth,
}

/// The Durable Object class `Space` (binding `SPACES` in `wrangler.toml`).
/// Its parts are shared (`Rc`) so that work outliving a handler, such as a
/// webhook delivery, can hold them.
#[durable_object]
pub struct Space(Rc<Inner>);

impl DurableObject for Space {
    fn new(state: State, env: Env) -> Self {
        Space(Rc::new_cyclic(|me| Inner::new(state, env, me.clone())))
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        self.0.fetch(req).await
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        self.0.websocket_message(ws, message).await
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        self.0.websocket_close(ws, code, reason, was_clean).await
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        self.0.websocket_error(ws, error).await
    }

    async fn alarm(&self) -> Result<Response> {
        self.0.alarm().await
    }
}

/// What the object is made of.
struct Inner {
    state: State,
    /// The object itself, for work that outlives a handler (a webhook
    /// delivery).
    me: Weak<Inner>,
    leases: LeaseTable,
    outbox: OutboxTable,
    /// An unusable var makes the object refuse to serve, as the Worker does.
    settings: std::result::Result<Settings, ConfigError>,
    live: RefCell<Option<Live>>,
}

impl Inner {
    fn new(state: State, env: Env, me: Weak<Inner>) -> Self {
        // Runs on first use and again on every wake from hibernation.
        let settings = crate::edge_config(&env).map(|edge| Settings {
            config: SpaceConfig {
                ttl_ms: edge.presence_ttl_ms,
                max_message_bytes: edge.max_message_bytes,
                max_state_bytes: edge.max_state_bytes,
                update_interval_ms: edge.update_interval_ms,
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
        let leases = LeaseTable::open(state.storage().sql());
        let outbox = OutboxTable::open(state.storage().sql());
        Self {
            state,
            me,
            leases,
            outbox,
            settings,
            live: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let settings = match &self.settings {
            Ok(settings) => settings,
            Err(error) => return short_lived::misconfigured(&req, error),
        };
        if !crate::is_websocket_upgrade(&req) {
            return self.plain_http(req).await;
        }
        let url = req.url()?;
        let request = match JoinRequest::parse_limited(
            url.path(),
            url.query(),
            &settings.auth,
            now(),
            settings.config.max_state_bytes,
        ) {
            Ok(r) => r,
            // The Worker refuses bad joins before they get here.
            Err(e) => return Response::error(e.to_string(), 400),
        };
        let conn = ConnId(u64::from_le_bytes(
            random_bytes()[..8].try_into().expect("8 bytes"),
        ));
        let now = now();
        let (step, joined) = {
            let mut live = self.live()?;
            let step = self.sweeping(&mut live, now, |live| {
                live.space.join(conn, &request, fresh_client_id, now)
            });
            let joined = live.space.hub().client_of(conn).cloned();
            (step, joined)
        };
        let Some(id) = joined else {
            // Refused by the space (its id is held by another identity, the
            // space is full): told on a standard socket, so that the close
            // completes at once (see `short_lived`).
            let mut step = step;
            let (refusal, others): (Vec<Output>, _) = std::mem::take(&mut step.outputs)
                .into_iter()
                .partition(|output| socket_of(output) == conn);
            step.outputs = others;
            self.carry_out(request.space.as_str(), step).await?;
            return short_lived::refusal(&refusal);
        };
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server.serialize_attachment(&Attachment {
            conn: conn.0.to_string(),
            id: id.to_string(),
            closed: false,
        })?;
        self.live()?.sockets.insert(conn, pair.server, now.0);
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
        if let Err(error) = &self.settings {
            // Only a socket accepted before the vars went bad can get here:
            // tell it why, as the Worker tells new joins.
            let _ = ws.send_with_str(ServerMessage::Error(error.public_message()).encode());
            close(&ws, conn, CloseCode::InternalError);
            return Ok(());
        }
        let step = {
            let mut live = self.live()?;
            let now = now();
            self.sweeping(&mut live, now, |live| {
                let within_rate = live.sockets.within_rate(conn, now.0);
                match &message {
                    _ if !within_rate => live.space.frame(conn, Frame::RateLimited, now),
                    // The runtime decodes text frames with replacement: a U+FFFD
                    // is the only trace a non-UTF-8 frame leaves (see README).
                    WebSocketIncomingMessage::String(text) if text.contains('\u{FFFD}') => {
                        live.space.frame(conn, Frame::InvalidUtf8, now)
                    }
                    WebSocketIncomingMessage::String(text) => {
                        live.space.frame(conn, Frame::Text(text.as_bytes()), now)
                    }
                    WebSocketIncomingMessage::Binary(_) => {
                        live.space.frame(conn, Frame::Binary, now)
                    }
                }
            })
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
            let now = now();
            // An alarm for an expiry reads the sockets due within half a
            // lease, not only the due ones: sockets that keep auto-pinging
            // are then renewed together and an idle space wakes about once
            // per half lease, not once per socket. Any other alarm (a held
            // update due) reads only the due ones, as a message does, so
            // that frequent flushes cost no reads of idle sockets.
            let expiry_due = live
                .space
                .roster()
                .next_expiry()
                .is_some_and(|at| at <= now);
            let by = if expiry_due {
                now.plus(live.space.config().ttl_ms / 2)
            } else {
                now
            };
            self.sweeping(&mut live, by, |live| live.space.tick(now))
        };
        self.carry_out(&self.space_name(), step).await?;
        Response::ok("swept")
    }
}

impl Inner {
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
        let mut space = CoreSpace::restore(settings.config, self.leases.load()?)
            .with_max_clients(settings.edge.max_clients());
        let mut sockets = Sockets::new(settings.edge.message_rate, settings.edge.message_burst);
        let now = now();
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
            sockets.insert(conn, ws, now.0);
        }
        let webhooks = match &settings.edge.webhook {
            Some(webhook) => Some(Webhooks::restore(
                webhook,
                space.roster(),
                &self.outbox,
                now,
            )?),
            None => None,
        };
        Ok(Live {
            space,
            sockets,
            // Unknown after a wake: the next carry-out sets it again.
            alarm_at: None,
            webhooks,
        })
    }

    /// Every input that sweeps goes through here. First the sockets whose
    /// leases are due by `by` renew as of the last ping the runtime
    /// answered for them (while the object slept or not), if it was not
    /// counted yet; then `input` runs. So no sweep expires a socket that
    /// kept pinging, whichever input runs it, and the runtime is asked about
    /// those sockets only: a message costs its sender and recipients, not a
    /// read of every socket in the space.
    fn sweeping(
        &self,
        live: &mut Live,
        by: UnixMillis,
        input: impl FnOnce(&mut Live) -> Step,
    ) -> Step {
        let mut step = Step::default();
        for conn in live.space.holders_due_by(by) {
            if let Some(at) = live
                .sockets
                .uncounted_ping(conn, |ws| auto_ping(&self.state, ws))
            {
                merge(&mut step, live.space.renew_at(conn, UnixMillis(at)));
            }
        }
        merge(&mut step, input(live));
        step
    }

    async fn socket_ended(&self, ws: &WebSocket, how: Disconnect) -> Result<()> {
        let Some(conn) = open_conn(ws).filter(|_| self.settings.is_ok()) else {
            return Ok(());
        };
        let step = {
            let mut live = self.live()?;
            let now = now();
            // A lost connection keeps its lease: its last auto-answered ping
            // must count before the socket is forgotten.
            let mut step = match live
                .sockets
                .uncounted_ping(conn, |ws| auto_ping(&self.state, ws))
            {
                Some(at) => live.space.renew_at(conn, UnixMillis(at)),
                None => Step::default(),
            };
            live.sockets.remove(conn);
            let closed = self.sweeping(&mut live, now, |live| live.space.closed(conn, how, now));
            merge(&mut step, closed);
            step
        };
        self.carry_out(&self.space_name(), step).await
    }

    /// Does what a step says: sends, closes, writes the changed leases, logs
    /// the events, and keeps the alarm at the earliest expiry.
    async fn carry_out(&self, space: &str, step: Step) -> Result<()> {
        let mut attempts = Vec::new();
        let alarm = {
            let mut live = self.live()?;
            for output in &step.outputs {
                match output {
                    Output::Send { conn, text } => {
                        if let Some(ws) = live.sockets.get(*conn) {
                            let _ = ws.send_with_str(text);
                        }
                    }
                    Output::Close { conn, code } => {
                        // Forgets the socket's bucket and counted ping too.
                        if let Some(ws) = live.sockets.remove(*conn) {
                            close(&ws, *conn, *code);
                        }
                    }
                }
            }
            self.leases.persist(&live.space, &step)?;
            // Joins and leaves are logged; updates are not, since a cursor
            // storm would make a log line per update.
            for event in &step.events {
                if matches!(event.event, RosterEvent::Updated { .. }) {
                    continue;
                }
                let client = event.event.client();
                console_log!(
                    "{}",
                    log_line(space, event_kind(&event.event), client.id.as_str())
                );
            }
            let now = now();
            let mut next = live.space.next_deadline();
            if let Some(webhooks) = live.webhooks.as_mut() {
                webhooks.observe(space, &step.events, &self.outbox, now)?;
                attempts = webhooks.poll(&self.outbox, now)?;
                next = earliest(next, webhooks.next_deadline());
            }
            let next = next.map(|t| t.0);
            (next != live.alarm_at).then(|| {
                live.alarm_at = next;
                next
            })
        };
        self.deliver(attempts);
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

    fn space_name(&self) -> String {
        self.state.id().name().unwrap_or_default()
    }
}

/// The socket an output is for.
fn socket_of(output: &Output) -> ConnId {
    match output {
        Output::Send { conn, .. } | Output::Close { conn, .. } => *conn,
    }
}

/// When the runtime last answered an exact ping on `ws`, in ms since the
/// epoch.
fn auto_ping(state: &State, ws: &WebSocket) -> Option<u64> {
    u64::try_from(ffi::auto_response_timestamp_ms(state, ws)?).ok()
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

/// The earlier of two deadlines, if any.
fn earliest(a: Option<UnixMillis>, b: Option<UnixMillis>) -> Option<UnixMillis> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
