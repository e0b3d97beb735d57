//! One space served through a shared store, as a sans-IO state machine:
//! the local hub plus everything that keeps it in step with a store that
//! other instances write to as well. Its inputs are the sockets' joins,
//! frames and closes, the replies to the calls it asked for, the messages
//! of the space's channel, the state of the subscription, and the time;
//! its outputs ([`SharedStep`]) are socket effects, store calls, roster
//! events for logs and metrics, and notes; [`SharedSpace::poll_timeout`]
//! says when to wake it.
//!
//! Decided here: when a join is sent (once the subscription is confirmed;
//! refused with 1011 if it is not within the wait, or the store is down),
//! when the space resynchronises (a gap that does not fill within the
//! patience, a held-back buffer that overflowed, a reconnected
//! subscription, lost messages, another history, or one that contradicts
//! itself, of which nothing more is applied), when it sweeps (the next
//! expiry by the store's clock), and what it re-asserts when the store lost
//! the space (see [`crate::shared::StoreOp::Resync`]).

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::hub::Hub;
use crate::inbound::Frame;
use crate::join::{JoinError, JoinRequest};
use crate::json::Json;
use crate::output::{Command, Disconnect, Output};
use crate::roster::{RosterEvent, Sequenced};
use crate::shared::calls::{CallId, History, KnownLease, StoreCall, StoreOp};
use crate::shared::clock::StoreClock;
use crate::shared::codec::{decode_published, Epoch, Published, ScriptReply};
use crate::shared::config::SharedConfig;
use crate::shared::step::{Note, ResyncReason, SharedStep, StoreFailure, Subscription};
use crate::time::UnixMillis;
use crate::wire::{ClientInfo, ServerMessage};
use crate::CloseCode;

/// How many abandoned histories are remembered, so that their late events
/// are ignored instead of starting another resync.
const PAST_EPOCHS: usize = 4;

mod commands;
mod replies;
mod schedule;

#[derive(Debug, Clone)]
enum Pending {
    Join(ConnId),
    /// A renewal, or a relay (which renews too).
    Renew(ClientId, ConnId),
    /// An update (which renews too).
    Update(ClientId, ConnId),
    Leave(ConnId),
    Sweep,
    Resync,
    /// A broadcast of the server API.
    Publish,
    /// A kick of the server API.
    Remove,
}

#[derive(Debug, Clone)]
struct InFlight {
    pending: Pending,
    /// When it was asked for (local clock), to learn the store's offset.
    sent: UnixMillis,
    /// The history the view belonged to then.
    epoch: Option<Epoch>,
    /// Whether the view had a snapshot then.
    ready: bool,
    /// What had arrived then: events held back by the hub, and messages.
    hub_mark: u64,
    arrivals: u64,
}

/// A lease held by a socket here, as its join's reply and renewals left it.
/// Kept after a lost connection until the lease runs out: the lease runs
/// on without its socket (section 4), and is this instance's to put back
/// should the store lose it.
#[derive(Debug, Clone)]
struct Own {
    conn: ConnId,
    client: ClientInfo,
    /// Store clock.
    expires_at: UnixMillis,
    /// The socket was lost without a close.
    lost: bool,
}

/// A join's request, kept while its socket is open (it may be sent again
/// if the history it landed in is lost before it was confirmed).
#[derive(Debug, Clone)]
struct Joining {
    /// What it asked for (username, info, state).
    request: JoinRequest,
    id: ClientId,
    /// Waiting for the subscription since (local clock); `None` once sent.
    waiting_since: Option<UnixMillis>,
    /// Its call is in flight.
    sent: bool,
}

/// One space on one instance, served through a shared store.
#[derive(Debug, Clone)]
pub struct SharedSpace {
    config: SharedConfig,
    hub: Hub,
    clock: StoreClock,
    /// The history the hub's view belongs to (set by the first snapshot).
    epoch: Option<Epoch>,
    /// A snapshot has been applied.
    ready: bool,
    past: VecDeque<Epoch>,
    subscription: Option<Subscription>,
    joining: HashMap<ConnId, Joining>,
    /// Joins the store took in a history the view is not at yet.
    unconfirmed: Vec<(ConnId, Option<Epoch>, u64)>,
    own: HashMap<ClientId, Own>,
    /// Records updated by sockets welcomed (by the channel) before their
    /// join's reply made the lease ours: taken into [`Own`] then.
    early: HashMap<ConnId, ClientInfo>,
    /// The record of a socket of ours that a join's reply for another
    /// socket of ours displaced from [`Own`] (keyed by the joiner): a join
    /// that landed in another history where the lease was free, or an old
    /// join whose lease the holder has resumed since. Put back if the
    /// joiner goes (refused, replaced, closed) while the holder stays, so
    /// that the holder's latest state is not lost with it.
    displaced: HashMap<ConnId, Own>,
    /// Leaves of sockets that closed while their join was in flight (with
    /// the record to show, if an update was held): sent once it is
    /// answered, so that the leave cannot overtake the join.
    deferred: HashMap<ConnId, (ClientId, Option<Option<Json>>)>,
    /// The closes of sockets closed for a violation, held until their
    /// lease has ended in the store: a client that sees its close frame
    /// finds its lease gone.
    closing: HashMap<ConnId, Output>,
    calls: HashMap<CallId, InFlight>,
    next_call: u64,
    /// The earliest lease end known (store clock).
    next_sweep: Option<UnixMillis>,
    sweeping: bool,
    /// No sweep before this (local clock): spacing, or a retry.
    sweep_not_before: UnixMillis,
    resync_wanted: Option<ResyncReason>,
    /// The next resync asks the store to begin a new history.
    force_new_history: bool,
    resyncing: bool,
    resync_not_before: UnixMillis,
    gap_since: Option<UnixMillis>,
    /// The store's sequence number as its replies told it (in the view's
    /// history): events up to it must arrive, or the space resynchronises.
    store_seq: u64,
    /// Events of a history the view is not at, with their arrival number.
    foreign: VecDeque<(u64, Epoch, Sequenced)>,
    foreign_overflowed: bool,
    /// A reset seen before the first snapshot.
    reset_seen: Option<Epoch>,
    arrivals: u64,
    warned_undecodable: bool,
    stopping: bool,
}

impl SharedSpace {
    /// A space with no sockets yet, its subscription not yet confirmed;
    /// `clock` is the instance's estimate of the store's clock so far.
    pub fn new(config: SharedConfig, clock: StoreClock) -> Self {
        SharedSpace {
            hub: config.space.hub(0).with_max_held(config.max_held_events),
            config,
            clock,
            epoch: None,
            ready: false,
            past: VecDeque::new(),
            subscription: None,
            joining: HashMap::new(),
            unconfirmed: Vec::new(),
            own: HashMap::new(),
            early: HashMap::new(),
            displaced: HashMap::new(),
            deferred: HashMap::new(),
            closing: HashMap::new(),
            calls: HashMap::new(),
            next_call: 0,
            next_sweep: None,
            sweeping: false,
            sweep_not_before: UnixMillis(0),
            resync_wanted: None,
            force_new_history: false,
            resyncing: false,
            resync_not_before: UnixMillis(0),
            gap_since: None,
            store_seq: 0,
            foreign: VecDeque::new(),
            foreign_overflowed: false,
            reset_seen: None,
            arrivals: 0,
            warned_undecodable: false,
            stopping: false,
        }
    }

    /// A socket asks to join; `fresh_id` makes the id when it asks for
    /// none. Its welcome (or refusal) follows from later inputs.
    pub fn join(
        &mut self,
        conn: ConnId,
        request: &JoinRequest,
        fresh_id: impl FnOnce() -> ClientId,
        now: UnixMillis,
    ) -> SharedStep {
        let mut out = SharedStep::default();
        if self.stopping {
            out.step.outputs.push(Output::Close {
                conn,
                code: CloseCode::ServiceRestart,
            });
            return out;
        }
        let id = request.id.clone().unwrap_or_else(fresh_id);
        self.hub
            .open_with(conn, id.clone(), request.resume_changes());
        self.joining.insert(
            conn,
            Joining {
                request: request.clone(),
                id,
                waiting_since: Some(now),
                sent: false,
            },
        );
        match self.subscription {
            Some(Subscription::Confirmed) => self.send_join(conn, now, &mut out),
            Some(Subscription::Unavailable) => self.refuse_unavailable(conn, &mut out),
            None | Some(Subscription::Lost) => {}
        }
        self.finish(now, &mut out);
        out
    }

    /// A socket sent a frame.
    pub fn frame(&mut self, conn: ConnId, frame: Frame<'_>, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        let framed = self.hub.frame(conn, frame, now, &mut out.step.outputs);
        out.step.errors.extend(framed.error);
        if matches!(framed.command, Some(Command::Leave { .. })) {
            let close = out
                .step
                .outputs
                .iter()
                .rposition(|o| matches!(o, Output::Close { conn: c, .. } if *c == conn));
            if let Some(i) = close {
                self.closing.insert(conn, out.step.outputs.remove(i));
            }
        }
        if let Some(command) = framed.command {
            self.command(command, now, &mut out);
        }
        self.finish(now, &mut out);
        out
    }

    /// A socket closed, cleanly or not.
    pub fn closed(&mut self, conn: ConnId, how: Disconnect, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        if how == Disconnect::Lost {
            if let Some(own) = self.own.values_mut().find(|o| o.conn == conn) {
                own.lost = true;
            }
        }
        if let Some(command) = self.hub.closed(conn, how) {
            self.command(command, now, &mut out);
        }
        self.finish(now, &mut out);
        out
    }

    /// The answer to call `id`.
    pub fn reply(
        &mut self,
        id: CallId,
        result: Result<ScriptReply, StoreFailure>,
        now: UnixMillis,
    ) -> SharedStep {
        let mut out = SharedStep::default();
        let Some(call) = self.calls.remove(&id) else {
            return out;
        };
        match result {
            Ok(reply) => self.replied(call, reply, now, &mut out),
            Err(failure) => self.failed(call, failure, now, &mut out),
        }
        self.finish(now, &mut out);
        out
    }

    /// One message from the space's channel, as published.
    pub fn message(&mut self, text: &str, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        self.arrivals += 1;
        match decode_published(text) {
            Ok(Published::Reset { epoch }) => {
                let epoch = Some(epoch);
                if !self.ready {
                    // Settled once the first snapshot says which history
                    // it is of.
                    self.reset_seen = epoch;
                } else if !self.is_current_or_past(&epoch) {
                    self.want_resync(ResyncReason::History);
                }
            }
            Ok(Published::Event { epoch, event }) => self.event(epoch, event, now, &mut out),
            Ok(Published::Relay {
                epoch,
                after,
                from,
                text,
            }) => {
                if self.ready {
                    // Of another history, its number says nothing here: shown
                    // to whoever sees its sender.
                    let after = if self.epoch.as_ref() == Some(&epoch) {
                        after
                    } else {
                        0
                    };
                    self.hub.relayed(after, from, text, &mut out.step.outputs);
                }
            }
            Err(e) => {
                if !self.warned_undecodable {
                    self.warned_undecodable = true;
                    out.notes.push(Note::Undecodable(e.to_string()));
                }
            }
        }
        self.finish(now, &mut out);
        out
    }

    /// The subscription's state changed.
    pub fn subscription(&mut self, state: Subscription, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        let before = self.subscription.replace(state);
        match state {
            Subscription::Confirmed => {
                if before.is_some_and(|b| b != Subscription::Confirmed) {
                    self.want_resync(ResyncReason::Resubscribed);
                }
                for conn in self.waiting() {
                    self.send_join(conn, now, &mut out);
                }
            }
            Subscription::Unavailable => {
                for conn in self.waiting() {
                    self.refuse_unavailable(conn, &mut out);
                }
            }
            Subscription::Lost => {}
        }
        self.finish(now, &mut out);
        out
    }

    /// The target dropped messages of the channel (its queue overflowed):
    /// what they said is only in the store now.
    pub fn messages_lost(&mut self, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        self.want_resync(ResyncReason::MessagesLost);
        self.finish(now, &mut out);
        out
    }

    /// The time is now `now` (see [`SharedSpace::poll_timeout`]): held
    /// updates that are due are sent.
    pub fn tick(&mut self, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        for command in self.hub.due_updates(now) {
            self.command(command, now, &mut out);
        }
        self.finish(now, &mut out);
        out
    }

    /// A broadcast of the server API (`from: null`) to every client of
    /// the space, on every instance: one publish.
    pub fn server_broadcast(&mut self, data: &Json, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        let text = ServerMessage::Broadcast {
            from: None,
            data: data.clone(),
        }
        .encode();
        let op = StoreOp::Relay { from: None, text };
        self.call(op, Pending::Publish, now, &mut out);
        self.finish(now, &mut out);
        out
    }

    /// A kick of the server API: one script ends the leases `target` names
    /// and publishes their leaves (cause removed), so that the instance
    /// holding each socket closes it with 4003 and everyone else sees the
    /// leave. The reply's step reports the leaves (count them with
    /// [`crate::api::removed`]).
    pub fn remove(&mut self, target: &crate::api::KickTarget, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        let op = StoreOp::Remove {
            target: target.clone(),
        };
        self.call(op, Pending::Remove, now, &mut out);
        self.finish(now, &mut out);
        out
    }

    /// Closes every socket with 1012 and keeps their leases; later joins
    /// are closed with 1012 too. Updates still held are stored (the calls
    /// in the step), so that clients resume elsewhere with their latest
    /// state.
    pub fn shutdown(&mut self, now: UnixMillis) -> SharedStep {
        let mut out = SharedStep::default();
        out.step
            .outputs
            .extend(self.closing.drain().map(|(_, close)| close));
        for command in self.hub.shutdown(&mut out.step.outputs) {
            // The socket's 1012 waits for its update to be stored, so that
            // it resumes elsewhere with its latest state.
            if let Command::Update { holder, .. } = &command {
                let conn = *holder;
                let close = out
                    .step
                    .outputs
                    .iter()
                    .position(|o| matches!(o, Output::Close { conn: c, .. } if *c == conn));
                if let Some(i) = close {
                    self.closing.insert(conn, out.step.outputs.remove(i));
                }
            }
            self.command(command, now, &mut out);
        }
        self.stopping = true;
        self.joining.clear();
        self.own.clear();
        self.early.clear();
        self.displaced.clear();
        out
    }

    /// When to call [`SharedSpace::tick`] next (local clock), if anything
    /// is due later.
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        let mut at: Option<UnixMillis> = None;
        let mut take = |t: UnixMillis| at = Some(at.map_or(t, |a| a.min(t)));
        for j in self.joining.values() {
            if let Some(since) = j.waiting_since {
                take(since.plus(self.config.subscribe_wait_ms));
            }
        }
        if self.can_resync() {
            if self.resync_wanted.is_some() {
                take(self.resync_not_before);
            } else if let Some(since) = self.gap_since {
                take(since.plus(self.config.gap_patience_ms));
            }
        }
        if let Some(due) = self.sweep_due() {
            take(due);
        }
        if let Some(due) = self.hub.next_deadline() {
            take(due);
        }
        at
    }

    /// No sockets, no joins and no calls in flight: the target may drop
    /// the space (and end its subscription).
    pub fn is_idle(&self) -> bool {
        self.hub.is_empty()
            && self.joining.is_empty()
            && self.calls.is_empty()
            && self.closing.is_empty()
    }

    /// Whether `conn` still needs its outbox: held by the hub, or closed
    /// for a violation with its close frame still to come.
    pub fn holds(&self, conn: ConnId) -> bool {
        self.hub.client_of(conn).is_some() || self.closing.contains_key(&conn)
    }

    /// The local sockets and their view.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The estimate of the store's clock this space has learnt.
    pub fn clock(&self) -> &StoreClock {
        &self.clock
    }

    /// The history the view belongs to.
    pub fn epoch(&self) -> Option<&Epoch> {
        self.epoch.as_ref()
    }

    // --- inputs, continued ------------------------------------------------

    fn event(&mut self, epoch: Epoch, event: Sequenced, now: UnixMillis, out: &mut SharedStep) {
        if self.ready && self.epoch.as_ref() == Some(&epoch) {
            self.note_lease_start(&event.event, now);
            self.apply(event, out);
            return;
        }
        // Held either way: a history left behind may be the store's again
        // (a failover back to an old replica); late events of one are no
        // reason to resynchronise, though.
        let past = self.past.contains(&epoch);
        self.hold_foreign(epoch, event);
        if self.ready && !past {
            self.want_resync(ResyncReason::History);
        }
    }

    /// Applies an event of the view's history; a lease of ours whose socket
    /// was lost is no longer ours once another socket resumed it. Once the
    /// view is [contradicted](SharedSpace::contradicted), nothing more of
    /// that history is applied: the event that showed it is the last.
    fn apply(&mut self, event: Sequenced, out: &mut SharedStep) {
        if self.contradicted() {
            return;
        }
        if let RosterEvent::Resumed { client, holder, .. } = &event.event {
            if self
                .own
                .get(&client.id)
                .is_some_and(|o| o.lost && o.conn != *holder)
            {
                self.own.remove(&client.id);
            }
        }
        self.hub.apply(event, &mut out.step.outputs);
    }

    /// Joins waiting for the subscription, in connection order.
    fn waiting(&self) -> Vec<ConnId> {
        sorted(
            self.joining
                .iter()
                .filter(|(_, j)| j.waiting_since.is_some())
                .map(|(c, _)| *c)
                .collect(),
        )
    }

    /// Releases the close held for `conn`, if any.
    fn closed_now(&mut self, conn: ConnId, out: &mut SharedStep) {
        if let Some(close) = self.closing.remove(&conn) {
            out.step.outputs.push(close);
        }
    }

    fn hold_foreign(&mut self, epoch: Epoch, event: Sequenced) {
        if self.foreign.len() >= self.config.max_foreign_events {
            self.foreign.clear();
            self.foreign_overflowed = true;
        }
        self.foreign.push_back((self.arrivals, epoch, event));
    }

    /// Whether the view's history contradicted itself: two events arrived
    /// under one sequence number, so the store went back and wrote again
    /// (a failover to a replica that was behind, keeping the epoch), and
    /// what the view applied may be of the lost history. Its events and
    /// snapshots are then no longer applied, and no join is settled by
    /// them: applied on top of a lost event, they could tell a socket
    /// whose join was lost with it that its lease ended before it was
    /// ever welcomed. The space forces a new history instead
    /// ([`ResyncReason::Contradicted`]), where every instance re-asserts
    /// what it holds and the joins taken meanwhile are sent again.
    fn contradicted(&self) -> bool {
        self.ready && self.hub.contradicted()
    }

    fn is_current_or_past(&self, epoch: &Option<Epoch>) -> bool {
        *epoch == self.epoch || epoch.as_ref().is_some_and(|e| self.past.contains(e))
    }

    /// Whether a reply of history `epoch` comes from a history the view
    /// has left since the call was made: the call ran before the loss that
    /// made the view move on. (A reply of any other history says what the
    /// store holds now, even an old history it went back to.)
    fn is_lost_history(&self, call: &InFlight, epoch: &Option<Epoch>) -> bool {
        *epoch != self.epoch && call.ready && *epoch == call.epoch
    }

    /// Sends `conn`'s join; a fresh lease is stamped with the store's
    /// clock as this instance estimates it.
    fn send_join(&mut self, conn: ConnId, now: UnixMillis, out: &mut SharedStep) {
        let Some(j) = self.joining.get_mut(&conn) else {
            return;
        };
        j.waiting_since = None;
        j.sent = true;
        // Sent again (its history was lost) for a lease this socket already
        // took: the same client record, so that nobody (the socket itself
        // included, which is never told about itself) sees it change.
        let client = match self.own.get(&j.id).filter(|o| o.conn == conn) {
            Some(own) => own.client.clone(),
            None => j
                .request
                .fresh_client(j.id.clone(), self.clock.store_time(now)),
        };
        let op = StoreOp::Join {
            client,
            holder: conn,
            snapshot: !self.ready,
        };
        self.call(op, Pending::Join(conn), now, out);
    }

    fn refuse(&mut self, conn: ConnId, error: &JoinError, out: &mut SharedStep) {
        self.joining.remove(&conn);
        self.early.remove(&conn);
        out.step.errors.push(error.kind());
        self.hub.refuse(conn, error, &mut out.step.outputs);
    }

    fn refuse_unavailable(&mut self, conn: ConnId, out: &mut SharedStep) {
        self.refuse(conn, &JoinError::StoreUnavailable, out);
    }

    fn call(&mut self, op: StoreOp, pending: Pending, now: UnixMillis, out: &mut SharedStep) {
        self.next_call += 1;
        let id = CallId(self.next_call);
        self.calls.insert(
            id,
            InFlight {
                pending,
                sent: now,
                epoch: self.epoch.clone(),
                ready: self.ready,
                hub_mark: self.hub.mark(),
                arrivals: self.arrivals,
            },
        );
        let history = History {
            epoch: if self.ready { self.epoch.clone() } else { None },
            seen: if self.ready { self.hub.seen() } else { 0 },
        };
        out.calls.push(StoreCall { id, history, op });
    }

    /// What to put back should the store have lost the space: the view,
    /// with the leases of this instance's sockets as held (and their
    /// expiry), the others as placeholders; in welcome order.
    fn known(&self) -> Vec<KnownLease> {
        let mut known: BTreeMap<ClientId, KnownLease> = self
            .hub
            .view()
            .into_iter()
            .map(|client| (client.id.clone(), KnownLease { client, held: None }))
            .collect();
        for (id, own) in &self.own {
            if own.lost || self.hub.client_of(own.conn) == Some(id) {
                known.insert(
                    id.clone(),
                    KnownLease {
                        client: own.client.clone(),
                        held: Some((own.conn, own.expires_at)),
                    },
                );
            }
        }
        let mut known: Vec<KnownLease> = known.into_values().collect();
        known.sort_by(|a, b| {
            (a.client.joined_at, &a.client.id).cmp(&(b.client.joined_at, &b.client.id))
        });
        known
    }
}

fn sorted(mut conns: Vec<ConnId>) -> Vec<ConnId> {
    conns.sort();
    conns
}
