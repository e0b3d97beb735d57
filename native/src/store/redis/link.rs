//! The link: one task that owns the subscription. It connects (opening the
//! script connection the first time; that one reconnects by itself),
//! subscribes every space's channel, routes the pushes to the spaces,
//! re-establishes the subscription with backoff when it is lost, tells the
//! spaces (so that they resynchronise), and keeps the health that
//! `GET /health` reports. An outage is logged once when it starts and once
//! when it ends.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use longhouse_core::shared::{PublishMode, Subscription};
use redis::PushKind;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::conn::{probe, ScriptConn, Shape, SubConn};
use super::driver::SpaceDriver;
use super::pushes::{push_queue, PushQueue, Pushed};
use super::{RedisStore, RedisStoreError};
use crate::clock::now;

/// Reconnect backoff: first retry, and the longest wait between retries.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The least time between two warnings that the subscription queue
/// overflowed (it can overflow many times a second under a flood).
const OVERFLOW_WARNING_EVERY: Duration = Duration::from_secs(5);

/// What spaces ask of the link.
pub(super) enum LinkRequest {
    /// Subscribe to a space's channel and tell that driver when confirmed.
    Subscribe(String, Weak<SpaceDriver>),
    /// End a space's subscription.
    Unsubscribe(String),
}

/// Channels wanted, and the driver each belongs to.
type Desired = HashMap<String, Weak<SpaceDriver>>;

pub(super) async fn run(
    store: Weak<RedisStore>,
    mut requests: mpsc::UnboundedReceiver<LinkRequest>,
) {
    let mut desired: Desired = HashMap::new();
    let mut backoff = BACKOFF_MIN;
    let mut outage: Option<Instant> = None;
    let mut first = true;
    let mut reported = false;
    let mut lost_reason: Option<String> = None;
    let mut overflow_warned: Option<Instant> = None;
    loop {
        let Some(s) = store.upgrade() else { return };
        let (shape, mut sub, mut queue) = match connect(&s, &desired).await {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("redis unreachable: {e}");
                if !reported {
                    reported = true;
                    warn!(
                        error = %e,
                        lost = lost_reason.as_deref().unwrap_or("never connected"),
                        "redis unreachable; connected sockets stay open, new joins get 1011 until it is back"
                    );
                    outage.get_or_insert_with(Instant::now);
                    tell_all(&s, &desired, Subscription::Unavailable);
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
                            Some(r) => refuse_request(&store, r, &mut desired),
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        s.sharded
            .store(shape.mode == PublishMode::Sharded, Ordering::Relaxed);
        s.set_health(Ok(()));
        backoff = BACKOFF_MIN;
        tell_all(&s, &desired, Subscription::Confirmed);
        match (outage.take(), reported) {
            (Some(since), true) => info!(
                down_ms = since.elapsed().as_millis() as u64,
                spaces = desired.len(),
                "redis reachable again; subscriptions restored, spaces resynchronising"
            ),
            (Some(since), false) => info!(
                lost = lost_reason.as_deref().unwrap_or(""),
                after_ms = since.elapsed().as_millis() as u64,
                spaces = desired.len(),
                "redis subscription lost and re-established at once; spaces resynchronising"
            ),
            (None, _) if first => {
                info!(mode = ?shape.mode, cluster = shape.cluster, "connected to redis")
            }
            (None, _) => {}
        }
        first = false;
        reported = false;
        drop(s);

        // Serve: pushes to spaces, subscription requests to Redis.
        let lost: String = loop {
            let Some(s) = store.upgrade() else { return };
            tokio::select! {
                pushed = queue.next() => match pushed {
                    Pushed::Push(push) => route(&s, &push),
                    Pushed::Overflowed => {
                        if overflow_warned.is_none_or(|t| t.elapsed() >= OVERFLOW_WARNING_EVERY) {
                            overflow_warned = Some(Instant::now());
                            warn!(
                                capacity = s.queue_capacity,
                                spaces = desired.len(),
                                "subscription queue full: messages dropped, every space resynchronises"
                            );
                        }
                        s.messages_lost();
                    }
                    Pushed::Disconnected => break "subscription connection lost".into(),
                },
                request = requests.recv() => match request {
                    None => return,
                    Some(LinkRequest::Subscribe(channel, driver)) => {
                        let r = sub.subscribe(shape.mode, &channel).await;
                        desired.insert(channel, driver.clone());
                        match r {
                            Ok(()) => {
                                if let Some(d) = driver.upgrade() {
                                    s.subscription(&d, Subscription::Confirmed);
                                }
                            }
                            Err(e) => break format!("subscribe failed: {e}"),
                        }
                    }
                    Some(LinkRequest::Unsubscribe(channel)) => {
                        desired.remove(&channel);
                        if let Err(e) = sub.unsubscribe(shape.mode, &channel).await {
                            break format!("unsubscribe failed: {e}");
                        }
                    }
                },
                () = s.broken.notified() => {
                    if let Err(e) = sub.ping().await {
                        break format!("connection lost: {e}");
                    }
                }
            }
        };
        debug!(reason = %lost, "redis subscription lost; reconnecting");
        if let Some(s) = store.upgrade() {
            tell_all(&s, &desired, Subscription::Lost);
        }
        // Health stays as it is for the first, immediate, retry: a killed
        // subscription alone costs a moment, not a failed join. The outage
        // is logged once, by whichever of the two outcomes follows.
        lost_reason = Some(lost);
        outage = Some(Instant::now());
    }
}

/// Opens what the link needs: the script connection (once; it reconnects
/// by itself) with the scripts loaded, a first reading of Redis's clock,
/// and a fresh subscription connection subscribed to every wanted channel.
async fn connect(
    s: &Arc<RedisStore>,
    desired: &Desired,
) -> Result<(Shape, SubConn, PushQueue), RedisStoreError> {
    let shape = probe(&s.target).await?;
    let mut conn = match s.scripts.conn() {
        Some(c) => c,
        None => {
            let c = ScriptConn::open(&s.target, shape).await?;
            s.scripts.set_conn(c.clone());
            c
        }
    };
    s.scripts.load_all(&mut conn).await?;
    let sent = now();
    let store_time = s.scripts.time().await?;
    s.observe_clock(sent, now(), store_time);
    let (tx, queue) = push_queue(s.queue_capacity);
    let mut sub = SubConn::open(&s.target, shape, tx).await?;
    for channel in desired.keys() {
        sub.subscribe(shape.mode, channel).await?;
    }
    Ok((shape, sub, queue))
}

/// A message push goes to the space of its channel.
fn route(s: &Arc<RedisStore>, push: &redis::PushInfo) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return;
    }
    if let [channel, payload, ..] = &push.data[..] {
        if let (Ok(channel), Ok(payload)) = (
            redis::from_redis_value_ref::<String>(channel),
            redis::from_redis_value_ref::<Vec<u8>>(payload),
        ) {
            s.message(&channel, &payload);
        }
    }
}

fn tell_all(s: &Arc<RedisStore>, desired: &Desired, state: Subscription) {
    for driver in desired.values().filter_map(Weak::upgrade) {
        s.subscription(&driver, state);
    }
}

/// While Redis is unreachable: remembers the request and tells the space.
fn refuse_request(store: &Weak<RedisStore>, request: LinkRequest, desired: &mut Desired) {
    match request {
        LinkRequest::Subscribe(channel, driver) => {
            desired.insert(channel, driver.clone());
            if let (Some(s), Some(d)) = (store.upgrade(), driver.upgrade()) {
                s.subscription(&d, Subscription::Unavailable);
            }
        }
        LinkRequest::Unsubscribe(channel) => {
            desired.remove(&channel);
        }
    }
}
