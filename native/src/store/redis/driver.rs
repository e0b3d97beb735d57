//! One space's driver: its core `SharedSpace` and its sockets' outboxes
//! behind one lock, the store calls it asks for (each a task whose reply
//! comes back as an input), and its wake-ups. A panic in a space's work
//! drops that space (its sockets closed with 1011, leases kept) and no
//! other.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use longhouse_core::api::{self, KickTarget};
use longhouse_core::shared::{
    CallId, Note, ScriptClock, ScriptReply, SharedSpace, SharedStep, StoreCall, StoreFailure,
    StoreOp, Subscription,
};
use longhouse_core::{
    CloseCode, ConnId, Disconnect, Frame, JoinRequest, RosterEvent, SpaceName, UnixMillis,
};
use tokio::sync::oneshot;
use tracing::{debug, info, warn, Instrument, Span};

use super::link::LinkRequest;
use super::{lock, RedisStore};
use crate::clock::now;
use crate::ids::{fresh_client_id, fresh_epoch};
use crate::outbox::{Outbound, Outbox};
use crate::store::dispatch::{carry_out, dropped_after_panic};

/// How long a kick waits for its script's reply before it answers 503.
const KICK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One space on this instance.
pub(super) struct SpaceDriver {
    pub name: SpaceName,
    pub channel: String,
    /// Taken out of the map (idle, or its work panicked): inputs for it
    /// are dropped, and a join looks again.
    removed: AtomicBool,
    state: Mutex<State>,
}

struct State {
    machine: SharedSpace,
    outboxes: HashMap<ConnId, Outbox>,
    /// Each socket's tracing span (its connection's), so that what is
    /// logged for a call made on its behalf carries it.
    spans: HashMap<ConnId, Span>,
    /// The earliest wake-up already asked for.
    scheduled: Option<UnixMillis>,
    /// Kicks of the server API waiting for their call's reply: how many
    /// leases it ended, or why it failed.
    kicks: HashMap<CallId, oneshot::Sender<Result<usize, StoreFailure>>>,
    /// Calls made for one socket run one at a time, in the order made (a
    /// client's updates, broadcasts and leave reach Redis in its order,
    /// section 10 and 13): a socket with a call in flight has an entry,
    /// holding the calls waiting behind it.
    lanes: HashMap<ConnId, VecDeque<(StoreCall, Span)>>,
}

impl RedisStore {
    pub(in crate::store) fn join(
        self: &Arc<Self>,
        conn: ConnId,
        request: &JoinRequest,
        outbox: Outbox,
    ) {
        if self.stopping.load(Ordering::SeqCst) {
            let _ = outbox.send(Outbound::Close(CloseCode::ServiceRestart));
            return;
        }
        loop {
            let driver = self.driver_for(&request.space);
            let mut state = lock(&driver.state);
            if driver.removed.load(Ordering::SeqCst) {
                continue;
            }
            state.outboxes.insert(conn, outbox);
            state.spans.insert(conn, Span::current());
            self.work(&driver, state, |m| {
                m.join(conn, request, fresh_client_id, now())
            });
            return;
        }
    }

    pub(in crate::store) fn frame(
        self: &Arc<Self>,
        name: &SpaceName,
        conn: ConnId,
        frame: Frame<'_>,
    ) {
        if let Some(driver) = self.driver(name) {
            self.input(&driver, |m| m.frame(conn, frame, now()));
        }
    }

    pub(in crate::store) fn closed(
        self: &Arc<Self>,
        name: &SpaceName,
        conn: ConnId,
        how: Disconnect,
    ) {
        if let Some(driver) = self.driver(name) {
            self.input(&driver, |m| m.closed(conn, how, now()));
        }
    }

    /// A server broadcast: one publish on the space's channel, which every
    /// instance with sockets in the space relays to them (this one
    /// subscribes for as long as the call takes, if it had no socket there).
    pub(in crate::store) fn broadcast(
        self: &Arc<Self>,
        name: &SpaceName,
        data: &longhouse_core::Json,
    ) {
        loop {
            let driver = self.driver_for(name);
            let state = lock(&driver.state);
            if driver.removed.load(Ordering::SeqCst) {
                continue;
            }
            self.work(&driver, state, |m| m.server_broadcast(data, now()));
            return;
        }
    }

    /// A kick: one script ends the leases and publishes their leaves; the
    /// answer is how many it ended, once its reply is in.
    pub(in crate::store) async fn kick(
        self: &Arc<Self>,
        name: &SpaceName,
        target: &KickTarget,
    ) -> Result<usize, StoreFailure> {
        let (tx, rx) = oneshot::channel();
        loop {
            let driver = self.driver_for(name);
            let state = lock(&driver.state);
            if driver.removed.load(Ordering::SeqCst) {
                continue;
            }
            let mut tx = Some(tx);
            self.work_with(&driver, state, |m, s| {
                let step = m.remove(target, now());
                for call in &step.calls {
                    if matches!(call.op, StoreOp::Remove { .. }) {
                        if let Some(tx) = tx.take() {
                            s.insert(call.id, tx);
                        }
                    }
                }
                step
            });
            break;
        }
        // A store that never answers (down, its call held) is a failure,
        // not a request left hanging.
        match tokio::time::timeout(KICK_TIMEOUT, rx).await {
            Ok(answer) => answer.unwrap_or(Err(StoreFailure::Failed)),
            Err(_) => Err(StoreFailure::Unavailable),
        }
    }

    pub(in crate::store) fn shutdown(self: &Arc<Self>) {
        self.stopping.store(true, Ordering::SeqCst);
        for driver in self.drivers() {
            self.input(&driver, |m| m.shutdown(now()));
        }
    }

    /// Whether every space is done with the store (after
    /// [`RedisStore::shutdown`]: the updates its sockets held are stored and
    /// their sockets closed).
    pub(in crate::store) fn settled(&self) -> bool {
        self.drivers()
            .iter()
            .all(|d| d.removed.load(Ordering::SeqCst) || lock(&d.state).machine.is_idle())
    }

    /// A message of `channel`, from the subscription.
    pub(super) fn message(self: &Arc<Self>, channel: &str, payload: &[u8]) {
        if let Some(driver) = self.by_channel(channel) {
            let text = String::from_utf8_lossy(payload);
            self.input(&driver, |m| m.message(&text, now()));
        }
    }

    /// The subscription of `driver` changed.
    pub(super) fn subscription(self: &Arc<Self>, driver: &Arc<SpaceDriver>, state: Subscription) {
        self.input(driver, |m| m.subscription(state, now()));
    }

    /// The subscription's queue dropped messages: every space asks the
    /// store.
    pub(super) fn messages_lost(self: &Arc<Self>) {
        for driver in self.drivers() {
            self.input(&driver, |m| m.messages_lost(now()));
        }
    }

    /// A wake-up for `name` came due.
    pub(super) fn wake(self: &Arc<Self>, name: &SpaceName) {
        if let Some(driver) = self.driver(name) {
            lock(&driver.state).scheduled = None;
            self.input(&driver, |m| m.tick(now()));
        }
    }

    fn input(
        self: &Arc<Self>,
        driver: &Arc<SpaceDriver>,
        input: impl FnOnce(&mut SharedSpace) -> SharedStep,
    ) {
        let state = lock(&driver.state);
        if !driver.removed.load(Ordering::SeqCst) {
            self.work(driver, state, input);
        }
    }

    /// One input under the space's lock, caught if it panics; then the
    /// step is carried out: socket effects, logs and metrics, calls,
    /// the next wake-up; and the space is dropped if nothing is left in it.
    fn work(
        self: &Arc<Self>,
        driver: &Arc<SpaceDriver>,
        guard: MutexGuard<'_, State>,
        input: impl FnOnce(&mut SharedSpace) -> SharedStep,
    ) {
        self.work_with(driver, guard, |m, _| input(m));
    }

    /// [`RedisStore::work`] for an input that also needs the driver's own
    /// bookkeeping (a kick's answer).
    fn work_with(
        self: &Arc<Self>,
        driver: &Arc<SpaceDriver>,
        mut guard: MutexGuard<'_, State>,
        input: impl FnOnce(&mut SharedSpace, &mut Kicks) -> SharedStep,
    ) {
        let s = &mut *guard;
        let kicks = &mut s.kicks;
        match catch_unwind(AssertUnwindSafe(|| {
            input(&mut s.machine, &mut Kicks(kicks))
        })) {
            Ok(step) => {
                // A call made for a socket is logged in the socket's span
                // (else in the span of what made it: a reply, a wake-up).
                let spans: Vec<Span> = step
                    .calls
                    .iter()
                    .map(|call| {
                        call.op
                            .holder()
                            .and_then(|conn| s.spans.get(&conn).cloned())
                            .unwrap_or_else(Span::current)
                    })
                    .collect();
                let machine = &s.machine;
                carry_out(&driver.name, &mut s.outboxes, step.step, |conn| {
                    machine.holds(conn)
                });
                s.spans.retain(|conn, _| machine.holds(*conn));
                for note in &step.notes {
                    log_note(&driver.name, note);
                }
                for (call, span) in step.calls.into_iter().zip(spans) {
                    if let Some(holder) = call.op.holder() {
                        if let Some(waiting) = s.lanes.get_mut(&holder) {
                            waiting.push_back((call, span));
                            continue;
                        }
                        s.lanes.insert(holder, VecDeque::new());
                    }
                    self.spawn_call(driver.clone(), call, span);
                }
                self.wakeups
                    .schedule(s.machine.poll_timeout(), &mut s.scheduled, &driver.name);
                if !s.machine.is_idle() {
                    return;
                }
            }
            Err(panic) => dropped_after_panic(&driver.name, &mut s.outboxes, panic.as_ref()),
        }
        driver.removed.store(true, Ordering::SeqCst);
        drop(guard);
        self.forget(driver);
    }

    /// Runs one call in its own task; its reply is the space's next input.
    fn spawn_call(self: &Arc<Self>, driver: Arc<SpaceDriver>, call: StoreCall, span: Span) {
        let script =
            self.scripts_for(&driver.name)
                .script(&call, ScriptClock::Store, &fresh_epoch());
        let store = self.clone();
        tokio::spawn(async move {
            let result = store.scripts.run(&script).await;
            let result: Result<ScriptReply, StoreFailure> = match result {
                Ok(reply) => Ok(reply),
                Err(e) => {
                    if e.is_connection_error() {
                        store.broken.notify_one();
                    }
                    // An outage is logged once, by the link.
                    debug!(space = driver.name.as_str(), script = script.kind.name(), error = %e, "store call failed");
                    Err(e.failure())
                }
            };
            store.replied(&driver, call.id, call.op.holder(), result);
        }.instrument(span));
    }

    fn replied(
        self: &Arc<Self>,
        driver: &Arc<SpaceDriver>,
        id: CallId,
        holder: Option<ConnId>,
        result: Result<ScriptReply, StoreFailure>,
    ) {
        let mut state = lock(&driver.state);
        if let Some(holder) = holder {
            // The socket's next call, if one waits.
            match state.lanes.get_mut(&holder).map(VecDeque::pop_front) {
                Some(Some((call, span))) => self.spawn_call(driver.clone(), call, span),
                Some(None) => {
                    state.lanes.remove(&holder);
                }
                None => {}
            }
        }
        if driver.removed.load(Ordering::SeqCst) {
            return;
        }
        // What this space learnt of Redis's clock, for spaces made later.
        let at = now();
        lock(&self.clock).merge(state.machine.clock(), at);
        self.work_with(driver, state, |m, s| {
            let answer = result.as_ref().map(|_| ()).map_err(|e| *e);
            if let (Some(pump), Ok(reply)) = (&self.pump, &result) {
                // The script that made these may have added member events
                // to the space's stream.
                let members_changed = reply.events.iter().any(|e| {
                    matches!(
                        e.event,
                        RosterEvent::Joined { .. } | RosterEvent::Left { .. }
                    )
                });
                if members_changed {
                    pump.made(&driver.name);
                }
            }
            let step = m.reply(id, result, at);
            if let Some(kick) = s.remove(&id) {
                let _ = kick.send(answer.map(|()| api::removed(&step.step)));
            }
            step
        });
    }

    /// The space's driver, made (and its subscription asked for) if this
    /// is its first socket.
    fn driver_for(self: &Arc<Self>, name: &SpaceName) -> Arc<SpaceDriver> {
        let mut spaces = lock(&self.spaces);
        if let Some(d) = spaces.by_name.get(name) {
            if !d.removed.load(Ordering::SeqCst) {
                return d.clone();
            }
        }
        let channel = self.scripts_for(name).keys().channel.clone();
        let driver = Arc::new(SpaceDriver {
            name: name.clone(),
            channel: channel.clone(),
            removed: AtomicBool::new(false),
            state: Mutex::new(State {
                machine: SharedSpace::new(self.config, *lock(&self.clock)),
                outboxes: HashMap::new(),
                spans: HashMap::new(),
                scheduled: None,
                kicks: HashMap::new(),
                lanes: HashMap::new(),
            }),
        });
        // Asked under the map lock, so that it is ordered after the
        // unsubscribe of a previous driver of the same space.
        let _ = self.link.send(LinkRequest::Subscribe(
            channel.clone(),
            Arc::downgrade(&driver),
        ));
        spaces.by_name.insert(name.clone(), driver.clone());
        spaces.by_channel.insert(channel, driver.clone());
        let unavailable = self.health().is_err();
        drop(spaces);
        if unavailable {
            // Told at once, so that its first join is refused without
            // waiting for the link.
            self.subscription(&driver, Subscription::Unavailable);
        }
        driver
    }

    fn driver(&self, name: &SpaceName) -> Option<Arc<SpaceDriver>> {
        lock(&self.spaces).by_name.get(name).cloned()
    }

    /// Takes a removed driver out of the maps and ends its subscription,
    /// unless it was replaced meanwhile.
    fn forget(&self, driver: &Arc<SpaceDriver>) {
        let mut spaces = lock(&self.spaces);
        let current = spaces
            .by_name
            .get(&driver.name)
            .is_some_and(|d| Arc::ptr_eq(d, driver));
        if current {
            spaces.by_name.remove(&driver.name);
            spaces.by_channel.remove(&driver.channel);
            let _ = self
                .link
                .send(LinkRequest::Unsubscribe(driver.channel.clone()));
        }
    }
}

/// A driver's kicks waiting for replies, as an input sees them.
pub(super) struct Kicks<'a>(&'a mut HashMap<CallId, oneshot::Sender<Result<usize, StoreFailure>>>);

impl Kicks<'_> {
    fn insert(&mut self, id: CallId, tx: oneshot::Sender<Result<usize, StoreFailure>>) {
        self.0.insert(id, tx);
    }

    fn remove(&mut self, id: &CallId) -> Option<oneshot::Sender<Result<usize, StoreFailure>>> {
        self.0.remove(id)
    }
}

fn log_note(space: &SpaceName, note: &Note) {
    let space = space.as_str();
    match note {
        Note::HistoryChanged {
            from,
            to,
            reasserted,
        } => info!(
            space,
            from = from.as_ref().map(|e| e.as_str()),
            to = to.as_ref().map(|e| e.as_str()),
            reasserted,
            "redis had lost this space's history: leases re-asserted"
        ),
        Note::Resync(reason) => debug!(space, ?reason, "resynchronising from redis"),
        Note::Undecodable(e) => {
            warn!(space, error = %e, "undecodable message on the space's channel ignored")
        }
        Note::CallFailed(what, failure) => {
            debug!(space, call = *what, ?failure, "store call failed")
        }
    }
}
