//! The authoritative roster of one space: leases, and the events every
//! change to them produces (sections 3 to 5).

use std::collections::{BTreeSet, HashMap};

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::join::JoinError;
use crate::time::UnixMillis;
use crate::wire::ClientInfo;

/// A client's presence: who, since when, until when, and through which
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The client as others see it.
    pub client: ClientInfo,
    /// The connection that holds it now.
    pub holder: ConnId,
    /// The first instant at which the lease is no longer alive.
    pub expires_at: UnixMillis,
}

impl Lease {
    /// Alive strictly before `expires_at`; expired from it on.
    pub fn is_alive(&self, now: UnixMillis) -> bool {
        now < self.expires_at
    }
}

/// Why a lease ended: the `reason` of a `remote leave` (section 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveCause {
    /// A clean close, or a close for a protocol violation (`left`).
    Closed,
    /// Not renewed within the TTL (`expired`).
    Expired,
    /// Ended by the server API (`removed`, section 14).
    Removed,
}

impl LeaveCause {
    /// The wire's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            LeaveCause::Closed => "left",
            LeaveCause::Expired => "expired",
            LeaveCause::Removed => "removed",
        }
    }
}

/// A change to the roster that clients must hear about (renewals are not
/// events: nobody sees them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RosterEvent {
    /// A new lease.
    Joined {
        /// The new client.
        client: ClientInfo,
        /// Its connection.
        holder: ConnId,
    },
    /// A live lease taken over by a new connection of the same identity.
    Resumed {
        /// The client, with its original `joinedAt`.
        client: ClientInfo,
        /// The new connection.
        holder: ConnId,
        /// The connection it replaces (closed with 4001 if still open).
        replaced: ConnId,
    },
    /// A live lease's client record changed (its state; after a resume,
    /// its info or username): everyone else gets `remote update`.
    Updated {
        /// The client as it is now.
        client: ClientInfo,
        /// The connection that holds the lease.
        holder: ConnId,
    },
    /// A lease ended.
    Left {
        /// The client that left.
        client: ClientInfo,
        /// The connection that held it.
        holder: ConnId,
        /// Closed or expired.
        cause: LeaveCause,
    },
}

impl RosterEvent {
    /// The client the event is about.
    pub fn client(&self) -> &ClientInfo {
        match self {
            RosterEvent::Joined { client, .. }
            | RosterEvent::Resumed { client, .. }
            | RosterEvent::Updated { client, .. }
            | RosterEvent::Left { client, .. } => client,
        }
    }
}

/// An event with its position in the space's history, so that a hub fed
/// over an unreliable channel can tell a gap from a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced {
    /// 1 for the first event of a space, then one more per event.
    pub seq: u64,
    /// What happened.
    pub event: RosterEvent,
}

/// The leases of one space. Every method takes the time; none reads a clock.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    /// Boxed: a map keeps room for up to twice the entries it holds, and a
    /// lease inline (about 150 B) made every idle socket pay for that room
    /// too; boxed, the spare room is a pointer per entry (BENCHMARKS.md,
    /// "Where the memory goes").
    leases: HashMap<ClientId, Box<Lease>>,
    deadlines: BTreeSet<(UnixMillis, ClientId)>,
    seq: u64,
}

impl Roster {
    /// An empty roster at sequence 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a roster from stored leases (a restarted Durable Object).
    pub fn restore(leases: impl IntoIterator<Item = Lease>, seq: u64) -> Self {
        let mut roster = Roster {
            seq,
            ..Roster::default()
        };
        for lease in leases {
            roster.insert(lease);
        }
        roster
    }

    /// Starts or resumes the lease `id` for `identity` on connection
    /// `holder`, alive until `now + ttl_ms`. A live lease of another identity
    /// refuses the join and changes nothing.
    pub fn join(
        &mut self,
        identity: &str,
        id: ClientId,
        holder: ConnId,
        now: UnixMillis,
        ttl_ms: u64,
    ) -> Result<Vec<Sequenced>, JoinError> {
        self.join_limited(identity, id, holder, now, ttl_ms, None)
    }

    /// [`Roster::join`] in a space of at most `max_clients` leases: a new
    /// lease beyond it is refused with [`JoinError::SpaceFull`] and changes
    /// nothing. Resuming a live lease is always allowed (it adds no one).
    /// Call after [`Roster::sweep`], so expired leases do not count.
    pub fn join_limited(
        &mut self,
        identity: &str,
        id: ClientId,
        holder: ConnId,
        now: UnixMillis,
        ttl_ms: u64,
        max_clients: Option<usize>,
    ) -> Result<Vec<Sequenced>, JoinError> {
        let fresh = ClientInfo::new(id, identity, now);
        self.admit(fresh, holder, now, ttl_ms, max_clients)
    }

    /// [`Roster::join_limited`] for a client record made by the caller
    /// (with its username, info and state; `joinedAt` is set to `now`). A
    /// resume keeps the stored record as it is: a caller that wants it
    /// changed (a resume with `state=`, a token with other `info`) follows
    /// with [`Roster::update`], as the shared store's scripts do.
    pub fn admit(
        &mut self,
        fresh: ClientInfo,
        holder: ConnId,
        now: UnixMillis,
        ttl_ms: u64,
        max_clients: Option<usize>,
    ) -> Result<Vec<Sequenced>, JoinError> {
        let id = fresh.id.clone();
        let identity = fresh.identity.as_str();
        let expires_at = now.plus(ttl_ms);
        let mut events = Vec::new();
        if let Some(lease) = self.leases.get(&id) {
            if lease.is_alive(now) {
                if lease.client.identity != identity {
                    return Err(JoinError::IdHeldByAnother);
                }
                let mut lease = self.remove(&id).expect("present");
                let replaced = lease.holder;
                lease.holder = holder;
                lease.expires_at = expires_at;
                let client = lease.client.clone();
                self.insert(lease);
                events.push(self.next(RosterEvent::Resumed {
                    client,
                    holder,
                    replaced,
                }));
                return Ok(events);
            }
            if self.full(max_clients, now) {
                return Err(JoinError::SpaceFull);
            }
            let old = self.remove(&id).expect("present");
            events.push(self.next(RosterEvent::Left {
                client: old.client,
                holder: old.holder,
                cause: LeaveCause::Expired,
            }));
        }
        if events.is_empty() && self.full(max_clients, now) {
            return Err(JoinError::SpaceFull);
        }
        let client = ClientInfo {
            joined_at: now,
            ..fresh
        };
        self.insert(Lease {
            client: client.clone(),
            holder,
            expires_at,
        });
        events.push(self.next(RosterEvent::Joined { client, holder }));
        Ok(events)
    }

    /// Extends a live lease held by `holder`; false if there is none (it
    /// expired, or another connection holds it now).
    pub fn renew(&mut self, id: &ClientId, holder: ConnId, now: UnixMillis, ttl_ms: u64) -> bool {
        self.leases.get(id).is_some_and(|lease| lease.is_alive(now))
            && self.renew_unswept(id, holder, now, ttl_ms)
    }

    /// Extends the lease held by `holder` as of `at` if it has not been
    /// swept yet, alive at `at` or not. For a target that learns only of a
    /// connection's latest ping, and only when it wakes: a ping answered
    /// after the lease's end but before a (late) sweep means the client kept
    /// pinging, so it must not be expired for the target's lateness.
    pub fn renew_unswept(
        &mut self,
        id: &ClientId,
        holder: ConnId,
        at: UnixMillis,
        ttl_ms: u64,
    ) -> bool {
        match self.leases.get(id) {
            Some(lease) if lease.holder == holder => {
                let mut lease = self.remove(id).expect("present");
                lease.expires_at = lease.expires_at.max(at.plus(ttl_ms));
                self.insert(lease);
                true
            }
            _ => false,
        }
    }

    /// Replaces the client record of the live lease held by `holder` and
    /// renews it, like a ping (an update renews the lease). `None` if there
    /// is no such lease (it expired, or another connection holds it now).
    /// The record is taken as given: the holder's side knows it.
    pub fn update(
        &mut self,
        client: ClientInfo,
        holder: ConnId,
        now: UnixMillis,
        ttl_ms: u64,
    ) -> Option<Sequenced> {
        let id = client.id.clone();
        if !self.renew(&id, holder, now, ttl_ms) {
            return None;
        }
        self.leases.get_mut(&id).expect("renewed").client = client.clone();
        Some(self.next(RosterEvent::Updated { client, holder }))
    }

    /// Ends the lease `id` at once if `holder` still holds it (a clean
    /// close); a replaced connection's close ends nothing.
    pub fn leave(&mut self, id: &ClientId, holder: ConnId) -> Option<Sequenced> {
        self.leave_with(id, holder, None)
    }

    /// [`Roster::leave`], the leaving client shown as `last` (its latest
    /// state, held back by coalescing, flushed into the leave) if given.
    pub fn leave_with(
        &mut self,
        id: &ClientId,
        holder: ConnId,
        last: Option<ClientInfo>,
    ) -> Option<Sequenced> {
        if self.leases.get(id)?.holder != holder {
            return None;
        }
        let lease = self.remove(id).expect("present");
        Some(self.next(RosterEvent::Left {
            client: last.unwrap_or(lease.client),
            holder: lease.holder,
            cause: LeaveCause::Closed,
        }))
    }

    /// Ends the lease `id` now, whoever holds it (the server API).
    pub fn remove_client(&mut self, id: &ClientId) -> Option<Sequenced> {
        let lease = self.remove(id)?;
        Some(self.next(RosterEvent::Left {
            client: lease.client,
            holder: lease.holder,
            cause: LeaveCause::Removed,
        }))
    }

    /// Ends every lease of `identity` now (the server API), earliest
    /// joined first.
    pub fn remove_identity(&mut self, identity: &str) -> Vec<Sequenced> {
        let mut ids: Vec<(UnixMillis, ClientId)> = self
            .leases
            .values()
            .filter(|l| l.client.identity == identity)
            .map(|l| (l.client.joined_at, l.client.id.clone()))
            .collect();
        ids.sort();
        ids.into_iter()
            .filter_map(|(_, id)| self.remove_client(&id))
            .collect()
    }

    /// Ends every lease that is no longer alive at `now`, earliest first.
    pub fn sweep(&mut self, now: UnixMillis) -> Vec<Sequenced> {
        let mut events = Vec::new();
        while let Some((at, id)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            let lease = self.remove(&id).expect("deadline without lease");
            events.push(self.next(RosterEvent::Left {
                client: lease.client,
                holder: lease.holder,
                cause: LeaveCause::Expired,
            }));
        }
        events
    }

    /// The leases that run out at or before `by`, earliest first: the ones
    /// a sweep at `by` would end. Costs the number of them, not the
    /// roster's size.
    pub fn due_by(&self, by: UnixMillis) -> impl Iterator<Item = &Lease> {
        self.deadlines
            .iter()
            .take_while(move |(at, _)| *at <= by)
            .map(|(_, id)| &*self.leases[id])
    }

    /// When the next lease runs out: the time to run [`Roster::sweep`].
    pub fn next_expiry(&self) -> Option<UnixMillis> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The lease for `id`, alive or not yet swept.
    pub fn get(&self, id: &ClientId) -> Option<&Lease> {
        self.leases.get(id).map(|l| &**l)
    }

    /// Every lease, in no particular order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values().map(|l| &**l)
    }

    /// How many leases there are.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// The sequence number of the last event.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether a new lease would exceed `max_clients`, counting live leases
    /// only (an expired one not yet swept is no one).
    fn full(&self, max_clients: Option<usize>, now: UnixMillis) -> bool {
        let Some(max) = max_clients else {
            return false;
        };
        let live = self.leases.values().filter(|l| l.is_alive(now)).count();
        live >= max
    }

    fn next(&mut self, event: RosterEvent) -> Sequenced {
        self.seq += 1;
        Sequenced {
            seq: self.seq,
            event,
        }
    }

    fn insert(&mut self, lease: Lease) {
        self.deadlines
            .insert((lease.expires_at, lease.client.id.clone()));
        self.leases.insert(lease.client.id.clone(), Box::new(lease));
    }

    fn remove(&mut self, id: &ClientId) -> Option<Lease> {
        let lease = self.leases.remove(id)?;
        self.deadlines.remove(&(lease.expires_at, id.clone()));
        Some(*lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 1000;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn join_then_resume_keeps_joined_at_and_renews() {
        let mut r = Roster::new();
        let ev = r
            .join("a", id("x"), ConnId(1), UnixMillis(100), TTL)
            .unwrap();
        assert!(matches!(
            &ev[..],
            [Sequenced {
                seq: 1,
                event: RosterEvent::Joined {
                    holder: ConnId(1),
                    ..
                }
            }]
        ));
        let ev = r
            .join("a", id("x"), ConnId(2), UnixMillis(900), TTL)
            .unwrap();
        match &ev[..] {
            [Sequenced {
                seq: 2,
                event:
                    RosterEvent::Resumed {
                        client,
                        holder,
                        replaced,
                    },
            }] => {
                assert_eq!(client.joined_at, UnixMillis(100));
                assert_eq!((*holder, *replaced), (ConnId(2), ConnId(1)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.next_expiry(), Some(UnixMillis(1900)));
    }

    #[test]
    fn another_identity_cannot_take_a_live_lease() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        assert_eq!(
            r.join("b", id("x"), ConnId(2), UnixMillis(999), TTL),
            Err(JoinError::IdHeldByAnother)
        );
        assert_eq!(r.get(&id("x")).unwrap().holder, ConnId(1));
        assert_eq!(r.seq(), 1);
    }

    #[test]
    fn an_expired_lease_is_an_ordinary_join_whoever_asks() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        let ev = r
            .join("b", id("x"), ConnId(2), UnixMillis(1000), TTL)
            .unwrap();
        assert!(matches!(
            &ev[0].event,
            RosterEvent::Left {
                cause: LeaveCause::Expired,
                holder: ConnId(1),
                ..
            }
        ));
        match &ev[1].event {
            RosterEvent::Joined { client, .. } => {
                assert_eq!(client.identity, "b");
                assert_eq!(client.joined_at, UnixMillis(1000));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn renew_only_by_the_holder_and_only_while_alive() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        assert!(!r.renew(&id("x"), ConnId(2), UnixMillis(10), TTL));
        assert!(r.renew(&id("x"), ConnId(1), UnixMillis(999), TTL));
        assert_eq!(r.next_expiry(), Some(UnixMillis(1999)));
        assert!(!r.renew(&id("x"), ConnId(1), UnixMillis(1999), TTL));
        assert!(!r.renew(&id("nobody"), ConnId(1), UnixMillis(0), TTL));
    }

    #[test]
    fn leave_only_by_the_holder() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        r.join("a", id("x"), ConnId(2), UnixMillis(1), TTL).unwrap();
        assert_eq!(r.leave(&id("x"), ConnId(1)), None);
        let left = r.leave(&id("x"), ConnId(2)).unwrap();
        assert!(matches!(
            left.event,
            RosterEvent::Left {
                cause: LeaveCause::Closed,
                ..
            }
        ));
        assert!(r.is_empty());
        assert_eq!(r.next_expiry(), None);
    }

    #[test]
    fn sweep_is_never_early() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        r.join("b", id("y"), ConnId(2), UnixMillis(500), TTL)
            .unwrap();
        assert!(r.sweep(UnixMillis(999)).is_empty());
        let ev = r.sweep(UnixMillis(1000));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event.client().id, id("x"));
        assert_eq!(r.next_expiry(), Some(UnixMillis(1500)));
        assert_eq!(r.sweep(UnixMillis(5000)).len(), 1);
        assert!(r.is_empty());
    }

    #[test]
    fn due_by_lists_what_a_sweep_would_end_earliest_first() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        r.join("b", id("y"), ConnId(2), UnixMillis(300), TTL)
            .unwrap();
        r.join("c", id("z"), ConnId(3), UnixMillis(100), TTL)
            .unwrap();
        let due = |r: &Roster, by| -> Vec<ConnId> {
            r.due_by(UnixMillis(by)).map(|l| l.holder).collect()
        };
        assert!(due(&r, 999).is_empty());
        assert_eq!(due(&r, 1000), vec![ConnId(1)]);
        assert_eq!(due(&r, 1300), vec![ConnId(1), ConnId(3), ConnId(2)]);
        // A renewal moves a lease out of the window.
        r.renew(&id("x"), ConnId(1), UnixMillis(500), TTL);
        assert_eq!(due(&r, 1300), vec![ConnId(3), ConnId(2)]);
        let swept: Vec<ConnId> = r
            .sweep(UnixMillis(1300))
            .into_iter()
            .map(|e| match e.event {
                RosterEvent::Left { holder, .. } => holder,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(swept, vec![ConnId(3), ConnId(2)]);
    }

    #[test]
    fn a_full_space_refuses_new_leases_but_not_resumes() {
        let mut r = Roster::new();
        let max = Some(2);
        r.join_limited("a", id("x"), ConnId(1), UnixMillis(0), TTL, max)
            .unwrap();
        r.join_limited("b", id("y"), ConnId(2), UnixMillis(0), TTL, max)
            .unwrap();
        assert_eq!(
            r.join_limited("c", id("z"), ConnId(3), UnixMillis(1), TTL, max),
            Err(JoinError::SpaceFull)
        );
        assert_eq!(r.seq(), 2, "a refused join changes nothing");
        // A resume of a live lease adds no one.
        let ev = r
            .join_limited("a", id("x"), ConnId(4), UnixMillis(2), TTL, max)
            .unwrap();
        assert!(matches!(ev[0].event, RosterEvent::Resumed { .. }));
        // An expired lease (not yet swept) is no one: its id may be taken.
        r.renew(&id("y"), ConnId(2), UnixMillis(500), TTL);
        let ev = r
            .join_limited("c", id("x"), ConnId(5), UnixMillis(1002), TTL, max)
            .unwrap();
        assert_eq!(ev.len(), 2);
        assert!(r.leave(&id("y"), ConnId(2)).is_some());
        assert!(r
            .join_limited("d", id("w"), ConnId(6), UnixMillis(1003), TTL, max)
            .is_ok());
        assert_eq!(JoinError::SpaceFull.to_string(), "Space is full");
        assert_eq!(
            JoinError::SpaceFull.close_code(),
            crate::CloseCode::TryAgainLater
        );
    }

    #[test]
    fn update_replaces_the_record_renews_and_is_sequenced() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        let state = crate::Json::object(r#"{"s":1}"#).unwrap();
        let record = r.get(&id("x")).unwrap().client.with_state(Some(state));
        assert_eq!(
            r.update(record.clone(), ConnId(2), UnixMillis(10), TTL),
            None
        );
        let ev = r
            .update(record.clone(), ConnId(1), UnixMillis(500), TTL)
            .unwrap();
        assert_eq!(ev.seq, 2);
        assert_eq!(
            ev.event,
            RosterEvent::Updated {
                client: record.clone(),
                holder: ConnId(1)
            }
        );
        assert_eq!(r.next_expiry(), Some(UnixMillis(1500)));
        assert_eq!(r.get(&id("x")).unwrap().client, record);
        // A resume keeps the state; an expired lease takes no update.
        let ev = r
            .join("a", id("x"), ConnId(3), UnixMillis(600), TTL)
            .unwrap();
        assert_eq!(ev[0].event.client(), &record);
        assert_eq!(r.update(record, ConnId(3), UnixMillis(1600), TTL), None);
    }

    #[test]
    fn a_leave_carries_the_last_record_and_removal_its_cause() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        r.join("a", id("y"), ConnId(2), UnixMillis(1), TTL).unwrap();
        r.join("b", id("z"), ConnId(3), UnixMillis(2), TTL).unwrap();
        let last = r
            .get(&id("z"))
            .unwrap()
            .client
            .with_state(crate::Json::object("{}").ok());
        let ev = r
            .leave_with(&id("z"), ConnId(3), Some(last.clone()))
            .unwrap();
        assert_eq!(ev.event.client(), &last);
        let ev = r.remove_identity("a");
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(
            e.event,
            RosterEvent::Left {
                cause: LeaveCause::Removed,
                ..
            }
        )));
        assert_eq!(ev[0].event.client().id, id("x"));
        assert!(r.is_empty());
        assert_eq!(r.remove_client(&id("x")), None);
    }

    #[test]
    fn restore_keeps_sequence_and_deadlines() {
        let mut r = Roster::new();
        r.join("a", id("x"), ConnId(1), UnixMillis(0), TTL).unwrap();
        let copy = Roster::restore(r.leases().cloned(), r.seq());
        assert_eq!(copy.seq(), 1);
        assert_eq!(copy.next_expiry(), Some(UnixMillis(1000)));
    }
}
