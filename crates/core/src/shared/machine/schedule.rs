//! What is due when: every input ends with [`SharedSpace::finish`], which
//! refuses joins that waited too long for the subscription, notices gaps,
//! and sends the resyncs and sweeps whose time has come.

use super::{sorted, Pending, SharedSpace};
use crate::roster::RosterEvent;
use crate::shared::calls::StoreOp;
use crate::shared::step::{Note, ResyncReason, SharedStep, Subscription};
use crate::time::UnixMillis;
use crate::ConnId;

impl SharedSpace {
    /// Does what is due at `now`: refuses joins that waited too long for
    /// the subscription, notices gaps, resynchronises, sweeps; then forgets
    /// what belongs to sockets that are gone.
    pub(super) fn finish(&mut self, now: UnixMillis, out: &mut SharedStep) {
        let expired: Vec<ConnId> = self
            .joining
            .iter()
            .filter(|(_, j)| {
                j.waiting_since
                    .is_some_and(|s| now >= s.plus(self.config.subscribe_wait_ms))
            })
            .map(|(c, _)| *c)
            .collect();
        for conn in sorted(expired) {
            self.refuse_unavailable(conn, out);
        }
        if self.ready && self.hub.contradicted() && !self.force_new_history {
            self.force_new_history = true;
            self.resync_wanted = Some(ResyncReason::Contradicted);
        }
        // A gap: events held back behind a missing one, or replies that
        // told of events that never arrived (the last ones lost).
        if self.ready && (self.hub.has_gap() || self.store_seq > self.hub.applied()) {
            let since = *self.gap_since.get_or_insert(now);
            if self.hub.overflowed() {
                self.want_resync(ResyncReason::Overflow);
            } else if now >= since.plus(self.config.gap_patience_ms) {
                self.want_resync(ResyncReason::Gap);
            }
        } else {
            self.gap_since = None;
        }
        if let Some(reason) = self.resync_wanted {
            if self.can_resync() && now >= self.resync_not_before {
                self.resync_wanted = None;
                self.gap_since = None;
                out.notes.push(Note::Resync(reason));
                let known = self.known();
                self.resyncing = true;
                self.call(StoreOp::Resync { known }, Pending::Resync, now, out);
                if self.force_new_history {
                    // Evidence beyond any sequence number the store has: it
                    // begins a new history.
                    let call = out.calls.last_mut().expect("just made");
                    call.history.seen = u64::MAX;
                }
            }
        }
        if self.sweep_due().is_some_and(|due| now >= due) {
            self.sweeping = true;
            self.next_sweep = None;
            self.sweep_not_before = now.plus(self.config.sweep_spacing_ms);
            self.call(StoreOp::Sweep, Pending::Sweep, now, out);
        }
        let hub = &self.hub;
        let store_now = self.clock.store_time(now);
        self.joining
            .retain(|conn, _| hub.client_of(*conn).is_some());
        self.own.retain(|id, own| {
            hub.client_of(own.conn) == Some(id)
                || (own.lost && own.expires_at > store_now && hub.viewed(id) == Some(&own.client))
        });
        self.unconfirmed
            .retain(|(conn, _, _)| hub.client_of(*conn).is_some());
        self.restore_displaced();
    }

    /// Puts back the records displaced by joiners that went while the
    /// socket they displaced still holds the lease (see
    /// `SharedSpace::displaced`); a snapshot then tells whether the store
    /// lags them, and they are sent again if so.
    fn restore_displaced(&mut self) {
        let mut back = Vec::new();
        self.displaced.retain(|joiner, old| {
            let id = &old.client.id;
            if self.hub.client_of(old.conn) != Some(id) {
                return false;
            }
            if self.hub.client_of(*joiner) == Some(id) {
                return true;
            }
            back.push((*joiner, old.clone()));
            false
        });
        for (joiner, old) in back {
            let id = old.client.id.clone();
            if self.own.get(&id).is_none_or(|o| o.conn == joiner) {
                self.own.insert(id, old);
                self.want_resync(ResyncReason::LeaseMissing);
            }
        }
    }

    pub(super) fn can_resync(&self) -> bool {
        self.ready
            && !self.resyncing
            && !self.stopping
            && self.subscription == Some(Subscription::Confirmed)
    }

    pub(super) fn sweep_due(&self) -> Option<UnixMillis> {
        if !self.ready
            || self.sweeping
            || self.stopping
            || self.subscription == Some(Subscription::Unavailable)
        {
            return None;
        }
        let next = self.next_sweep?;
        // A hair after the lease's end by the store's clock, however far
        // the estimate may be off.
        let local = self.clock.local_time(next);
        let slack = self.clock.uncertainty_ms(local).saturating_add(1);
        Some(local.plus(slack).max(self.sweep_not_before))
    }

    pub(super) fn want_resync(&mut self, reason: ResyncReason) {
        self.resync_wanted.get_or_insert(reason);
    }

    pub(super) fn expect_expiry(&mut self, at: Option<UnixMillis>) {
        if let Some(at) = at {
            self.next_sweep = Some(self.next_sweep.map_or(at, |n| n.min(at)));
        }
    }

    /// A lease that began just now ends a TTL from now (a placeholder
    /// sooner): the sweep must not wait for a reply that another instance
    /// got.
    pub(super) fn note_lease_start(&mut self, event: &RosterEvent, now: UnixMillis) {
        let length = match event {
            RosterEvent::Joined { holder, .. } if holder.0 == 0 => self.config.placeholder_ms,
            RosterEvent::Joined { .. } | RosterEvent::Resumed { .. } => self.config.space.ttl_ms,
            RosterEvent::Updated { .. } | RosterEvent::Left { .. } => return,
        };
        let end = self.clock.store_time(now).plus(length);
        self.expect_expiry(Some(end));
    }
}
