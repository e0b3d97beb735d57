//! The Redis store: the roster of every space lives in Redis (one atomic Lua
//! script per change, see `longhouse_core::shared_store`), each process
//! keeps a core `Hub` per space it has sockets in, fed by the space's
//! sharded pub/sub channel, so any number of instances serve one space.
//!
//! One background task (the link) owns the two Redis connections: one for
//! scripts, one RESP3 connection for subscriptions whose pushes arrive on a
//! channel. It reconnects with backoff, re-subscribes, resynchronises every
//! hub (re-asserting this instance's leases if Redis lost them) and keeps
//! the health that `GET /health` reports. A sweeper wakes each space at its
//! next expiry and resynchronises hubs that stay behind a gap.

mod inspect;

use inspect::script_name;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use longhouse_core::shared_store::{
    LeaseRecord, PublishMode, ScriptCall, ScriptKind, ScriptReply, ScriptStatus, SpaceCalls,
    SpaceKeys,
};
use longhouse_core::{
    event_kind, ClientId, CloseCode, Command, ConnId, Disconnect, Frame, Hub, JoinError,
    JoinRequest, Output, RosterEvent, Sequenced, ServerMessage, SpaceConfig, SpaceName, UnixMillis,
};
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo,
    PushKind,
};
use thiserror::Error;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

use crate::clock::now;
use crate::ids::fresh_client_id;
use crate::outbox::{Outbound, Outbox};

/// How long a hub may wait behind a gap before it resynchronises.
const GAP_PATIENCE: Duration = Duration::from_millis(200);
/// How often the sweeper looks at the spaces.
const SWEEP_TICK: Duration = Duration::from_millis(50);
/// Reconnect backoff: first retry, and the longest wait between retries.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Limits on one Redis exchange, so a dead server fails a join quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a join waits for its space's subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);

/// What a join that Redis could not serve is told before its 1011 close.
const UNAVAILABLE_TEXT: &str = "Presence store unavailable, try again shortly";

/// Why a Redis operation failed.
#[derive(Debug, Error)]
pub enum RedisStoreError {
    /// Not connected right now (the link is reconnecting).
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// The server or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A script answered something this version cannot read.
    #[error(transparent)]
    Codec(#[from] longhouse_core::shared_store::CodecError),
    /// The space's subscription was not confirmed in time.
    #[error("subscription to {0} not confirmed")]
    Subscribe(String),
}

/// One space's local side: its hub, the sockets' outboxes and the
/// bookkeeping for sweeps and resyncs.
struct Local {
    hub: Hub,
    outboxes: HashMap<ConnId, Outbox>,
    /// Initialised from a snapshot (the first join's reply).
    ready: bool,
    /// Joins in flight: the space must not be dropped under them.
    pending: usize,
    gap_since: Option<Instant>,
    next_sweep: Option<UnixMillis>,
    sweeping: bool,
    resyncing: bool,
}

struct SpaceEntry {
    name: SpaceName,
    keys: SpaceKeys,
    local: Mutex<Local>,
    /// `Some(Ok)` once the channel subscription is confirmed.
    subscribed: watch::Receiver<Option<Result<(), String>>>,
}

#[derive(Default)]
struct Spaces {
    by_name: HashMap<SpaceName, Arc<SpaceEntry>>,
    by_channel: HashMap<String, Arc<SpaceEntry>>,
}

enum LinkRequest {
    Subscribe(String, watch::Sender<Option<Result<(), String>>>),
    Unsubscribe(String),
}

/// Presence shared through Redis by every instance configured with it.
pub struct RedisStore {
    config: SpaceConfig,
    /// `MAX_CLIENTS_PER_SPACE`, enforced by the join script.
    max_clients: Option<usize>,
    info: ConnectionInfo,
    client: Client,
    cmd: Mutex<Option<Conn>>,
    spaces: Mutex<Spaces>,
    link: mpsc::UnboundedSender<LinkRequest>,
    /// A command failed in a way that suggests the connection is gone.
    broken: Notify,
    health: Mutex<Result<(), String>>,
    sharded: AtomicBool,
    stopping: AtomicBool,
    scripts: HashMap<ScriptKind, redis::Script>,
}

impl RedisStore {
    /// A store for `url` with its link and sweeper tasks running; it
    /// connects in the background (health is 503 until it has).
    pub fn start(
        config: SpaceConfig,
        max_clients: Option<usize>,
        url: &str,
    ) -> Result<Arc<Self>, RedisStoreError> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = Client::open(info.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let scripts = [
            ScriptKind::Join,
            ScriptKind::Renew,
            ScriptKind::Leave,
            ScriptKind::Sweep,
            ScriptKind::Resync,
        ]
        .into_iter()
        .map(|k| (k, redis::Script::new(k.source())))
        .collect();
        let store = Arc::new(RedisStore {
            config,
            max_clients,
            info,
            client,
            cmd: Mutex::new(None),
            spaces: Mutex::new(Spaces::default()),
            link: tx,
            broken: Notify::new(),
            health: Mutex::new(Err("connecting to redis".into())),
            sharded: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            scripts,
        });
        tokio::spawn(link(Arc::downgrade(&store), rx));
        tokio::spawn(sweeper(Arc::downgrade(&store)));
        Ok(store)
    }

    fn mode(&self) -> PublishMode {
        if self.sharded.load(Ordering::Relaxed) {
            PublishMode::Sharded
        } else {
            PublishMode::Classic
        }
    }

    fn calls(&self, name: &SpaceName) -> SpaceCalls {
        SpaceCalls::new(name, self.mode(), self.config.ttl_ms).with_max_clients(self.max_clients)
    }

    pub(super) fn health(&self) -> Result<(), String> {
        self.health.lock().expect("health lock").clone()
    }

    /// Runs one script call: one EVALSHA (the scripts are loaded on every
    /// connect; a NOSCRIPT after a server restart loads and retries).
    async fn run(&self, call: ScriptCall) -> Result<ScriptReply, RedisStoreError> {
        let mut conn =
            self.cmd.lock().expect("cmd lock").clone().ok_or_else(|| {
                RedisStoreError::Unavailable(self.health().err().unwrap_or_default())
            })?;
        let script = &self.scripts[&call.kind];
        let mut invocation = script.prepare_invoke();
        for key in &call.keys {
            invocation.key(key);
        }
        for arg in &call.args {
            invocation.arg(arg);
        }
        let started = std::time::Instant::now();
        let result = invocation.invoke_async(&mut conn).await;
        crate::metrics::redis_command(script_name(call.kind), started.elapsed());
        let text: String = match result {
            Ok(t) => t,
            Err(e) => {
                if e.is_io_error() || e.is_unrecoverable_error() || e.is_timeout() {
                    self.broken.notify_one();
                }
                return Err(e.into());
            }
        };
        Ok(ScriptReply::decode(&text)?)
    }

    pub(super) async fn join(&self, conn: ConnId, request: &JoinRequest, outbox: Outbox) {
        if self.stopping.load(Ordering::SeqCst) {
            let _ = outbox.send(Outbound::Close(CloseCode::ServiceRestart));
            return;
        }
        if let Err(why) = self.health() {
            debug!(conn = %conn, reason = %why, "join refused: redis unavailable");
            let _ = outbox.send(Outbound::Text(
                ServerMessage::Error(UNAVAILABLE_TEXT.into()).encode(),
            ));
            let _ = outbox.send(Outbound::Close(CloseCode::InternalError));
            return;
        }
        let name = &request.space;
        let id = request.id.clone().unwrap_or_else(fresh_client_id);
        let entry = self.entry_for(name);
        let want_snapshot = {
            let mut local = entry.local.lock().expect("space lock");
            local.outboxes.insert(conn, outbox);
            local.hub.open(conn, id.clone());
            !local.ready
        };
        let result = match self.wait_subscribed(&entry).await {
            Ok(()) => {
                let call =
                    self.calls(name)
                        .join(&request.identity, &id, conn, now(), want_snapshot);
                self.run(call).await
            }
            Err(e) => Err(e),
        };
        {
            let mut local = entry.local.lock().expect("space lock");
            local.pending -= 1;
            let mut out = Vec::new();
            match result {
                Ok(reply) => {
                    log_events(name, &reply.events);
                    if reply.status == ScriptStatus::Refused {
                        local
                            .hub
                            .refuse(conn, &JoinError::IdHeldByAnother, &mut out);
                    } else if reply.status == ScriptStatus::Full {
                        debug!(space = name.as_str(), conn = %conn, "join refused: space is full");
                        local.hub.refuse(conn, &JoinError::SpaceFull, &mut out);
                    } else if let Some(last) = reply.events.last() {
                        // Where the join landed: a later snapshot without
                        // this socket's lease then closes it, not strands it.
                        local.hub.confirm(conn, last.seq);
                    }
                    absorb(&mut local, reply, &mut out);
                }
                Err(e) => {
                    warn!(space = name.as_str(), conn = %conn, error = %e, "join failed");
                    out.push(Output::Send {
                        conn,
                        text: ServerMessage::Error(UNAVAILABLE_TEXT.into()).encode(),
                    });
                    local.hub.evict(conn, CloseCode::InternalError, &mut out);
                }
            }
            deliver(&mut local, out);
        }
        self.maybe_drop(&entry);
    }

    pub(super) async fn frame(&self, name: &SpaceName, conn: ConnId, frame: Frame<'_>) {
        let Some(entry) = self.entry(name) else {
            return;
        };
        let command = {
            let mut local = entry.local.lock().expect("space lock");
            let mut out = Vec::new();
            let command = local.hub.frame(conn, frame, &mut out);
            deliver(&mut local, out);
            command
        };
        if let Some(command) = command {
            self.execute(&entry, command).await;
        }
        self.maybe_drop(&entry);
    }

    pub(super) async fn closed(&self, name: &SpaceName, conn: ConnId, how: Disconnect) {
        let Some(entry) = self.entry(name) else {
            return;
        };
        let command = {
            let mut local = entry.local.lock().expect("space lock");
            let command = local.hub.closed(conn, how);
            local.outboxes.remove(&conn);
            command
        };
        if let Some(command) = command {
            self.execute(&entry, command).await;
        }
        self.maybe_drop(&entry);
    }

    pub(super) fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let entries: Vec<Arc<SpaceEntry>> = self
            .spaces
            .lock()
            .expect("spaces lock")
            .by_name
            .values()
            .cloned()
            .collect();
        for entry in entries {
            let mut local = entry.local.lock().expect("space lock");
            let mut out = Vec::new();
            local.hub.shutdown(&mut out);
            deliver(&mut local, out);
        }
    }

    async fn execute(&self, entry: &SpaceEntry, command: Command) {
        let calls = self.calls(&entry.name);
        let call = match &command {
            Command::Renew { id, holder } => calls.renew(id, *holder, now()),
            Command::Leave { id, holder } => calls.leave(id, *holder, now()),
        };
        match self.run(call).await {
            Ok(reply) => {
                log_events(&entry.name, &reply.events);
                let mut local = entry.local.lock().expect("space lock");
                let mut out = Vec::new();
                absorb(&mut local, reply, &mut out);
                deliver(&mut local, out);
            }
            // The outage itself is logged once by the link.
            Err(e) => debug!(space = entry.name.as_str(), error = %e, ?command, "command failed"),
        }
    }

    /// The space's entry, created (and its subscription asked for) if this
    /// is its first socket. Counts the join as pending.
    fn entry_for(&self, name: &SpaceName) -> Arc<SpaceEntry> {
        let mut spaces = self.spaces.lock().expect("spaces lock");
        let entry = match spaces.by_name.get(name) {
            Some(e) => e.clone(),
            None => {
                let keys = SpaceKeys::new(name);
                let (tx, rx) = watch::channel(None);
                let entry = Arc::new(SpaceEntry {
                    name: name.clone(),
                    keys: keys.clone(),
                    local: Mutex::new(Local {
                        hub: Hub::new(self.config.max_message_bytes, 0),
                        outboxes: HashMap::new(),
                        ready: false,
                        pending: 0,
                        gap_since: None,
                        next_sweep: None,
                        sweeping: false,
                        resyncing: false,
                    }),
                    subscribed: rx,
                });
                // Asked under the map lock, so it is ordered after the
                // unsubscribe of a previous entry for the same space.
                let _ = self
                    .link
                    .send(LinkRequest::Subscribe(keys.channel.clone(), tx));
                spaces.by_name.insert(name.clone(), entry.clone());
                spaces.by_channel.insert(keys.channel, entry.clone());
                entry
            }
        };
        entry.local.lock().expect("space lock").pending += 1;
        entry
    }

    fn entry(&self, name: &SpaceName) -> Option<Arc<SpaceEntry>> {
        self.spaces
            .lock()
            .expect("spaces lock")
            .by_name
            .get(name)
            .cloned()
    }

    async fn wait_subscribed(&self, entry: &SpaceEntry) -> Result<(), RedisStoreError> {
        let mut rx = entry.subscribed.clone();
        let waited = tokio::time::timeout(SUBSCRIBE_WAIT, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(state)) => match state.as_ref() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(RedisStoreError::Unavailable(e.clone())),
                None => Err(RedisStoreError::Subscribe(entry.keys.channel.clone())),
            },
            _ => Err(RedisStoreError::Subscribe(entry.keys.channel.clone())),
        }
    }

    /// Drops a space that has no sockets and no joins in flight, and ends
    /// its subscription.
    fn maybe_drop(&self, entry: &Arc<SpaceEntry>) {
        let mut spaces = self.spaces.lock().expect("spaces lock");
        let idle = {
            let local = entry.local.lock().expect("space lock");
            local.hub.is_empty() && local.pending == 0
        };
        let current = spaces
            .by_name
            .get(&entry.name)
            .is_some_and(|e| Arc::ptr_eq(e, entry));
        if idle && current {
            spaces.by_name.remove(&entry.name);
            spaces.by_channel.remove(&entry.keys.channel);
            let _ = self
                .link
                .send(LinkRequest::Unsubscribe(entry.keys.channel.clone()));
        }
    }

    /// An event from the subscription.
    fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(entry) = self
            .spaces
            .lock()
            .expect("spaces lock")
            .by_channel
            .get(channel)
            .cloned()
        else {
            return;
        };
        let event = match std::str::from_utf8(payload)
            .map_err(|e| e.to_string())
            .and_then(|t| longhouse_core::shared_store::decode_event(t).map_err(|e| e.to_string()))
        {
            Ok(e) => e,
            Err(e) => {
                warn!(channel, error = %e, "undecodable event ignored");
                return;
            }
        };
        let mut local = entry.local.lock().expect("space lock");
        if matches!(
            event.event,
            RosterEvent::Joined { .. } | RosterEvent::Resumed { .. }
        ) {
            // A lease that started just now runs out a TTL from now.
            let expiry = now().plus(self.config.ttl_ms);
            local.next_sweep = Some(local.next_sweep.map_or(expiry, |s| s.min(expiry)));
        }
        let mut out = Vec::new();
        local.hub.apply(event, &mut out);
        note_gap(&mut local);
        deliver(&mut local, out);
    }

    /// Brings one hub to Redis's roster (re-asserting its leases if Redis
    /// lost them).
    async fn resync(&self, entry: &SpaceEntry) -> Result<(), RedisStoreError> {
        let (applied, known) = {
            let mut local = entry.local.lock().expect("space lock");
            if !local.ready || local.resyncing {
                return Ok(());
            }
            local.resyncing = true;
            let mine: HashMap<ClientId, ConnId> = local
                .hub
                .conns()
                .map(|(conn, id)| (id.clone(), conn))
                .collect();
            let known: Vec<LeaseRecord> = local
                .hub
                .view()
                .into_iter()
                .map(|client| LeaseRecord {
                    holder: mine.get(&client.id).copied().unwrap_or(ConnId(0)),
                    client,
                })
                .collect();
            (local.hub.applied(), known)
        };
        let result = self
            .run(self.calls(&entry.name).resync(applied, &known, now()))
            .await;
        let mut local = entry.local.lock().expect("space lock");
        local.resyncing = false;
        let reply = result?;
        if reply.status == ScriptStatus::Restored {
            info!(
                space = entry.name.as_str(),
                leases = known.len(),
                seq = applied,
                "redis had lost this space: leases re-asserted"
            );
        }
        log_events(&entry.name, &reply.events);
        let mut out = Vec::new();
        absorb(&mut local, reply, &mut out);
        deliver(&mut local, out);
        Ok(())
    }

    async fn sweep(&self, entry: &SpaceEntry) {
        let result = self.run(self.calls(&entry.name).sweep(now())).await;
        let mut local = entry.local.lock().expect("space lock");
        local.sweeping = false;
        match result {
            Ok(reply) => {
                log_events(&entry.name, &reply.events);
                let mut out = Vec::new();
                absorb(&mut local, reply, &mut out);
                deliver(&mut local, out);
            }
            Err(e) => {
                debug!(space = entry.name.as_str(), error = %e, "sweep failed");
                // Try again soon.
                local.next_sweep = Some(now().plus(250));
            }
        }
    }

    fn entries(&self) -> Vec<Arc<SpaceEntry>> {
        self.spaces
            .lock()
            .expect("spaces lock")
            .by_name
            .values()
            .cloned()
            .collect()
    }

    fn set_health(&self, health: Result<(), String>) {
        *self.health.lock().expect("health lock") = health;
    }
}

/// Applies a script's reply to a hub: its snapshot (if newer than what the
/// hub has), then its events, and the next sweep time.
fn absorb(local: &mut Local, reply: ScriptReply, out: &mut Vec<Output>) {
    if let Some(snapshot) = reply.snapshot {
        // The hub ignores a snapshot older than what it applied (a new hub
        // can be ahead of it when the space's history arrived first).
        local.hub.resync(snapshot.leases, snapshot.seq, out);
        local.ready = true;
    }
    for event in reply.events {
        local.hub.apply(event, out);
    }
    // Keep the earlier of the two: an event applied meanwhile may know of a
    // lease the reply's moment did not. A stale early time costs one sweep
    // that finds nothing (the sweeper clears it when it sweeps).
    local.next_sweep = match (local.next_sweep, reply.next_expiry) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    note_gap(local);
}

fn note_gap(local: &mut Local) {
    if !local.hub.has_gap() {
        local.gap_since = None;
    } else if local.gap_since.is_none() {
        local.gap_since = Some(Instant::now());
    }
}

/// Carries out a hub's outputs on the sockets' outboxes.
fn deliver(local: &mut Local, out: Vec<Output>) {
    for output in out {
        match output {
            Output::Send { conn, text } => {
                if let Some(outbox) = local.outboxes.get(&conn) {
                    let _ = outbox.send(Outbound::Text(text));
                }
            }
            Output::Close { conn, code } => {
                if let Some(outbox) = local.outboxes.remove(&conn) {
                    let _ = outbox.send(Outbound::Close(code));
                }
            }
        }
    }
    if local.outboxes.len() > local.hub.len() {
        let hub = &local.hub;
        local
            .outboxes
            .retain(|conn, _| hub.client_of(*conn).is_some());
    }
}

/// One line per roster change, logged by the instance whose script made it.
fn log_events(space: &SpaceName, events: &[Sequenced]) {
    for event in events {
        crate::metrics::presence_event(&event.event);
        let client = event.event.client();
        info!(
            space = space.as_str(),
            client = client.id.as_str(),
            identity = client.identity.as_str(),
            event = event_kind(&event.event),
            seq = event.seq,
            "presence"
        );
    }
}

/// Wakes spaces at their next expiry, and resynchronises hubs that stay
/// behind a gap.
async fn sweeper(store: std::sync::Weak<RedisStore>) {
    let mut tick = tokio::time::interval(SWEEP_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        if store.health().is_err() {
            continue;
        }
        let current = now();
        for entry in store.entries() {
            let (sweep, resync) = {
                let mut local = entry.local.lock().expect("space lock");
                let sweep = local.ready
                    && !local.sweeping
                    && local.next_sweep.is_some_and(|at| at <= current);
                if sweep {
                    local.sweeping = true;
                    local.next_sweep = None;
                }
                let resync = local.ready
                    && !local.resyncing
                    && local.gap_since.is_some_and(|t| t.elapsed() >= GAP_PATIENCE);
                (sweep, resync)
            };
            if sweep {
                let store = store.clone();
                let entry = entry.clone();
                tokio::spawn(async move { store.sweep(&entry).await });
            }
            if resync {
                let store = store.clone();
                let entry = entry.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.resync(&entry).await {
                        debug!(space = entry.name.as_str(), error = %e, "gap resync failed");
                    }
                });
            }
        }
    }
}

/// A connection to a single Redis or to a Redis Cluster (detected at
/// connect time), for scripts and for subscriptions alike.
#[derive(Clone)]
enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    async fn subscribe(&mut self, mode: PublishMode, channel: &str) -> redis::RedisResult<()> {
        match self {
            Conn::Single(c) => {
                // One channel per command: its confirmation is the reply.
                redis::cmd(mode.subscribe_command())
                    .arg(channel)
                    .exec_async(c)
                    .await
            }
            Conn::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    async fn unsubscribe(&mut self, mode: PublishMode, channel: &str) -> redis::RedisResult<()> {
        match self {
            Conn::Single(c) => {
                redis::cmd(mode.unsubscribe_command())
                    .arg(channel)
                    .exec_async(c)
                    .await
            }
            Conn::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }

    async fn ping(&mut self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<redis::Value>(self)
            .await
            .map(drop)
    }
}

/// A fresh connection; pushes (subscription messages, disconnection) go to
/// `pushes` when given.
async fn connect(
    store: &RedisStore,
    cluster: bool,
    pushes: Option<mpsc::UnboundedSender<PushInfo>>,
) -> redis::RedisResult<Conn> {
    if cluster {
        let mut builder = ClusterClient::builder(vec![store.info.clone()])
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(2);
        if let Some(tx) = pushes {
            builder = builder.push_sender(tx);
        }
        let client = builder.build()?;
        return Ok(Conn::Cluster(client.get_async_connection().await?));
    }
    let mut config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    if let Some(tx) = pushes {
        config = config.set_push_sender(tx);
    }
    Ok(Conn::Single(
        store
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?,
    ))
}

/// Asks the configured node what it is: a cluster node or a single Redis,
/// and whether it has sharded pub/sub (Redis 7).
async fn probe(client: &Client) -> redis::RedisResult<(bool, PublishMode)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let cluster: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    let cluster = cluster.lines().any(|l| l.trim() == "cluster_enabled:1");
    let mode = detect_mode(&mut conn).await?;
    // A cluster's shard channels are what keeps a space's events on its
    // own shard; they need Redis 7 there too.
    Ok((cluster, mode))
}

/// Sharded pub/sub needs Redis 7.
async fn detect_mode(conn: &mut MultiplexedConnection) -> redis::RedisResult<PublishMode> {
    let info: String = redis::cmd("INFO").arg("server").query_async(conn).await?;
    let major = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .unwrap_or(0);
    Ok(if major >= 7 {
        PublishMode::Sharded
    } else {
        PublishMode::Classic
    })
}

/// The link: connects, subscribes, resynchronises, and reconnects with
/// backoff when a connection is lost; reports health and logs an outage
/// once when it starts and once when it ends.
async fn link(
    store: std::sync::Weak<RedisStore>,
    mut requests: mpsc::UnboundedReceiver<LinkRequest>,
) {
    let mut desired: HashSet<String> = HashSet::new();
    let mut backoff = BACKOFF_MIN;
    let mut outage: Option<Instant> = None;
    let mut first = true;
    let mut reported = false;
    let mut lost_reason: Option<String> = None;
    loop {
        let Some(s) = store.upgrade() else { return };
        // Connect both connections (the script one may have survived).
        let attempt = async {
            let (cluster, mode) = probe(&s.client).await?;
            let cmd_alive = s.cmd.lock().expect("cmd lock").clone();
            let mut cmd = match cmd_alive {
                Some(mut c) => match c.ping().await {
                    Ok(()) => c,
                    Err(_) => connect(&s, cluster, None).await?,
                },
                None => connect(&s, cluster, None).await?,
            };
            for script in s.scripts.values() {
                script.load_async(&mut cmd).await?;
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let mut sub = connect(&s, cluster, Some(tx)).await?;
            for channel in &desired {
                sub.subscribe(mode, channel).await?;
            }
            Ok::<_, redis::RedisError>((cmd, sub, rx, mode, cluster))
        };
        let (cmd, mut sub, mut pushes, mode, cluster) = match attempt.await {
            Ok(c) => c,
            Err(e) => {
                *s.cmd.lock().expect("cmd lock") = None;
                let reason = format!("redis unreachable: {e}");
                if !reported {
                    reported = true;
                    warn!(
                        error = %e,
                        lost = lost_reason.as_deref().unwrap_or("never connected"),
                        "redis unreachable; connected sockets stay open, new joins get 1011 until it is back"
                    );
                    outage.get_or_insert_with(Instant::now);
                }
                s.set_health(Err(reason));
                drop(s);
                // Wait, answering subscription requests meanwhile.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        () = &mut sleep => break,
                        r = requests.recv() => match r {
                            None => return,
                            Some(r) => refuse_request(r, &mut desired),
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        s.sharded
            .store(mode == PublishMode::Sharded, Ordering::Relaxed);
        *s.cmd.lock().expect("cmd lock") = Some(cmd);
        // Resynchronise every hub: events may have been missed while the
        // subscription was down, and Redis may have lost its data.
        let entries = s.entries();
        let resyncs = entries.iter().map(|e| s.resync(e));
        let failed = futures_util::future::join_all(resyncs)
            .await
            .into_iter()
            .filter(Result::is_err)
            .count();
        if failed > 0 {
            debug!(failed, "resyncs failed after reconnect; retrying");
            *s.cmd.lock().expect("cmd lock") = None;
            drop(s);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        s.set_health(Ok(()));
        backoff = BACKOFF_MIN;
        match (outage.take(), reported) {
            (Some(since), true) => info!(
                down_ms = since.elapsed().as_millis() as u64,
                spaces = entries.len(),
                "redis reachable again; subscriptions and hubs resynchronised"
            ),
            (Some(since), false) => info!(
                lost = lost_reason.as_deref().unwrap_or(""),
                after_ms = since.elapsed().as_millis() as u64,
                spaces = entries.len(),
                "redis connection lost and re-established at once; hubs resynchronised"
            ),
            (None, _) if first => info!(mode = ?mode, cluster, "connected to redis"),
            (None, _) => {}
        }
        first = false;
        reported = false;
        drop(entries);
        drop(s);

        // Serve: pushes to hubs, subscription requests to Redis.
        let lost: String = loop {
            let Some(s) = store.upgrade() else { return };
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(push) => match push.kind {
                        PushKind::Message | PushKind::SMessage => {
                            if let [channel, payload, ..] = &push.data[..] {
                                if let (Ok(channel), Ok(payload)) = (
                                    redis::from_redis_value_ref::<String>(channel),
                                    redis::from_redis_value_ref::<Vec<u8>>(payload),
                                ) {
                                    s.on_message(&channel, &payload);
                                }
                            }
                        }
                        PushKind::Disconnection => break "subscription connection lost".into(),
                        _ => {}
                    },
                    None => break "subscription connection closed".into(),
                },
                request = requests.recv() => match request {
                    None => return,
                    Some(LinkRequest::Subscribe(channel, done)) => {
                        let r = sub.subscribe(mode, &channel).await;
                        desired.insert(channel);
                        match r {
                            Ok(()) => { let _ = done.send(Some(Ok(()))); }
                            Err(e) => {
                                let _ = done.send(Some(Err(e.to_string())));
                                break format!("subscribe failed: {e}");
                            }
                        }
                    }
                    Some(LinkRequest::Unsubscribe(channel)) => {
                        desired.remove(&channel);
                        if let Err(e) = sub.unsubscribe(mode, &channel).await {
                            break format!("unsubscribe failed: {e}");
                        }
                    }
                },
                () = s.broken.notified() => {
                    let conn = s.cmd.lock().expect("cmd lock").clone();
                    if let Some(mut c) = conn {
                        if let Err(e) = c.ping().await {
                            *s.cmd.lock().expect("cmd lock") = None;
                            break format!("script connection lost: {e}");
                        }
                    }
                }
            }
        };
        // Health stays as it is for the first, immediate, retry: a killed
        // subscription alone costs a moment, not a failed join. The outage
        // is logged once, by whichever of the two outcomes follows.
        lost_reason = Some(lost);
        outage = Some(Instant::now());
    }
}

fn refuse_request(request: LinkRequest, desired: &mut HashSet<String>) {
    match request {
        LinkRequest::Subscribe(channel, done) => {
            desired.insert(channel);
            let _ = done.send(Some(Err("redis is unreachable".into())));
        }
        LinkRequest::Unsubscribe(channel) => {
            desired.remove(&channel);
        }
    }
}
