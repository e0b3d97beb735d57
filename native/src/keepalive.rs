//! The keepalive (PROTOCOL.md section 7) as one timer for the process
//! instead of one per socket: sockets are spread over a few phases by
//! connection id, one task wakes a phase every `period / PHASES`, so each
//! socket is woken once a period and the pings of a process stay spread
//! over the period rather than all sent at once.
//!
//! A socket holds only a `watch::Receiver` (a pointer and a version): no
//! timer entry, no boxed `Sleep` (BENCHMARKS.md, "Per idle socket").

use std::sync::{Arc, Weak};
use std::time::Duration;

use longhouse_core::ConnId;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Phases of the wheel: how finely the pings of a process are spread.
const PHASES: u64 = 16;

/// The process's keepalive wheel; cheap to clone.
#[derive(Clone)]
pub struct Keepalive {
    phases: Arc<[watch::Sender<()>]>,
}

/// One socket's place on the wheel.
pub struct Beat(watch::Receiver<()>);

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
            phases: (0..PHASES).map(|_| watch::Sender::new(())).collect(),
        }
    }

    /// The beat of socket `conn`: it fires once a period, the first time
    /// within one period from now.
    pub fn beat(&self, conn: ConnId) -> Beat {
        Beat(self.phases[phase_of(conn)].subscribe())
    }
}

fn phase_of(conn: ConnId) -> usize {
    usize::try_from(conn.0 % PHASES).unwrap_or(0)
}

/// Wakes every socket of `phase`.
fn turn(phases: &[watch::Sender<()>], phase: usize) {
    phases[phase].send_replace(());
}

impl Beat {
    /// Resolves at this socket's next keepalive (never, once the wheel is
    /// gone).
    pub async fn next(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn run(phases: Weak<[watch::Sender<()>]>, period: Duration) {
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
    use tokio::time::{timeout, Instant};

    #[test]
    fn a_turn_wakes_its_phase_only() {
        let wheel = Keepalive::stopped();
        let mut beats: Vec<(u64, Beat)> = (0..3 * PHASES)
            .map(|conn| (conn, wheel.beat(ConnId(conn))))
            .collect();
        turn(&wheel.phases, 5);
        for (conn, beat) in &mut beats {
            let conn = *conn;
            let woken = beat.0.has_changed().unwrap();
            assert_eq!(woken, conn % PHASES == 5, "conn {conn}");
            beat.0.mark_unchanged();
        }
        // Each phase once: everyone once.
        for phase in 0..phases_len(&wheel) {
            turn(&wheel.phases, phase);
        }
        assert!(beats.iter().all(|(_, b)| b.0.has_changed().unwrap()));
    }

    fn phases_len(wheel: &Keepalive) -> usize {
        wheel.phases.len()
    }

    #[tokio::test]
    async fn a_socket_beats_about_once_a_period() {
        let period = Duration::from_millis(160);
        let wheel = Keepalive::start(period);
        let mut beat = wheel.beat(ConnId(7));
        let limit = Duration::from_secs(10);
        timeout(limit, beat.next()).await.expect("a first beat");
        let first = Instant::now();
        timeout(limit, beat.next()).await.expect("a second beat");
        // The wheel's interval keeps its phase: never two beats in one step.
        assert!(first.elapsed() >= period / 2, "{:?}", first.elapsed());
    }

    #[tokio::test]
    async fn the_task_ends_with_the_wheel() {
        let wheel = Keepalive::start(Duration::from_millis(16));
        let weak = Arc::downgrade(&wheel.phases);
        let mut beat = wheel.beat(ConnId(3));
        drop(wheel);
        assert!(weak.upgrade().is_none());
        let waited = timeout(Duration::from_millis(100), beat.next()).await;
        assert!(waited.is_err(), "a gone wheel never beats");
    }
}
