//! The in-memory store: one core `Space` per space, behind a lock, and a
//! sweeper that wakes each space when its next lease runs out.

mod inspect;

use std::cmp::Reverse;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use longhouse_core::{
    event_kind, ConnId, Disconnect, Frame, JoinRequest, Output, RosterEvent, Space, SpaceConfig,
    SpaceName, Step, UnixMillis,
};
use tokio::sync::mpsc;
use tracing::info;

use crate::clock::now;
use crate::ids::fresh_client_id;
use crate::outbox::{Outbound, Outbox};

struct Entry {
    space: Space,
    outboxes: HashMap<ConnId, Outbox>,
    /// The earliest wake-up already asked of the sweeper.
    scheduled: Option<UnixMillis>,
}

/// Presence for this process only: the roster goes with it.
pub struct MemoryStore {
    config: SpaceConfig,
    /// `MAX_CLIENTS_PER_SPACE`, `None`: no limit.
    max_clients: Option<usize>,
    spaces: Mutex<HashMap<SpaceName, Arc<Mutex<Entry>>>>,
    sweeper: mpsc::UnboundedSender<(UnixMillis, SpaceName)>,
    stopping: AtomicBool,
}

impl MemoryStore {
    /// A store with its sweeper task running on the current runtime.
    pub fn start(config: SpaceConfig, max_clients: Option<usize>) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let store = Arc::new(MemoryStore {
            config,
            max_clients,
            spaces: Mutex::new(HashMap::new()),
            sweeper: tx,
            stopping: AtomicBool::new(false),
        });
        tokio::spawn(sweep(Arc::downgrade(&store), rx));
        store
    }

    pub(super) fn join(&self, conn: ConnId, request: &JoinRequest, outbox: Outbox) {
        if self.stopping.load(Ordering::SeqCst) {
            let _ = outbox.send(Outbound::Close(longhouse_core::CloseCode::ServiceRestart));
            return;
        }
        let name = &request.space;
        let entry = {
            let mut spaces = self.spaces.lock().expect("spaces lock");
            let entry = match spaces.entry(name.clone()) {
                MapEntry::Occupied(e) => e.get().clone(),
                MapEntry::Vacant(e) => e
                    .insert(Arc::new(Mutex::new(Entry {
                        space: Space::new(self.config).with_max_clients(self.max_clients),
                        outboxes: HashMap::new(),
                        scheduled: None,
                    })))
                    .clone(),
            };
            // Take the space's lock before letting go of the map's, so the
            // space cannot be dropped as idle under this join.
            let mut guard = entry.lock().expect("space lock");
            guard.outboxes.insert(conn, outbox);
            let step = guard.space.join(conn, request, fresh_client_id, now());
            self.finish(name, &mut guard, step);
            drop(guard);
            entry
        };
        drop(entry);
    }

    pub(super) fn frame(&self, name: &SpaceName, conn: ConnId, frame: Frame<'_>) {
        self.with_space(name, |space| space.frame(conn, frame, now()));
    }

    pub(super) fn closed(&self, name: &SpaceName, conn: ConnId, how: Disconnect) {
        self.with_space(name, |space| space.closed(conn, how, now()));
    }

    pub(super) fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let entries: Vec<(SpaceName, Arc<Mutex<Entry>>)> = self
            .spaces
            .lock()
            .expect("spaces lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, entry) in entries {
            let mut guard = entry.lock().expect("space lock");
            let step = guard.space.shutdown();
            self.finish(&name, &mut guard, step);
        }
    }

    fn tick(&self, name: &SpaceName) {
        self.with_space(name, |space| space.tick(now()));
    }

    /// Runs one input against an existing space, then drops the space if it
    /// has nothing left in it.
    fn with_space(&self, name: &SpaceName, input: impl FnOnce(&mut Space) -> Step) {
        let Some(entry) = self.spaces.lock().expect("spaces lock").get(name).cloned() else {
            return;
        };
        let idle = {
            let mut guard = entry.lock().expect("space lock");
            let step = input(&mut guard.space);
            self.finish(name, &mut guard, step);
            guard.space.is_idle()
        };
        if idle {
            let mut spaces = self.spaces.lock().expect("spaces lock");
            if let MapEntry::Occupied(e) = spaces.entry(name.clone()) {
                if Arc::ptr_eq(e.get(), &entry)
                    && e.get().lock().expect("space lock").space.is_idle()
                {
                    e.remove();
                }
            }
        }
    }

    /// Carries out a step: logs its events, fills outboxes, asks the sweeper
    /// for the next wake-up.
    fn finish(&self, name: &SpaceName, entry: &mut Entry, step: Step) {
        for event in &step.events {
            log_event(name, &event.event);
        }
        for output in step.outputs {
            match output {
                Output::Send { conn, text } => {
                    if let Some(outbox) = entry.outboxes.get(&conn) {
                        let _ = outbox.send(Outbound::Text(text));
                    }
                }
                Output::Close { conn, code } => {
                    if let Some(outbox) = entry.outboxes.remove(&conn) {
                        let _ = outbox.send(Outbound::Close(code));
                    }
                }
            }
        }
        // Sockets the hub has forgotten (closed by their client) need no
        // outbox either.
        if entry.outboxes.len() > entry.space.hub().len() {
            let hub = entry.space.hub();
            entry
                .outboxes
                .retain(|conn, _| hub.client_of(*conn).is_some());
        }
        if let Some(deadline) = entry.space.next_deadline() {
            if entry.scheduled.is_none_or(|s| deadline < s) {
                entry.scheduled = Some(deadline);
                let _ = self.sweeper.send((deadline, name.clone()));
            }
        }
    }
}

fn log_event(space: &SpaceName, event: &RosterEvent) {
    crate::metrics::presence_event(event);
    let client = event.client();
    info!(
        space = space.as_str(),
        client = client.id.as_str(),
        identity = client.identity.as_str(),
        event = event_kind(event),
        "presence"
    );
}

/// Wakes each space at its next lease expiry. Stale wake-ups (a lease that
/// was renewed) cost one no-op tick.
async fn sweep(
    store: Weak<MemoryStore>,
    mut requests: mpsc::UnboundedReceiver<(UnixMillis, SpaceName)>,
) {
    let mut queue: BinaryHeap<Reverse<(UnixMillis, SpaceName)>> = BinaryHeap::new();
    loop {
        let wait = queue
            .peek()
            .map(|Reverse((at, _))| std::time::Duration::from_millis(now().until(*at)));
        tokio::select! {
            request = requests.recv() => match request {
                Some(r) => queue.push(Reverse(r)),
                None => return,
            },
            () = sleep_or_forever(wait) => {
                let Some(store) = store.upgrade() else { return };
                let current = now();
                while let Some(Reverse((at, _))) = queue.peek() {
                    if *at > current {
                        break;
                    }
                    let Reverse((_, name)) = queue.pop().expect("peeked");
                    if let Some(entry) = store.spaces.lock().expect("spaces lock").get(&name) {
                        entry.lock().expect("space lock").scheduled = None;
                    }
                    store.tick(&name);
                }
            }
        }
    }
}

async fn sleep_or_forever(wait: Option<std::time::Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
