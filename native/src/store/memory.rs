//! The in-memory store: one core `Space` per space, each behind its own
//! lock, woken when its next lease runs out.
//!
//! The map of spaces is locked only to find, insert or remove a space,
//! never while a space works. A panic in one space's work is caught: that
//! space is dropped (its sockets closed with 1011) and every other space
//! goes on; no lock is left poisoned.

mod inspect;

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use longhouse_core::{
    ConnId, Disconnect, Frame, JoinRequest, Space, SpaceConfig, SpaceName, Step, UnixMillis,
};

use super::dispatch::{carry_out, dropped_after_panic, lock};
use super::wakeups::Wakeups;
use crate::clock::now;
use crate::ids::fresh_client_id;
use crate::outbox::{Outbound, Outbox};

struct Entry {
    space: Space,
    outboxes: HashMap<ConnId, Outbox>,
    /// The earliest wake-up already asked for.
    scheduled: Option<UnixMillis>,
}

/// A space in the map.
struct Slot {
    /// Taken out of the map (idle, or its work panicked): whoever finds it
    /// looks again. Set under the entry's lock; read without it.
    removed: AtomicBool,
    entry: Mutex<Entry>,
}

type Shared = Arc<Slot>;

/// Presence for this process only: the roster goes with it.
pub struct MemoryStore {
    config: SpaceConfig,
    /// `MAX_CLIENTS_PER_SPACE`, `None`: no limit.
    max_clients: Option<usize>,
    spaces: Mutex<HashMap<SpaceName, Shared>>,
    wakeups: Wakeups,
    stopping: AtomicBool,
}

impl MemoryStore {
    /// A store with its wake-up task running on the current runtime.
    pub fn start(config: SpaceConfig, max_clients: Option<usize>) -> Arc<Self> {
        Arc::new_cyclic(|weak: &Weak<MemoryStore>| {
            let weak = weak.clone();
            MemoryStore {
                config,
                max_clients,
                spaces: Mutex::new(HashMap::new()),
                wakeups: Wakeups::start(move |name| match weak.upgrade() {
                    Some(store) => {
                        store.tick(name);
                        true
                    }
                    None => false,
                }),
                stopping: AtomicBool::new(false),
            }
        })
    }

    pub(super) fn join(&self, conn: ConnId, request: &JoinRequest, outbox: Outbox) {
        if self.stopping.load(Ordering::SeqCst) {
            let _ = outbox.send(Outbound::Close(longhouse_core::CloseCode::ServiceRestart));
            return;
        }
        let name = &request.space;
        loop {
            let slot = self.entry_for(name);
            let mut guard = lock(&slot.entry);
            if slot.removed.load(Ordering::SeqCst) {
                drop(guard);
                self.forget(name, &slot);
                continue;
            }
            guard.outboxes.insert(conn, outbox);
            self.work(name, &slot, guard, |space| {
                space.join(conn, request, fresh_client_id, now())
            });
            return;
        }
    }

    pub(super) fn frame(&self, name: &SpaceName, conn: ConnId, frame: Frame<'_>) {
        self.with_space(name, |space| space.frame(conn, frame, now()));
    }

    pub(super) fn closed(&self, name: &SpaceName, conn: ConnId, how: Disconnect) {
        self.with_space(name, |space| space.closed(conn, how, now()));
    }

    pub(super) fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for (name, slot) in self.entries() {
            let guard = lock(&slot.entry);
            if !slot.removed.load(Ordering::SeqCst) {
                self.work(&name, &slot, guard, |space| space.shutdown(now()));
            }
        }
    }

    fn tick(&self, name: &SpaceName) {
        if let Some(slot) = self.entry(name) {
            lock(&slot.entry).scheduled = None;
        }
        self.with_space(name, |space| space.tick(now()));
    }

    /// Runs one input against an existing space.
    fn with_space(&self, name: &SpaceName, input: impl FnOnce(&mut Space) -> Step) {
        let Some(slot) = self.entry(name) else {
            return;
        };
        let guard = lock(&slot.entry);
        if !slot.removed.load(Ordering::SeqCst) {
            self.work(name, &slot, guard, input);
        }
    }

    /// One input under the space's lock, caught if it panics; then the
    /// step is carried out, the next wake-up asked for, and the space
    /// dropped if it has nothing left in it.
    fn work(
        &self,
        name: &SpaceName,
        slot: &Shared,
        mut guard: MutexGuard<'_, Entry>,
        input: impl FnOnce(&mut Space) -> Step,
    ) {
        let e = &mut *guard;
        match catch_unwind(AssertUnwindSafe(|| input(&mut e.space))) {
            Ok(step) => {
                let hub = e.space.hub();
                carry_out(name, &mut e.outboxes, step, |conn| {
                    hub.client_of(conn).is_some()
                });
                self.wakeups
                    .schedule(e.space.next_deadline(), &mut e.scheduled, name);
                if !e.space.is_idle() {
                    return;
                }
            }
            Err(panic) => dropped_after_panic(name, &mut e.outboxes, panic.as_ref()),
        }
        slot.removed.store(true, Ordering::SeqCst);
        drop(guard);
        self.forget(name, slot);
    }

    /// The space's entry, inserted if it has none.
    fn entry_for(&self, name: &SpaceName) -> Shared {
        let mut spaces = lock(&self.spaces);
        if let Some(slot) = spaces.get(name) {
            // A removed entry still in the map is on its way out.
            if !slot.removed.load(Ordering::SeqCst) {
                return slot.clone();
            }
        }
        let fresh = Arc::new(Slot {
            removed: AtomicBool::new(false),
            entry: Mutex::new(Entry {
                space: Space::new(self.config).with_max_clients(self.max_clients),
                outboxes: HashMap::new(),
                scheduled: None,
            }),
        });
        spaces.insert(name.clone(), fresh.clone());
        fresh
    }

    fn entry(&self, name: &SpaceName) -> Option<Shared> {
        lock(&self.spaces).get(name).cloned()
    }

    /// Takes a removed entry out of the map, unless it was replaced.
    fn forget(&self, name: &SpaceName, slot: &Shared) {
        let mut spaces = lock(&self.spaces);
        if let MapEntry::Occupied(e) = spaces.entry(name.clone()) {
            if Arc::ptr_eq(e.get(), slot) {
                e.remove();
            }
        }
    }

    fn entries(&self) -> Vec<(SpaceName, Shared)> {
        lock(&self.spaces)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{outbox, Inbox};
    use longhouse_core::{CloseCode, PING_TEXT};
    use std::time::Duration;

    fn request(space: &str, identity: &str) -> JoinRequest {
        let query = format!("identity={identity}");
        JoinRequest::parse(&format!("/{space}"), Some(&query)).unwrap()
    }

    async fn next(inbox: &mut Inbox) -> Outbound {
        tokio::time::timeout(Duration::from_secs(2), inbox.recv())
            .await
            .expect("something arrives")
            .expect("the outbox is open")
    }

    fn is_welcome(o: &Outbound) -> bool {
        matches!(o, Outbound::Text(t) if t.contains("\"clients\""))
    }

    #[tokio::test]
    async fn a_panic_in_one_space_closes_its_sockets_1011_and_spares_the_others() {
        let store = MemoryStore::start(SpaceConfig::default(), None);
        let (a_tx, mut a) = outbox(16);
        let (b_tx, mut b) = outbox(16);
        let (c_tx, mut c) = outbox(16);
        store.join(ConnId(1), &request("doomed", "ann"), a_tx);
        store.join(ConnId(2), &request("doomed", "bob"), b_tx);
        store.join(ConnId(3), &request("fine", "cy"), c_tx);
        assert!(is_welcome(&next(&mut a).await));
        assert!(is_welcome(&next(&mut b).await));
        assert!(is_welcome(&next(&mut c).await));
        assert!(matches!(next(&mut a).await, Outbound::Text(t) if t.contains("remote join")));

        let doomed = SpaceName::parse("doomed").unwrap();
        store.with_space(&doomed, |_| panic!("a bug in one space"));
        assert_eq!(
            next(&mut a).await,
            Outbound::Close(CloseCode::InternalError)
        );
        assert_eq!(
            next(&mut b).await,
            Outbound::Close(CloseCode::InternalError)
        );
        assert_eq!(store.space_count(), 1, "the panicked space is dropped");

        // The other space works on, and no lock is poisoned: its socket can
        // ping, a newcomer can join it, and the dropped space starts afresh.
        let fine = SpaceName::parse("fine").unwrap();
        store.frame(&fine, ConnId(3), Frame::Text(PING_TEXT.as_bytes()));
        let (d_tx, mut d) = outbox(16);
        store.join(ConnId(4), &request("fine", "dee"), d_tx);
        assert!(is_welcome(&next(&mut d).await));
        assert!(matches!(next(&mut c).await, Outbound::Text(t) if t.contains("remote join")));
        let (e_tx, mut e) = outbox(16);
        store.join(ConnId(5), &request("doomed", "eve"), e_tx);
        match next(&mut e).await {
            Outbound::Text(t) => assert!(t.contains("\"clients\":[{") && !t.contains("ann")),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.space_count(), 2);
    }

    #[tokio::test]
    async fn the_map_is_free_while_a_space_works() {
        let store = MemoryStore::start(SpaceConfig::default(), None);
        let (a_tx, mut a) = outbox(16);
        store.join(ConnId(1), &request("busy", "ann"), a_tx);
        assert!(is_welcome(&next(&mut a).await));
        let busy = SpaceName::parse("busy").unwrap();
        // While one space's work runs, another space can be found, joined
        // and counted: the work does not hold the map.
        store.with_space(&busy, |space| {
            let (b_tx, _b) = outbox(16);
            store.join(ConnId(2), &request("other", "bob"), b_tx);
            assert_eq!(store.space_count(), 2);
            space.tick(now())
        });
    }
}
