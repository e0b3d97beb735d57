//! Members of one space: how many leases each identity holds, kept up to
//! date from the roster's events (never by scanning the roster), so that
//! an identity's first and last lease, and the space's, are known at once.

use std::collections::HashMap;

use super::event::{EventType, WebhookEvent};
use crate::roster::RosterEvent;
use crate::time::UnixMillis;

/// Lease counts by identity in one space, and their total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberCounts {
    by_identity: HashMap<String, u32>,
    total: u32,
}

impl MemberCounts {
    /// No members.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts of a stored roster (a restarted Durable Object): one
    /// identity per lease.
    pub fn from_identities<'a>(identities: impl IntoIterator<Item = &'a str>) -> Self {
        let mut counts = Self::new();
        for identity in identities {
            counts.add(identity);
        }
        counts
    }

    /// Leases `identity` holds.
    pub fn leases_of(&self, identity: &str) -> u32 {
        self.by_identity.get(identity).copied().unwrap_or(0)
    }

    /// Leases in the space.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Counts `event` and returns the member events it makes, in order
    /// (`space.occupied` before the first `member.joined`, `space.vacated`
    /// after the last `member.left`). A resume makes none; so does a leave
    /// of a lease these counts never saw begin. `fresh_id` names each event.
    pub fn observe(
        &mut self,
        space: &str,
        event: &RosterEvent,
        at: UnixMillis,
        mut fresh_id: impl FnMut() -> String,
    ) -> Vec<WebhookEvent> {
        let mut out = Vec::new();
        let mut make = |kind, identity: Option<&str>, reason: Option<&str>| WebhookEvent {
            id: fresh_id(),
            kind,
            space: space.to_owned(),
            identity: identity.map(str::to_owned),
            reason: reason.map(str::to_owned),
            at,
        };
        match event {
            RosterEvent::Joined { client, .. } => {
                let identity = client.identity.as_str();
                if self.total == 0 {
                    out.push(make(EventType::SpaceOccupied, None, None));
                }
                if self.add(identity) == 1 {
                    out.push(make(EventType::MemberJoined, Some(identity), None));
                }
            }
            RosterEvent::Left { client, cause, .. } => {
                let identity = client.identity.as_str();
                if let Some(left) = self.remove(identity) {
                    if left == 0 {
                        let reason = cause.reason();
                        out.push(make(EventType::MemberLeft, Some(identity), Some(reason)));
                    }
                    if self.total == 0 {
                        out.push(make(EventType::SpaceVacated, None, None));
                    }
                }
            }
            // A resume (a 4001 replacement included) and a state update
            // change no member.
            RosterEvent::Resumed { .. } | RosterEvent::Updated { .. } => {}
        }
        out
    }

    fn add(&mut self, identity: &str) -> u32 {
        self.total += 1;
        let n = self.by_identity.entry(identity.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// The identity's count after removing one lease; `None` if it held
    /// none.
    fn remove(&mut self, identity: &str) -> Option<u32> {
        let n = self.by_identity.get_mut(identity)?;
        *n -= 1;
        let left = *n;
        if left == 0 {
            self.by_identity.remove(identity);
        }
        self.total -= 1;
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientId, ClientInfo, ConnId, LeaveCause};

    fn client(id: &str, identity: &str) -> ClientInfo {
        ClientInfo::new(ClientId::parse(id).unwrap(), identity, UnixMillis(5))
    }

    fn joined(id: &str, identity: &str) -> RosterEvent {
        RosterEvent::Joined {
            client: client(id, identity),
            holder: ConnId(1),
        }
    }

    fn left(id: &str, identity: &str, cause: LeaveCause) -> RosterEvent {
        RosterEvent::Left {
            client: client(id, identity),
            holder: ConnId(1),
            cause,
        }
    }

    fn kinds(counts: &mut MemberCounts, event: RosterEvent) -> Vec<(EventType, Option<String>)> {
        let mut n = 0;
        counts
            .observe("s", &event, UnixMillis(9), || {
                n += 1;
                format!("e{n}")
            })
            .into_iter()
            .map(|e| (e.kind, e.reason))
            .collect()
    }

    #[test]
    fn first_lease_occupies_and_joins_last_lease_leaves_and_vacates() {
        let mut c = MemberCounts::new();
        assert_eq!(
            kinds(&mut c, joined("a", "ann")),
            [
                (EventType::SpaceOccupied, None),
                (EventType::MemberJoined, None)
            ]
        );
        assert_eq!(
            kinds(&mut c, left("a", "ann", LeaveCause::Expired)),
            [
                (EventType::MemberLeft, Some("expired".into())),
                (EventType::SpaceVacated, None)
            ]
        );
        assert_eq!(c, MemberCounts::new());
    }

    #[test]
    fn a_second_tab_makes_no_event_until_the_last_one_leaves() {
        let mut c = MemberCounts::new();
        kinds(&mut c, joined("a", "ann"));
        assert_eq!(kinds(&mut c, joined("b", "ann")), []);
        assert_eq!(c.leases_of("ann"), 2);
        assert_eq!(
            kinds(&mut c, joined("c", "bob")),
            [(EventType::MemberJoined, None)]
        );
        assert_eq!(kinds(&mut c, left("a", "ann", LeaveCause::Closed)), []);
        assert_eq!(
            kinds(&mut c, left("b", "ann", LeaveCause::Closed)),
            [(EventType::MemberLeft, Some("left".into()))]
        );
        assert_eq!(
            kinds(&mut c, left("c", "bob", LeaveCause::Closed)),
            [
                (EventType::MemberLeft, Some("left".into())),
                (EventType::SpaceVacated, None)
            ]
        );
    }

    #[test]
    fn a_resume_or_an_unknown_leave_makes_none() {
        let mut c = MemberCounts::from_identities(["ann"]);
        let resumed = RosterEvent::Resumed {
            client: client("a", "ann"),
            holder: ConnId(2),
            replaced: ConnId(1),
        };
        assert_eq!(kinds(&mut c, resumed), []);
        assert_eq!(kinds(&mut c, left("z", "zed", LeaveCause::Closed)), []);
        assert_eq!(
            kinds(&mut c, left("a", "ann", LeaveCause::Removed)),
            [
                (EventType::MemberLeft, Some("removed".into())),
                (EventType::SpaceVacated, None)
            ]
        );
        assert_eq!((c.total(), c.leases_of("ann")), (0, 0));
    }

    #[test]
    fn events_carry_space_identity_time_and_fresh_ids() {
        let mut c = MemberCounts::new();
        let mut n = 0;
        let events = c.observe("team/1", &joined("a", "ann|x"), UnixMillis(77), || {
            n += 1;
            format!("id{n}")
        });
        assert_eq!(events[0].id, "id1");
        assert_eq!(events[0].identity, None);
        assert_eq!(events[1].id, "id2");
        assert_eq!(events[1].identity.as_deref(), Some("ann|x"));
        assert!(events
            .iter()
            .all(|e| e.space == "team/1" && e.at == UnixMillis(77)));
    }
}
