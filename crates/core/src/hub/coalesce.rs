//! Coalescing of one socket's updates (section 10): at most one sent per
//! interval, the latest held until the interval since the last one sent
//! has passed (trailing edge), so intermediate states may be skipped but
//! the latest never is.

use std::collections::{BTreeSet, HashMap};

use crate::conn_id::ConnId;
use crate::json::Json;
use crate::time::UnixMillis;

#[derive(Debug, Clone, Default)]
struct Slot {
    /// When the last update went out.
    last_sent: Option<UnixMillis>,
    /// The update held back, if any: its state and when it is due
    /// (`None`: the socket is not welcomed yet, so not before it is).
    held: Option<(Option<Json>, Option<UnixMillis>)>,
}

/// The held updates of one hub's sockets.
#[derive(Debug, Clone, Default)]
pub(crate) struct Coalescer {
    interval_ms: u64,
    slots: HashMap<ConnId, Slot>,
    due: BTreeSet<(UnixMillis, ConnId)>,
}

impl Coalescer {
    /// Updates of one socket at most once per `interval_ms` (0: all).
    pub(crate) fn new(interval_ms: u64) -> Self {
        Coalescer {
            interval_ms,
            ..Coalescer::default()
        }
    }

    /// An update from `conn` at `now`: `Some` to send it now, `None` if it
    /// is held (replacing any update held before). A socket not yet
    /// welcomed holds its update until [`Coalescer::welcomed`].
    pub(crate) fn offer(
        &mut self,
        conn: ConnId,
        state: Option<Json>,
        joined: bool,
        now: UnixMillis,
    ) -> Option<Option<Json>> {
        self.unschedule(conn);
        let interval = self.interval_ms;
        let slot = self.slots.entry(conn).or_default();
        let due = match (joined, slot.last_sent) {
            (false, _) => None,
            (true, Some(last)) if interval > 0 && now < last.plus(interval) => {
                Some(last.plus(interval))
            }
            (true, _) => {
                slot.held = None;
                slot.last_sent = Some(now);
                return Some(state);
            }
        };
        slot.held = Some((state, due));
        if let Some(at) = due {
            self.due.insert((at, conn));
        }
        None
    }

    /// `conn` was welcomed: an update it held is due at once.
    pub(crate) fn welcomed(&mut self, conn: ConnId) {
        if let Some(Slot {
            held: Some((_, due @ None)),
            ..
        }) = self.slots.get_mut(&conn)
        {
            *due = Some(UnixMillis(0));
            self.due.insert((UnixMillis(0), conn));
        }
    }

    /// The held updates due at `now`, in due order; each counts as sent.
    pub(crate) fn take_due(&mut self, now: UnixMillis) -> Vec<(ConnId, Option<Json>)> {
        let mut sent = Vec::new();
        while let Some(&(at, conn)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.remove(&(at, conn));
            let slot = self.slots.get_mut(&conn).expect("scheduled slot");
            if let Some((state, _)) = slot.held.take() {
                slot.last_sent = Some(now);
                sent.push((conn, state));
            }
        }
        sent
    }

    /// Forgets `conn`, returning the update it held, if any.
    pub(crate) fn take(&mut self, conn: ConnId) -> Option<Option<Json>> {
        self.unschedule(conn);
        self.slots.remove(&conn)?.held.map(|(state, _)| state)
    }

    /// When the next held update is due.
    pub(crate) fn next_deadline(&self) -> Option<UnixMillis> {
        self.due.first().map(|(at, _)| *at)
    }

    fn unschedule(&mut self, conn: ConnId) {
        if let Some(Slot {
            held: Some((_, Some(at))),
            ..
        }) = self.slots.get(&conn)
        {
            self.due.remove(&(*at, conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> Option<Json> {
        Json::object(&format!(r#"{{"n":{n}}}"#)).ok()
    }

    const C: ConnId = ConnId(1);

    #[test]
    fn the_first_update_goes_at_once_then_one_per_interval() {
        let mut c = Coalescer::new(50);
        assert_eq!(c.offer(C, s(1), true, UnixMillis(1000)), Some(s(1)));
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.offer(C, s(2), true, UnixMillis(1010)), None);
        assert_eq!(c.offer(C, s(3), true, UnixMillis(1049)), None);
        assert_eq!(c.next_deadline(), Some(UnixMillis(1050)));
        assert!(c.take_due(UnixMillis(1049)).is_empty());
        // Trailing edge: the latest, never an intermediate one.
        assert_eq!(c.take_due(UnixMillis(1050)), vec![(C, s(3))]);
        assert_eq!(c.next_deadline(), None);
        // The interval runs from the last one sent.
        assert_eq!(c.offer(C, s(4), true, UnixMillis(1099)), None);
        assert_eq!(c.next_deadline(), Some(UnixMillis(1100)));
        assert_eq!(c.take_due(UnixMillis(1130)), vec![(C, s(4))]);
        assert_eq!(c.offer(C, None, true, UnixMillis(1180)), Some(None));
    }

    #[test]
    fn a_late_tick_does_not_hold_an_update_longer() {
        let mut c = Coalescer::new(50);
        c.offer(C, s(1), true, UnixMillis(0));
        assert_eq!(c.offer(C, s(2), true, UnixMillis(10)), None);
        // The target woke late; a newer update replaces the held one and
        // goes at once.
        assert_eq!(c.offer(C, s(3), true, UnixMillis(80)), Some(s(3)));
        assert!(c.take_due(UnixMillis(1000)).is_empty());
    }

    #[test]
    fn zero_interval_sends_every_update() {
        let mut c = Coalescer::new(0);
        for n in 0..5 {
            assert_eq!(c.offer(C, s(n), true, UnixMillis(7)), Some(s(n)));
        }
    }

    #[test]
    fn before_the_welcome_an_update_waits_for_it() {
        let mut c = Coalescer::new(50);
        assert_eq!(c.offer(C, s(1), false, UnixMillis(0)), None);
        assert_eq!(c.offer(C, s(2), false, UnixMillis(0)), None);
        assert_eq!(c.next_deadline(), None);
        c.welcomed(C);
        assert_eq!(c.next_deadline(), Some(UnixMillis(0)));
        assert_eq!(c.take_due(UnixMillis(5)), vec![(C, s(2))]);
    }

    #[test]
    fn a_socket_going_away_hands_over_what_it_held() {
        let mut c = Coalescer::new(50);
        c.offer(C, s(1), true, UnixMillis(0));
        c.offer(C, s(2), true, UnixMillis(1));
        c.offer(ConnId(2), s(9), true, UnixMillis(1));
        assert_eq!(c.take(C), Some(s(2)));
        assert_eq!(c.take(C), None);
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.take(ConnId(2)), None, "sent at once, nothing held");
    }
}
