//! The Redis store: the roster of every space lives in Redis (one atomic
//! Lua script per change), and each process keeps a core `SharedSpace` per
//! space it has sockets in, fed by the space's (sharded) pub/sub channel, so
//! any number of instances serve one space. Every rule is in
//! `longhouse_core::shared`; this module only moves bytes:
//!
//! - `conn`: the connection kinds (single Redis or Cluster; scripts and
//!   subscription);
//! - `link`: the subscription's life (connect, subscribe, reconnect with
//!   backoff) and the health `GET /health` reports;
//! - `pushes`: the bounded queue from the subscription to the spaces;
//! - `scripts`: running one script call;
//! - `driver`: one space's machine, its sockets' outboxes, its calls and
//!   its wake-ups;
//! - `webhooks`: the member events' streams, shared by the instances.

mod conn;
mod driver;
mod inspect;
mod link;
mod pushes;
mod scripts;
mod webhooks;

pub use scripts::RedisStoreError;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use longhouse_core::shared::{PublishMode, SharedConfig, SpaceScripts, StoreClock};
use longhouse_core::{SpaceConfig, SpaceName, UnixMillis};
use redis::{IntoConnectionInfo, ProtocolVersion};
use tokio::sync::{mpsc, Notify};

use self::driver::SpaceDriver;
use self::link::LinkRequest;
use super::wakeups::Wakeups;

#[derive(Default)]
struct Spaces {
    by_name: HashMap<SpaceName, Arc<SpaceDriver>>,
    by_channel: HashMap<String, Arc<SpaceDriver>>,
}

/// Presence shared through Redis by every instance configured with it.
pub struct RedisStore {
    config: SharedConfig,
    /// `MAX_CLIENTS_PER_SPACE`, enforced by the join script.
    max_clients: Option<usize>,
    target: conn::Target,
    scripts: scripts::Scripts,
    spaces: Mutex<Spaces>,
    link: mpsc::UnboundedSender<LinkRequest>,
    /// A call failed in a way that suggests the connection is gone.
    broken: Notify,
    health: Mutex<Result<(), String>>,
    sharded: AtomicBool,
    /// The instance's estimate of Redis's clock, for new spaces.
    clock: Mutex<StoreClock>,
    wakeups: Wakeups,
    /// `SUBSCRIPTION_QUEUE`.
    queue_capacity: usize,
    stopping: AtomicBool,
    /// Member events (`WEBHOOK_URL`): the scripts write them to streams
    /// this pump delivers.
    pump: Option<webhooks::Pump>,
}

use super::dispatch::lock;

impl RedisStore {
    /// A store for `url` with its link running; it connects in the
    /// background (health is 503 until it has).
    pub fn start(
        config: SpaceConfig,
        max_clients: Option<usize>,
        url: &str,
        queue_capacity: usize,
        webhook: Option<(&str, &str)>,
    ) -> Result<Arc<Self>, RedisStoreError> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info.clone())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let store = Arc::new_cyclic(|weak: &Weak<RedisStore>| {
            let for_wakeups = weak.clone();
            RedisStore {
                config: SharedConfig::new(config),
                max_clients,
                target: conn::Target { info, client },
                scripts: scripts::Scripts::new(),
                spaces: Mutex::new(Spaces::default()),
                link: tx,
                broken: Notify::new(),
                health: Mutex::new(Err("connecting to redis".into())),
                sharded: AtomicBool::new(true),
                clock: Mutex::new(StoreClock::new()),
                wakeups: Wakeups::start(move |name| match for_wakeups.upgrade() {
                    Some(store) => {
                        store.wake(name);
                        true
                    }
                    None => false,
                }),
                queue_capacity,
                stopping: AtomicBool::new(false),
                pump: webhook.map(|(url, secret)| webhooks::Pump::start(weak.clone(), url, secret)),
            }
        });
        tokio::spawn(link::run(Arc::downgrade(&store), rx));
        Ok(store)
    }

    fn mode(&self) -> PublishMode {
        if self.sharded.load(Ordering::Relaxed) {
            PublishMode::Sharded
        } else {
            PublishMode::Classic
        }
    }

    fn scripts_for(&self, name: &SpaceName) -> SpaceScripts {
        SpaceScripts::new(name, self.mode(), self.config.space.ttl_ms)
            .with_max_clients(self.max_clients)
            .with_webhooks(self.pump.is_some())
    }

    pub(super) fn health(&self) -> Result<(), String> {
        lock(&self.health).clone()
    }

    fn set_health(&self, health: Result<(), String>) {
        *lock(&self.health) = health;
    }

    fn observe_clock(&self, sent: UnixMillis, received: UnixMillis, store: UnixMillis) {
        lock(&self.clock).observe(sent, received, store);
    }

    fn drivers(&self) -> Vec<Arc<SpaceDriver>> {
        lock(&self.spaces).by_name.values().cloned().collect()
    }

    fn by_channel(&self, channel: &str) -> Option<Arc<SpaceDriver>> {
        lock(&self.spaces).by_channel.get(channel).cloned()
    }
}
