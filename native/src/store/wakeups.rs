//! Wakes spaces when their core asks to be woken (`next_deadline`,
//! `poll_timeout`): one task and a heap of (time, space), for both stores.
//! A space asks only when its deadline moves earlier than what it already
//! asked for, so stale wake-ups are rare and cost one idle tick.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use longhouse_core::{SpaceName, UnixMillis};
use tokio::sync::mpsc;

use crate::clock::now;

/// Where spaces ask to be woken.
#[derive(Clone)]
pub struct Wakeups {
    tx: mpsc::UnboundedSender<(UnixMillis, SpaceName)>,
}

impl Wakeups {
    /// Starts the task; it calls `wake` for each space whose time came, and
    /// ends when `wake` returns false (the store is gone).
    pub fn start(wake: impl Fn(&SpaceName) -> bool + Send + 'static) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, wake));
        Wakeups { tx }
    }

    /// Asks for `space` to be woken at `at` (local clock).
    pub fn at(&self, at: UnixMillis, space: &SpaceName) {
        let _ = self.tx.send((at, space.clone()));
    }

    /// Asks again if `deadline` is earlier than what `scheduled` holds.
    pub fn schedule(
        &self,
        deadline: Option<UnixMillis>,
        scheduled: &mut Option<UnixMillis>,
        space: &SpaceName,
    ) {
        if let Some(deadline) = deadline {
            if scheduled.is_none_or(|s| deadline < s) {
                *scheduled = Some(deadline);
                self.at(deadline, space);
            }
        }
    }
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<(UnixMillis, SpaceName)>,
    wake: impl Fn(&SpaceName) -> bool,
) {
    let mut queue: BinaryHeap<Reverse<(UnixMillis, SpaceName)>> = BinaryHeap::new();
    loop {
        let wait = queue
            .peek()
            .map(|Reverse((at, _))| Duration::from_millis(now().until(*at)));
        tokio::select! {
            request = requests.recv() => match request {
                Some(r) => queue.push(Reverse(r)),
                None => return,
            },
            () = sleep_or_forever(wait) => {
                let current = now();
                while let Some(Reverse((at, _))) = queue.peek() {
                    if *at > current {
                        break;
                    }
                    let Reverse((_, name)) = queue.pop().expect("peeked");
                    if !wake(&name) {
                        return;
                    }
                }
            }
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
