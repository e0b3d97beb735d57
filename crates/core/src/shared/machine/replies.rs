//! How a shared space takes the answers to its calls: what a reply's
//! history says (the view's, one it left, or one it must move to), the
//! joins it settles, and what a failure costs.

use super::{sorted, InFlight, Own, Pending, SharedSpace, PAST_EPOCHS};
use crate::join::JoinError;
use crate::roster::{RosterEvent, Sequenced};
use crate::shared::calls::StoreOp;
use crate::shared::codec::{ScriptReply, ScriptStatus};
use crate::shared::step::{Note, ResyncReason, SharedStep, StoreFailure};
use crate::time::UnixMillis;
use crate::wire::ClientInfo;
use crate::ConnId;

/// Which record [`SharedSpace::took`] kept for a socket's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Took {
    /// The event's was not a lease of that socket.
    Nothing,
    /// The event's.
    Event,
    /// One the socket's own updates (or an earlier join) made.
    Kept,
}

impl SharedSpace {
    pub(super) fn replied(
        &mut self,
        call: InFlight,
        reply: ScriptReply,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        self.clock.observe(call.sent, now, reply.now);
        out.step.events.extend(reply.events.iter().cloned());
        match call.pending.clone() {
            Pending::Join(conn) => self.join_replied(conn, &call, reply, now, out),
            Pending::Renew(id, conn) | Pending::Update(id, conn) => {
                // A socket closed by a shutdown once its update is stored.
                if self.stopping {
                    self.closed_now(conn, out);
                }
                let ours = self.own.get(&id).is_some_and(|o| o.conn == conn)
                    && self.hub.client_of(conn) == Some(&id);
                if reply.epoch == self.epoch && ours {
                    if reply.status == ScriptStatus::Ok {
                        let end = reply.now.plus(self.config.space.ttl_ms);
                        let own = self.own.get_mut(&id).expect("checked");
                        own.expires_at = own.expires_at.max(end);
                    } else {
                        // The store says our socket holds no lease: either
                        // an event saying so is on its way, or the store
                        // forgot it; a snapshot tells which.
                        self.want_resync(ResyncReason::LeaseMissing);
                    }
                }
                self.absorb(&call, reply, now, out);
            }
            Pending::Leave(conn) => {
                self.closed_now(conn, out);
                self.absorb(&call, reply, now, out);
            }
            Pending::Sweep => {
                self.sweeping = false;
                self.absorb(&call, reply, now, out);
            }
            Pending::Resync => {
                self.resyncing = false;
                self.resynced(&call, reply, now, out);
            }
            Pending::Publish | Pending::Remove => self.absorb(&call, reply, now, out),
        }
    }

    pub(super) fn join_replied(
        &mut self,
        conn: ConnId,
        call: &InFlight,
        reply: ScriptReply,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        if let Some(j) = self.joining.get_mut(&conn) {
            j.sent = false;
        }
        let left = self.deferred.remove(&conn);
        if let Some((id, held)) = left.clone() {
            let last = held.and_then(|state| {
                let event = reply.events.last()?;
                let client = event.event.client();
                (client.id == id).then(|| client.with_state(state))
            });
            let op = StoreOp::Leave {
                id,
                holder: conn,
                last,
            };
            self.call(op, Pending::Leave(conn), now, out);
        }
        let open = self.joining.contains_key(&conn) && self.hub.client_of(conn).is_some();
        if !open && left.is_none() && reply.status == ScriptStatus::Ok && reply.epoch == self.epoch
        {
            // The connection was lost while its join was on its way (its
            // welcome may have come first, by the channel): the lease runs
            // on, and is ours to put back should the store lose it.
            if let Some(last) = reply.events.last() {
                self.took(conn, last, reply.now);
                if let Some(own) = self.own.values_mut().find(|o| o.conn == conn) {
                    own.lost = true;
                }
            }
        }
        // Confirmed once the reply's events are absorbed: one of them may
        // show that the view's history contradicts itself.
        let mut confirm = None;
        if open {
            match reply.status {
                ScriptStatus::Refused => self.refuse(conn, &JoinError::IdHeldByAnother, out),
                ScriptStatus::Full => self.refuse(conn, &JoinError::SpaceFull, out),
                _ => {
                    if let Some(last) = reply.events.last() {
                        if reply.epoch.is_some() && self.is_lost_history(call, &reply.epoch) {
                            // It landed in a history the view has left: the
                            // lease went with it.
                            self.send_join(conn, now, out);
                            return;
                        }
                        let took = self.took(conn, last, reply.now);
                        self.settle_record(conn, last, took, now, out);
                        if self.ready && reply.epoch == self.epoch {
                            confirm = Some(last.seq);
                        } else {
                            self.unconfirmed.push((conn, reply.epoch.clone(), last.seq));
                        }
                    }
                }
            }
        }
        let epoch = reply.epoch.clone();
        self.absorb(call, reply, now, out);
        if let Some(seq) = confirm {
            if self.contradicted() {
                // Settled by the history forced next: sent again there.
                self.unconfirmed.push((conn, epoch, seq));
            } else {
                self.hub.confirm(conn, seq, &mut out.step.outputs);
            }
        }
    }

    /// After a join's reply, the record the socket's lease must have in
    /// the store, sent as one update if the event's differs. Taken as the
    /// event shows it, a resume whose request changes the record (`state=`,
    /// a token with other `info`, `username=`) makes the new one, as
    /// [`crate::Space::join`] does. Kept (the socket updated it since its
    /// welcome came by the channel, or an earlier join of the same socket
    /// made it), it is the latest, and wins over the resume's; sent again
    /// if the store's differs (a repeat of an update on its way: the store
    /// makes no event of it when it lands after that update, as it must,
    /// since one socket's calls run in order).
    fn settle_record(
        &mut self,
        conn: ConnId,
        event: &Sequenced,
        took: Took,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        let new = match (took, &event.event) {
            (Took::Event, RosterEvent::Resumed { client, .. }) => self
                .joining
                .get(&conn)
                .and_then(|j| j.request.resumed_client(client)),
            (
                Took::Kept,
                RosterEvent::Joined { client, .. } | RosterEvent::Resumed { client, .. },
            ) => self
                .own
                .get(&client.id)
                .filter(|own| own.conn == conn && own.client != *client)
                .map(|own| own.client.clone()),
            _ => None,
        };
        let Some(new) = new else {
            return;
        };
        if let Some(own) = self.own.get_mut(&new.id).filter(|o| o.conn == conn) {
            own.client = new.clone();
        }
        let id = new.id.clone();
        let op = StoreOp::Update {
            client: new,
            holder: conn,
            if_changed: true,
        };
        self.call(op, Pending::Update(id, conn), now, out);
    }

    /// Records the lease a join's event gave a socket of ours; says which
    /// record it keeps.
    pub(super) fn took(&mut self, conn: ConnId, event: &Sequenced, store_now: UnixMillis) -> Took {
        let (RosterEvent::Joined { client, holder } | RosterEvent::Resumed { client, holder, .. }) =
            &event.event
        else {
            return Took::Nothing;
        };
        if *holder != conn {
            return Took::Nothing;
        }
        // An update made before this reply is the lease's latest.
        // (A join sent again for a lease this socket took already keeps
        // the record it has: later updates may have changed it.)
        let (took, client) = match self.early.remove(&conn) {
            Some(updated) if updated.same_lease(client) => (Took::Kept, updated),
            _ => match self.own.get(&client.id) {
                Some(own) if own.conn == conn && own.client.same_lease(client) => {
                    (Took::Kept, own.client.clone())
                }
                _ => (Took::Event, client.clone()),
            },
        };
        let previous = self.own.insert(
            client.id.clone(),
            Own {
                conn,
                client,
                expires_at: store_now.plus(self.config.space.ttl_ms),
                lost: false,
            },
        );
        // A fresh lease under an id another socket of ours still holds in
        // the view: the join landed in a history without that lease. The
        // holder's record (with its latest state) is kept aside until this
        // join is confirmed or comes to nothing.
        if let Some(previous) = previous {
            let fresh = matches!(event.event, RosterEvent::Joined { .. });
            if fresh
                && previous.conn != conn
                && self.hub.client_of(previous.conn) == Some(&previous.client.id)
            {
                self.displaced.insert(conn, previous);
            }
        }
        took
    }

    /// Applies a reply's events, snapshot and next expiry to the view, if
    /// they belong to its history; otherwise holds them and resynchronises.
    pub(super) fn absorb(
        &mut self,
        call: &InFlight,
        reply: ScriptReply,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        if self.ready && reply.epoch == self.epoch {
            self.store_seq = self.store_seq.max(reply.seq);
            if let Some(snapshot) = reply.snapshot.filter(|_| !self.contradicted()) {
                self.hub
                    .resync_since(snapshot, reply.seq, None, &mut out.step.outputs);
            }
            for event in reply.events {
                self.apply(event, out);
            }
            self.expect_expiry(reply.next_expiry);
        } else if !self.ready && reply.snapshot.is_some() {
            // The first snapshot: the view adopts its history.
            self.adopt(call, reply, now, out);
        } else if self.is_lost_history(call, &reply.epoch) {
            // Ran in a history the view has since left: nothing to learn.
        } else {
            if let Some(epoch) = reply.epoch.clone() {
                for event in reply.events {
                    self.hold_foreign(epoch.clone(), event);
                }
            }
            if self.ready {
                self.want_resync(ResyncReason::History);
            }
        }
    }

    pub(super) fn resynced(
        &mut self,
        call: &InFlight,
        reply: ScriptReply,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        if reply.snapshot.is_none() {
            return;
        }
        let reasserted = reply
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e.event,
                    RosterEvent::Joined { .. } | RosterEvent::Resumed { .. }
                )
            })
            .count();
        if self.contradicted() && reply.epoch == self.epoch {
            // Of the history that contradicted itself: the one forced next
            // settles everything (see `SharedSpace::contradicted`).
            self.store_seq = self.store_seq.max(reply.seq);
            self.expect_expiry(reply.next_expiry);
        } else if self.ready && reply.epoch == self.epoch {
            let snapshot = reply.snapshot.expect("checked");
            self.store_seq = self.store_seq.max(reply.seq);
            if reply.seq < self.hub.applied() {
                // Events newer than the snapshot overtook it, or the store
                // went back and they are of a lost history: asked again
                // with what the view has seen now, the store either shows
                // a newer snapshot or finds itself behind and begins a new
                // history.
                self.want_resync(ResyncReason::Behind);
            }
            self.hub.resync_since(
                snapshot,
                reply.seq,
                Some(call.hub_mark),
                &mut out.step.outputs,
            );
            let mark = call.arrivals;
            self.foreign.retain(|(arrival, _, _)| *arrival > mark);
            self.expect_expiry(reply.next_expiry);
            if !self.foreign.is_empty() {
                self.want_resync(ResyncReason::History);
            }
            self.settle_joins(now, out);
        } else {
            let from = call.epoch.clone();
            let to = reply.epoch.clone();
            self.adopt(call, reply, now, out);
            out.notes.push(Note::HistoryChanged {
                from,
                to,
                reasserted,
            });
        }
        if !self.contradicted() {
            self.reassert_states(now, out);
        }
    }

    /// After a resync: a lease of ours whose record in the store lags the
    /// one this instance holds (an update that found the lease gone while
    /// the store was losing it, and a lease put back from an older record)
    /// is sent its record again, as one update: the latest state is never
    /// lost. (An update still on its way makes it a repeat: landing after
    /// that update, it finds the record the same, and the store makes no
    /// event of it.)
    fn reassert_states(&mut self, now: UnixMillis, out: &mut SharedStep) {
        let mut lagging: Vec<(ConnId, ClientInfo)> = self
            .own
            .values()
            .filter(|own| {
                self.hub
                    .viewed(&own.client.id)
                    .is_some_and(|seen| seen.same_lease(&own.client) && *seen != own.client)
            })
            .map(|own| (own.conn, own.client.clone()))
            .collect();
        lagging.sort_by_key(|(conn, _)| *conn);
        for (conn, client) in lagging {
            let id = client.id.clone();
            let op = StoreOp::Update {
                client,
                holder: conn,
                if_changed: true,
            };
            self.call(op, Pending::Update(id, conn), now, out);
        }
    }

    /// Moves the view to the history of `reply` (which has a snapshot):
    /// applies the events of that history held meanwhile, settles the joins
    /// confirmed in it, and sends again those that landed elsewhere.
    pub(super) fn adopt(
        &mut self,
        call: &InFlight,
        reply: ScriptReply,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        let snapshot = reply.snapshot.expect("adopted replies carry a snapshot");
        if let Some(old) = self.epoch.take() {
            if Some(&old) != reply.epoch.as_ref() {
                self.past.push_back(old);
                if self.past.len() > PAST_EPOCHS {
                    self.past.pop_front();
                }
            }
        }
        self.past.retain(|p| Some(p) != reply.epoch.as_ref());
        self.epoch = reply.epoch.clone();
        self.ready = true;
        self.gap_since = None;
        self.store_seq = reply.seq;
        self.force_new_history = false;
        self.hub.rebase(snapshot, reply.seq, &mut out.step.outputs);
        let held = std::mem::take(&mut self.foreign);
        let mut stale = false;
        for (arrival, epoch, event) in held {
            if Some(&epoch) == self.epoch.as_ref() {
                if event.seq > reply.seq {
                    self.note_lease_start(&event.event, now);
                    self.apply(event, out);
                }
            } else if arrival > call.arrivals {
                // Newer than the snapshot: yet another history (or late
                // events of one left behind).
                stale |= !self.past.contains(&epoch);
                self.foreign.push_back((arrival, epoch, event));
            }
        }
        let reset = self
            .reset_seen
            .take()
            .is_some_and(|e| !self.is_current_or_past(&Some(e)));
        if stale || reset || std::mem::take(&mut self.foreign_overflowed) {
            self.want_resync(ResyncReason::History);
        }
        self.next_sweep = None;
        self.expect_expiry(reply.next_expiry);
        self.settle_joins(now, out);
    }

    /// After a snapshot of the store's current history: the joins it took
    /// in that history are confirmed; those it took in another (a history
    /// lost since, or one this view never knew) are sent again. A join is
    /// idempotent: sent again, a lease that did survive is resumed.
    pub(super) fn settle_joins(&mut self, now: UnixMillis, out: &mut SharedStep) {
        let mut retry = Vec::new();
        for (conn, epoch, seq) in std::mem::take(&mut self.unconfirmed) {
            if epoch == self.epoch {
                self.hub.confirm(conn, seq, &mut out.step.outputs);
            } else {
                retry.push(conn);
            }
        }
        for conn in sorted(retry) {
            if self.hub.client_of(conn).is_some() {
                self.send_join(conn, now, out);
            }
        }
    }

    pub(super) fn failed(
        &mut self,
        call: InFlight,
        failure: StoreFailure,
        now: UnixMillis,
        out: &mut SharedStep,
    ) {
        let what = match call.pending {
            Pending::Join(conn) => {
                if let Some((id, _)) = self.deferred.remove(&conn) {
                    // It may have landed before the failure was seen.
                    self.call(
                        StoreOp::Leave {
                            id,
                            holder: conn,
                            last: None,
                        },
                        Pending::Leave(conn),
                        now,
                        out,
                    );
                }
                if self.joining.contains_key(&conn) && self.hub.client_of(conn).is_some() {
                    self.refuse(conn, &JoinError::StoreUnavailable, out);
                }
                "join"
            }
            Pending::Renew(_, conn) => {
                if self.stopping {
                    self.closed_now(conn, out);
                }
                "renew"
            }
            Pending::Update(_, conn) => {
                if self.stopping {
                    self.closed_now(conn, out);
                } else {
                    // Stored or not, a snapshot tells; a record of ours
                    // that lags is then sent again (the latest state is
                    // never lost).
                    self.want_resync(ResyncReason::UpdateFailed);
                }
                "update"
            }
            Pending::Leave(conn) => {
                self.closed_now(conn, out);
                "leave"
            }
            Pending::Sweep => {
                self.sweeping = false;
                self.sweep_not_before = now.plus(self.config.retry_ms);
                "sweep"
            }
            Pending::Resync => {
                self.resyncing = false;
                self.resync_not_before = now.plus(self.config.retry_ms);
                self.resync_wanted.get_or_insert(ResyncReason::Resubscribed);
                "resync"
            }
            Pending::Publish => "publish",
            Pending::Remove => "remove",
        };
        out.notes.push(Note::CallFailed(what, failure));
    }
}
