//! The keepalive (PROTOCOL.md section 7) as one timer for the process
//! instead of one per socket: sockets are spread over a few phases by
//! connection id, one task rings a phase every `period / PHASES`, so each
//! socket is rung once a period and the pings of a process stay spread
//! over the period rather than all sent at once.
//!
//! Ringing raises a flag in the socket's outbox ([`Bell`]): the socket's
//! task learns of it from the same wait as its queued messages, so an idle
//! socket holds no timer, no receiver and no third waker of its own
//! (BENCHMARKS.md, "Per idle socket"); the wheel holds a weak handle per
//! socket, removed when the socket's task ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use longhouse_core::ConnId;
use tokio::time::MissedTickBehavior;

use crate::outbox::Bell;

/// Phases of the wheel: how finely the pings of a process are spread.
const PHASES: u64 = 16;

/// The sockets of one phase, by connection.
type Phase = Mutex<HashMap<ConnId, Bell>>;

/// The process's keepalive wheel; cheap to clone.
#[derive(Clone)]
pub struct Keepalive {
    phases: Arc<[Phase]>,
}

/// One socket's place on the wheel: the socket is rung while this lives.
pub struct Registration<'a> {
    wheel: &'a Keepalive,
    conn: ConnId,
}

impl Keepalive {
    /// Starts the wheel's task on the current runtime; it ends when the
    /// last clone of the wheel is dropped.
    pub fn start(period: Duration) -> Self {
        let wheel = Keepalive::stopped();
        tokio::spawn(run(Arc::downgrade(&wheel.phases), period));
        wheel
    }

    /// A wheel that turns only when told ([`Self::start`] adds the task).
    fn stopped() -> Self {
        Keepalive {
            phases: (0..PHASES).map(|_| Phase::default()).collect(),
        }
    }

    /// Rings `bell` (socket `conn`'s) once a period, the first time within
    /// one period from now, until the registration is dropped.
    pub fn register(&self, conn: ConnId, bell: Bell) -> Registration<'_> {
        lock(&self.phases[phase_of(conn)]).insert(conn, bell);
        Registration { wheel: self, conn }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(&self.wheel.phases[phase_of(self.conn)]).remove(&self.conn);
    }
}

fn lock(phase: &Phase) -> MutexGuard<'_, HashMap<ConnId, Bell>> {
    // No code under this lock panics; the map is whole either way.
    phase.lock().unwrap_or_else(PoisonError::into_inner)
}

fn phase_of(conn: ConnId) -> usize {
    usize::try_from(conn.0 % PHASES).unwrap_or(0)
}

/// Rings every socket of `phase` (a gone one is dropped from the wheel).
fn turn(phases: &[Phase], phase: usize) {
    lock(&phases[phase]).retain(|_, bell| bell.ring());
}

async fn run(phases: Weak<[Phase]>, period: Duration) {
    let step = (period / u32::try_from(PHASES).unwrap_or(1)).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut phase = 0usize;
    loop {
        ticks.tick().await;
        let Some(phases) = phases.upgrade() else {
            return;
        };
        turn(&phases, phase);
        phase = (phase + 1) % phases.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{outbox, Inbox, Next, Outbox};
    use futures_util::FutureExt;
    use tokio::time::{timeout, Instant};

    fn socket() -> (Outbox, Inbox) {
        outbox(4)
    }

    fn rung(inbox: &mut Inbox) -> bool {
        match inbox.next().now_or_never() {
            Some(Next::Keepalive) => true,
            None => false,
            Some(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_turn_rings_its_phase_only() {
        let wheel = Keepalive::stopped();
        let mut sockets: Vec<(u64, Outbox, Inbox)> = (0..3 * PHASES)
            .map(|conn| {
                let (tx, rx) = socket();
                (conn, tx, rx)
            })
            .collect();
        let _registered: Vec<Registration<'_>> = sockets
            .iter()
            .map(|(conn, _, rx)| wheel.register(ConnId(*conn), rx.bell()))
            .collect();
        turn(&wheel.phases, 5);
        for (conn, _, rx) in &mut sockets {
            let conn = *conn;
            assert_eq!(rung(rx), conn % PHASES == 5, "conn {conn}");
        }
        // Each phase once: everyone once.
        for phase in 0..wheel.phases.len() {
            turn(&wheel.phases, phase);
        }
        assert!(sockets.iter_mut().all(|(_, _, rx)| rung(rx)));
    }

    #[test]
    fn a_socket_leaves_the_wheel_with_its_registration() {
        let wheel = Keepalive::stopped();
        let (_tx, mut rx) = socket();
        let registered = wheel.register(ConnId(21), rx.bell());
        assert_eq!(lock(&wheel.phases[phase_of(ConnId(21))]).len(), 1);
        drop(registered);
        assert!(wheel.phases.iter().all(|p| lock(p).is_empty()));
        turn(&wheel.phases, phase_of(ConnId(21)));
        assert!(!rung(&mut rx));
    }

    #[test]
    fn a_gone_socket_is_dropped_from_the_wheel_at_its_turn() {
        let wheel = Keepalive::stopped();
        let (tx, rx) = socket();
        let bell = rx.bell();
        drop((tx, rx));
        lock(&wheel.phases[0]).insert(ConnId(0), bell);
        turn(&wheel.phases, 0);
        assert!(lock(&wheel.phases[0]).is_empty());
    }

    #[tokio::test]
    async fn a_socket_is_rung_about_once_a_period() {
        let period = Duration::from_millis(160);
        let wheel = Keepalive::start(period);
        let (_tx, mut rx) = socket();
        let _registered = wheel.register(ConnId(7), rx.bell());
        let limit = Duration::from_secs(10);
        let first = timeout(limit, rx.next()).await.expect("a first ping");
        assert_eq!(first, Next::Keepalive);
        let at = Instant::now();
        let second = timeout(limit, rx.next()).await.expect("a second ping");
        assert_eq!(second, Next::Keepalive);
        // The wheel's interval keeps its phase: never two rings in one step.
        assert!(at.elapsed() >= period / 2, "{:?}", at.elapsed());
    }

    #[tokio::test]
    async fn the_task_ends_with_the_wheel() {
        let wheel = Keepalive::start(Duration::from_millis(16));
        let weak = Arc::downgrade(&wheel.phases);
        let (_tx, mut rx) = socket();
        let bell = rx.bell();
        lock(&wheel.phases[3]).insert(ConnId(3), bell);
        drop(wheel);
        assert!(weak.upgrade().is_none());
        let waited = timeout(Duration::from_millis(100), rx.next()).await;
        assert!(waited.is_err(), "a gone wheel never rings");
    }
}
