//! Webhooks on Redis (section 14). The scripts that change a roster add
//! its member events to the space's stream (`lh:{space}:webhooks`) in the
//! same call. Every instance runs this pump; the instances share each
//! stream as the consumer group `webhooks`, one instance at a time per
//! space (an owner key, `lh:{space}:webhooks-owner`, renewed while it
//! lives), so that events go out in order and exactly one instance sends
//! each. When an owner dies its key runs out; the next instance takes the
//! stream over and claims the dead consumer's entries (`XAUTOCLAIM`)
//! before reading new ones. A delivered batch is acknowledged and deleted
//! from the stream (`XACK`, `XDEL`).
//!
//! Which spaces have a stream: the instance whose script made an event
//! registers its space in `lh:webhooks` (a sorted set, scored by when);
//! every pump reads that registry, and drops a space whose stream it found
//! empty and that nobody registered for a while.

use std::collections::{BTreeSet, HashSet};
use std::sync::Weak;
use std::time::Duration;

use longhouse_core::shared::SpaceKeys;
use longhouse_core::webhook::{from_stream_entry, Answer, BatchId, Outbox, OutboxConfig, Settled};
use longhouse_core::SpaceName;
use redis::streams::{StreamAutoClaimReply, StreamReadReply};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::conn::ScriptConn;
use super::RedisStore;
use crate::clock::now;
use crate::webhooks::{http_client, report, send, sleep_until};

/// The registry of spaces whose streams may hold events.
const REGISTRY: &str = "lh:webhooks";
/// The consumer group every instance reads through.
const GROUP: &str = "webhooks";
/// How long an owner key lasts unless renewed; an owner that dies hands
/// its spaces on after this.
const OWNER_MS: u64 = 5_000;
/// How often the pump renews, reads and looks for spaces.
const TICK: Duration = Duration::from_millis(250);
/// A space registered more recently than this is kept even if its stream
/// looked empty (its event may be on its way).
const REGISTRY_GRACE_MS: u64 = 10_000;
/// Entries read at once per stream.
const READ_COUNT: usize = 100;

/// Renews the owner key if it is ours, else takes it if it is free.
const OWN: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0";

/// Drops a space from the registry unless it was registered lately.
const FORGET: &str = r"
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0";

/// The drivers' end: a space whose script made events here.
#[derive(Clone)]
pub(super) struct Pump {
    made: mpsc::UnboundedSender<SpaceName>,
}

impl Pump {
    /// Starts the pump for `url`, signing with `secret`.
    pub(super) fn start(store: Weak<RedisStore>, url: &str, secret: &str) -> Self {
        let (made, rx) = mpsc::unbounded_channel();
        let mut consumer = [0u8; 8];
        getrandom::fill(&mut consumer).expect("the OS random source works");
        let consumer = hex_id(consumer);
        info!(consumer = consumer.as_str(), "webhook pump started");
        let outbox = Outbox::new(secret.as_bytes().to_vec(), OutboxConfig::default());
        tokio::spawn(run(store, rx, outbox, consumer, url.to_owned()));
        Pump { made }
    }

    /// This instance's script added events to `space`'s stream.
    pub(super) fn made(&self, space: &SpaceName) {
        let _ = self.made.send(space.clone());
    }
}

fn hex_id(bytes: [u8; 8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct State {
    consumer: String,
    /// Registered spaces, as last read.
    known: BTreeSet<SpaceName>,
    /// The spaces this instance owns.
    owned: HashSet<SpaceName>,
}

async fn run(
    store: Weak<RedisStore>,
    mut made: mpsc::UnboundedReceiver<SpaceName>,
    mut outbox: Outbox,
    consumer: String,
    url: String,
) {
    let client = http_client();
    let mut requests: JoinSet<(BatchId, Answer)> = JoinSet::new();
    let mut state = State {
        consumer,
        known: BTreeSet::new(),
        owned: HashSet::new(),
    };
    let mut tick = tokio::time::interval(TICK);
    // Spaces whose events this instance made, not yet in the registry (kept
    // until Redis takes them, so none is forgotten).
    let mut unregistered: BTreeSet<SpaceName> = BTreeSet::new();
    loop {
        let wake = outbox
            .next_deadline()
            .map(|at| tokio::time::Instant::now() + Duration::from_millis(now().until(at)));
        let conn = || store.upgrade().and_then(|s| s.scripts.conn());
        tokio::select! {
            space = made.recv() => {
                let Some(space) = space else { return };
                unregistered.insert(space);
                while let Ok(more) = made.try_recv() {
                    unregistered.insert(more);
                }
                if let Some(mut conn) = conn() {
                    register_all(&mut conn, &mut unregistered, &mut state, &mut outbox).await;
                }
            }
            _ = tick.tick() => {
                if let Some(mut conn) = conn() {
                    register_all(&mut conn, &mut unregistered, &mut state, &mut outbox).await;
                    if let Err(e) = round(&mut conn, &mut state, &mut outbox).await {
                        debug!(error = %e, "webhook round failed");
                    }
                }
            }
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                if let Ok((batch, answer)) = done {
                    if let Some(s) = outbox.answered(batch, answer, now()) {
                        settled(store.upgrade().and_then(|s| s.scripts.conn()), &s).await;
                    }
                }
            }
            _ = sleep_until(wake) => {}
        }
        let (attempts, done) = outbox.poll(now());
        for s in &done {
            settled(store.upgrade().and_then(|s| s.scripts.conn()), s).await;
        }
        for attempt in attempts {
            requests.spawn(send(client.clone(), url.clone(), attempt));
        }
    }
}

/// Registers every space in `spaces` (those that fail stay), and reads
/// each at once: a new event goes out without waiting for a round.
async fn register_all(
    conn: &mut ScriptConn,
    spaces: &mut BTreeSet<SpaceName>,
    state: &mut State,
    outbox: &mut Outbox,
) {
    for space in std::mem::take(spaces) {
        if let Err(e) = register(conn, &space).await {
            debug!(space = space.as_str(), error = %e, "webhook registry");
            spaces.insert(space);
            continue;
        }
        state.known.insert(space.clone());
        pump_space(conn, state, outbox, &space).await;
    }
}

async fn register(conn: &mut ScriptConn, space: &SpaceName) -> redis::RedisResult<()> {
    redis::cmd("ZADD")
        .arg(REGISTRY)
        .arg(now().0)
        .arg(space.as_str())
        .query_async(conn)
        .await
}

/// Reads the registry, then renews, takes over and reads each space.
async fn round(
    conn: &mut ScriptConn,
    state: &mut State,
    outbox: &mut Outbox,
) -> redis::RedisResult<()> {
    let names: Vec<String> = redis::cmd("ZRANGE")
        .arg(REGISTRY)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    state.known = names
        .iter()
        .filter_map(|n| SpaceName::parse(n).ok())
        .collect();
    state.owned.retain(|s| state.known.contains(s));
    for space in state.known.clone() {
        pump_space(conn, state, outbox, &space).await;
    }
    Ok(())
}

/// Owns (or keeps owning) `space`'s stream and queues what it holds.
async fn pump_space(
    conn: &mut ScriptConn,
    state: &mut State,
    outbox: &mut Outbox,
    space: &SpaceName,
) {
    if let Err(e) = try_pump(conn, state, outbox, space).await {
        debug!(space = space.as_str(), error = %e, "webhook stream");
    }
}

async fn try_pump(
    conn: &mut ScriptConn,
    state: &mut State,
    outbox: &mut Outbox,
    space: &SpaceName,
) -> redis::RedisResult<()> {
    let keys = SpaceKeys::new(space);
    let owner_key = format!("{}-owner", keys.webhooks);
    let got: i64 = redis::Script::new(OWN)
        .key(&owner_key)
        .arg(&state.consumer)
        .arg(OWNER_MS)
        .invoke_async(conn)
        .await?;
    if got == 0 {
        state.owned.remove(space);
        return Ok(());
    }
    let fresh = got == 2 || !state.owned.contains(space);
    if fresh {
        state.owned.insert(space.clone());
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&keys.webhooks)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e);
            }
        }
        // A previous owner's entries, read but not delivered, first.
        let mut start = "0-0".to_owned();
        loop {
            let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&keys.webhooks)
                .arg(GROUP)
                .arg(&state.consumer)
                .arg(0)
                .arg(&start)
                .arg("COUNT")
                .arg(READ_COUNT)
                .query_async(conn)
                .await?;
            let n = claimed.claimed.len();
            queue(
                outbox,
                space,
                claimed.claimed.into_iter().map(|e| (e.id, e.map)),
            );
            if claimed.next_stream_id == "0-0" || n == 0 {
                break;
            }
            start = claimed.next_stream_id;
        }
    }
    if outbox.held() >= OutboxConfig::default().max_queued / 2 {
        return Ok(());
    }
    let read: StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(&state.consumer)
        .arg("COUNT")
        .arg(READ_COUNT)
        .arg("STREAMS")
        .arg(&keys.webhooks)
        .arg(">")
        .query_async(conn)
        .await?;
    let mut any = false;
    for key in read.keys {
        any |= !key.ids.is_empty();
        queue(outbox, space, key.ids.into_iter().map(|e| (e.id, e.map)));
    }
    if !any {
        let len: u64 = redis::cmd("XLEN")
            .arg(&keys.webhooks)
            .query_async(conn)
            .await?;
        if len == 0 {
            let cutoff = now().0.saturating_sub(REGISTRY_GRACE_MS);
            let _: i64 = redis::Script::new(FORGET)
                .key(REGISTRY)
                .arg(space.as_str())
                .arg(cutoff)
                .invoke_async(conn)
                .await?;
        }
    }
    Ok(())
}

fn queue(
    outbox: &mut Outbox,
    space: &SpaceName,
    entries: impl Iterator<Item = (String, std::collections::HashMap<String, redis::Value>)>,
) {
    let at = now();
    for (id, map) in entries {
        let fields: Vec<(String, String)> = map
            .into_iter()
            .filter_map(|(k, v)| redis::from_redis_value::<String>(v).ok().map(|v| (k, v)))
            .collect();
        match from_stream_entry(space.as_str(), &id, &fields) {
            Some(event) => {
                crate::metrics::webhook_event();
                if let Err(full) = outbox.push(event, at) {
                    warn!(error = %full, "webhook event dropped");
                }
            }
            None => warn!(
                space = space.as_str(),
                entry = id.as_str(),
                "unreadable webhook entry skipped"
            ),
        }
    }
}

/// A delivered (or given up) batch leaves the stream.
async fn settled(conn: Option<ScriptConn>, s: &Settled) {
    report(s);
    let (space, events) = match s {
        Settled::Delivered { space, events } | Settled::GivenUp { space, events } => {
            (space, events)
        }
        Settled::Retrying { .. } => return,
    };
    let (Some(mut conn), Ok(name)) = (conn, SpaceName::parse(space)) else {
        return;
    };
    let key = SpaceKeys::new(&name).webhooks;
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.id.split_once('-').map(|(_, entry)| entry))
        .collect();
    if ids.is_empty() {
        return;
    }
    let acked: redis::RedisResult<()> = redis::pipe()
        .cmd("XACK")
        .arg(&key)
        .arg(GROUP)
        .arg(&ids)
        .ignore()
        .cmd("XDEL")
        .arg(&key)
        .arg(&ids)
        .ignore()
        .query_async(&mut conn)
        .await;
    if let Err(e) = acked {
        warn!(space = space.as_str(), error = %e, "delivered webhook entries not acknowledged (they will be sent again)");
    }
}
