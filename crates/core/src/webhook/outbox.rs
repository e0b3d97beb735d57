//! The webhook outbox: events in, signed batches out, answers back in.
//! Delivery is at least once and in order within a space: a space has at
//! most one batch in flight, and a failed batch is sent again, with the
//! same events, after a back-off (1 s doubling to 60 s) for as long as
//! `retry_for_ms` from its first failure. The outbox reads no clock: every
//! input carries the time, and [`Outbox::next_deadline`] says when to call
//! [`Outbox::poll`] again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use thiserror::Error;

pub use super::config::OutboxConfig;
use super::event::{batch_body, WebhookEvent};
use super::sign::sign;
use crate::time::UnixMillis;

/// Names one attempt, so that its answer finds it (and a late answer to
/// an attempt already timed out is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub u64);

/// A POST to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Report its answer with this.
    pub batch: BatchId,
    /// The space all its events are about.
    pub space: String,
    /// The request body, `{"events":[…]}`.
    pub body: String,
    /// The `Longhouse-Signature` header's value.
    pub signature: String,
    /// The events' ids, in order.
    pub ids: Vec<String>,
    /// Give up waiting for an answer after this long (the outbox fails the
    /// attempt itself at that time, too).
    pub timeout_ms: u64,
    /// 1 for a first attempt, then one more per retry.
    pub attempt: u32,
}

/// How a receiver answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx status: the batch is delivered.
    Delivered,
    /// Any other status, no answer, or a connection error.
    Failed,
}

/// What became of a batch after an answer (or a timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Delivered: these events are done (a shared store acknowledges them).
    Delivered {
        /// Their space.
        space: String,
        /// The events, in order.
        events: Vec<WebhookEvent>,
    },
    /// Failed; sent again at `at`.
    Retrying {
        /// Their space.
        space: String,
        /// Failures in a row so far.
        failures: u32,
        /// When the next attempt goes.
        at: UnixMillis,
    },
    /// Failed for longer than `retry_for_ms`: given up.
    GivenUp {
        /// Their space.
        space: String,
        /// The events dropped.
        events: Vec<WebhookEvent>,
    },
}

/// An event refused because the outbox holds `max_queued` already.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("webhook outbox full ({held} events held); event {id} dropped")]
pub struct QueueFull {
    /// The refused event's id.
    pub id: String,
    /// How many are held.
    pub held: usize,
}

/// One space's events, oldest first.
#[derive(Debug, Default)]
struct Lane {
    pending: VecDeque<WebhookEvent>,
    /// The attempt in flight: its id, how many events it carries, and when
    /// it times out.
    in_flight: Option<(BatchId, usize, UnixMillis)>,
    /// When the lane may send next (it has events and none in flight).
    due: Option<UnixMillis>,
    failures: u32,
    failing_since: Option<UnixMillis>,
    /// After a failure: how many events the retry carries (the same ones
    /// again, not more).
    retry_len: Option<usize>,
}

/// Every space's webhook events on one target (process, Durable Object).
#[derive(Debug)]
pub struct Outbox {
    config: OutboxConfig,
    secret: Vec<u8>,
    lanes: BTreeMap<String, Lane>,
    /// Lanes waiting to send, by when.
    due: BTreeSet<(UnixMillis, String)>,
    /// Attempts in flight, by when they time out.
    timeouts: BTreeSet<(UnixMillis, BatchId)>,
    in_flight: BTreeMap<BatchId, String>,
    next_batch: u64,
    held: usize,
}

impl Outbox {
    /// An empty outbox signing with `secret` (`WEBHOOK_SECRET`).
    pub fn new(secret: impl Into<Vec<u8>>, config: OutboxConfig) -> Self {
        Outbox {
            config,
            secret: secret.into(),
            lanes: BTreeMap::new(),
            due: BTreeSet::new(),
            timeouts: BTreeSet::new(),
            in_flight: BTreeMap::new(),
            next_batch: 1,
            held: 0,
        }
    }

    /// Events held, in flight or waiting.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Adds an event behind every earlier one of its space; it goes at
    /// once if its space has nothing in flight or waiting for a retry.
    pub fn push(&mut self, event: WebhookEvent, now: UnixMillis) -> Result<(), QueueFull> {
        if self.held >= self.config.max_queued {
            return Err(QueueFull {
                id: event.id,
                held: self.held,
            });
        }
        self.held += 1;
        let space = event.space.clone();
        let lane = self.lanes.entry(space.clone()).or_default();
        lane.pending.push_back(event);
        if lane.in_flight.is_none() && lane.due.is_none() {
            lane.due = Some(now);
            self.due.insert((now, space));
        }
        Ok(())
    }

    /// Fails the attempts that timed out, then returns the attempts to make
    /// now, as many as `max_in_flight` allows. Also returns what the
    /// timeouts settled.
    pub fn poll(&mut self, now: UnixMillis) -> (Vec<Attempt>, Vec<Settled>) {
        let mut settled = Vec::new();
        while let Some(&(at, batch)) = self.timeouts.first() {
            if at > now {
                break;
            }
            if let Some(s) = self.answered(batch, Answer::Failed, now) {
                settled.push(s);
            }
        }
        let mut attempts = Vec::new();
        while self.in_flight.len() < self.config.max_in_flight {
            let Some((at, _)) = self.due.first() else {
                break;
            };
            if *at > now {
                break;
            }
            let (_, space) = self.due.pop_first().expect("present");
            attempts.push(self.attempt(space, now));
        }
        (attempts, settled)
    }

    fn attempt(&mut self, space: String, now: UnixMillis) -> Attempt {
        let batch = BatchId(self.next_batch);
        self.next_batch += 1;
        let lane = self.lanes.get_mut(&space).expect("a due lane exists");
        let n = lane
            .retry_len
            .unwrap_or_else(|| lane.pending.len().min(self.config.max_batch));
        let events: Vec<WebhookEvent> = lane.pending.iter().take(n).cloned().collect();
        let deadline = now.plus(self.config.timeout_ms);
        lane.due = None;
        lane.in_flight = Some((batch, n, deadline));
        self.timeouts.insert((deadline, batch));
        self.in_flight.insert(batch, space.clone());
        let body = batch_body(&events);
        Attempt {
            batch,
            space,
            signature: sign(&self.secret, now.0 / 1000, &body),
            body,
            ids: events.into_iter().map(|e| e.id).collect(),
            timeout_ms: self.config.timeout_ms,
            attempt: lane.failures + 1,
        }
    }

    /// The receiver answered `batch` (or the target gave up on it). An
    /// answer to an attempt that is no longer in flight (it timed out
    /// already) changes nothing and settles nothing.
    pub fn answered(&mut self, batch: BatchId, answer: Answer, now: UnixMillis) -> Option<Settled> {
        let space = self.in_flight.remove(&batch)?;
        let lane = self.lanes.get_mut(&space).expect("in-flight lane exists");
        let (_, n, deadline) = lane.in_flight.take().expect("the lane's batch");
        self.timeouts.remove(&(deadline, batch));
        let settled = match answer {
            Answer::Delivered => {
                lane.failures = 0;
                lane.failing_since = None;
                lane.retry_len = None;
                let events: Vec<WebhookEvent> = lane.pending.drain(..n).collect();
                self.held -= n;
                Settled::Delivered {
                    space: space.clone(),
                    events,
                }
            }
            Answer::Failed => {
                lane.failures += 1;
                let since = *lane.failing_since.get_or_insert(now);
                if since.until(now) >= self.config.retry_for_ms {
                    lane.failures = 0;
                    lane.failing_since = None;
                    lane.retry_len = None;
                    let events: Vec<WebhookEvent> = lane.pending.drain(..n).collect();
                    self.held -= n;
                    Settled::GivenUp {
                        space: space.clone(),
                        events,
                    }
                } else {
                    lane.retry_len = Some(n);
                    let at = now.plus(self.config.backoff_ms(lane.failures));
                    lane.due = Some(at);
                    self.due.insert((at, space.clone()));
                    return Some(Settled::Retrying {
                        space,
                        failures: lane.failures,
                        at,
                    });
                }
            }
        };
        // Delivered or given up: the next events of the space go at once.
        if lane.pending.is_empty() {
            self.lanes.remove(&space);
        } else {
            lane.due = Some(now);
            self.due.insert((now, space));
        }
        Some(settled)
    }

    /// When [`Outbox::poll`] has something to do next: an attempt's timeout,
    /// or a lane due (only while another attempt may start).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        let timeout = self.timeouts.first().map(|(at, _)| *at);
        let due = (self.in_flight.len() < self.config.max_in_flight)
            .then(|| self.due.first().map(|(at, _)| *at))
            .flatten();
        match (timeout, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::EventType;

    fn event(space: &str, id: &str) -> WebhookEvent {
        WebhookEvent {
            id: id.into(),
            kind: EventType::MemberJoined,
            space: space.into(),
            identity: Some("ann".into()),
            reason: None,
            at: UnixMillis(0),
        }
    }

    fn outbox() -> Outbox {
        Outbox::new(b"k".to_vec(), OutboxConfig::default())
    }

    #[test]
    fn an_event_goes_at_once_signed() {
        let mut o = outbox();
        o.push(event("s", "e1"), UnixMillis(5_000)).unwrap();
        assert_eq!(o.next_deadline(), Some(UnixMillis(5_000)));
        let (attempts, settled) = o.poll(UnixMillis(5_000));
        assert!(settled.is_empty());
        let [a] = attempts.as_slice() else {
            panic!("{attempts:?}")
        };
        assert_eq!(a.ids, ["e1"]);
        assert_eq!(a.attempt, 1);
        assert_eq!(a.signature, sign(b"k", 5, &a.body));
        assert_eq!(a.body, batch_body(&[event("s", "e1")]));
        // Only the timeout is left to wait for.
        assert_eq!(o.next_deadline(), Some(UnixMillis(15_000)));
    }

    #[test]
    fn a_space_has_one_batch_in_flight_and_the_next_batch_follows_its_delivery() {
        let mut o = outbox();
        o.push(event("s", "e1"), UnixMillis(0)).unwrap();
        let (first, _) = o.poll(UnixMillis(0));
        o.push(event("s", "e2"), UnixMillis(1)).unwrap();
        o.push(event("t", "f1"), UnixMillis(1)).unwrap();
        let (more, _) = o.poll(UnixMillis(1));
        assert_eq!(more.len(), 1, "only the other space's batch goes");
        assert_eq!(more[0].space, "t");
        let done = o.answered(first[0].batch, Answer::Delivered, UnixMillis(2));
        assert_eq!(
            done,
            Some(Settled::Delivered {
                space: "s".into(),
                events: vec![event("s", "e1")]
            })
        );
        let (next, _) = o.poll(UnixMillis(2));
        assert_eq!(next[0].ids, ["e2"]);
        assert_eq!(o.held(), 2);
    }

    #[test]
    fn a_failed_batch_is_sent_again_with_the_same_ids_after_the_backoff() {
        let mut o = outbox();
        o.push(event("s", "e1"), UnixMillis(0)).unwrap();
        o.push(event("s", "e2"), UnixMillis(0)).unwrap();
        let (a, _) = o.poll(UnixMillis(0));
        assert_eq!(a[0].ids, ["e1", "e2"]);
        o.push(event("s", "e3"), UnixMillis(10)).unwrap();
        let r = o.answered(a[0].batch, Answer::Failed, UnixMillis(100));
        assert_eq!(
            r,
            Some(Settled::Retrying {
                space: "s".into(),
                failures: 1,
                at: UnixMillis(1_100)
            })
        );
        assert!(o.poll(UnixMillis(1_099)).0.is_empty());
        assert_eq!(o.next_deadline(), Some(UnixMillis(1_100)));
        let (b, _) = o.poll(UnixMillis(1_100));
        assert_eq!(b[0].ids, ["e1", "e2"], "the same batch, not e3");
        assert_eq!(b[0].attempt, 2);
        o.answered(b[0].batch, Answer::Failed, UnixMillis(1_200));
        assert_eq!(o.next_deadline(), Some(UnixMillis(3_200)));
        let (c, _) = o.poll(UnixMillis(3_200));
        assert_eq!(c[0].ids, ["e1", "e2"]);
        o.answered(c[0].batch, Answer::Delivered, UnixMillis(3_300));
        let (d, _) = o.poll(UnixMillis(3_300));
        assert_eq!(d[0].ids, ["e3"]);
        assert_eq!(d[0].attempt, 1, "a delivery resets the back-off");
    }

    #[test]
    fn no_answer_within_the_timeout_fails_the_attempt_and_a_late_answer_is_ignored() {
        let mut o = outbox();
        o.push(event("s", "e1"), UnixMillis(0)).unwrap();
        let (a, _) = o.poll(UnixMillis(0));
        let (none, settled) = o.poll(UnixMillis(10_000));
        assert!(none.is_empty());
        assert_eq!(
            settled,
            [Settled::Retrying {
                space: "s".into(),
                failures: 1,
                at: UnixMillis(11_000)
            }]
        );
        assert_eq!(
            o.answered(a[0].batch, Answer::Delivered, UnixMillis(10_500)),
            None
        );
        let (b, _) = o.poll(UnixMillis(11_000));
        assert_eq!(b[0].ids, ["e1"]);
    }

    #[test]
    fn retried_for_an_hour_then_given_up() {
        let mut o = outbox();
        o.push(event("s", "e1"), UnixMillis(0)).unwrap();
        o.push(event("s", "e2"), UnixMillis(0)).unwrap();
        let mut now = UnixMillis(0);
        let mut attempts = 0;
        let given_up = loop {
            let (a, _) = o.poll(now);
            if let Some(a) = a.first() {
                attempts += 1;
                match o.answered(a.batch, Answer::Failed, now) {
                    Some(Settled::GivenUp { events, .. }) => break events,
                    Some(Settled::Retrying { at, .. }) => now = at,
                    other => panic!("{other:?}"),
                }
            } else {
                now = o.next_deadline().expect("a retry is due");
            }
        };
        assert!(now.0 >= 3_600_000, "given up at {now}");
        assert!(now.0 < 3_600_000 + 60_000, "given up late, at {now}");
        assert_eq!(given_up.len(), 2);
        assert!(attempts > 60, "{attempts} attempts in an hour");
        assert_eq!(o.held(), 0);
        assert_eq!(o.next_deadline(), None);
    }

    #[test]
    fn in_flight_batches_are_bounded_and_batches_are_bounded() {
        let config = OutboxConfig {
            max_in_flight: 2,
            max_batch: 3,
            ..OutboxConfig::default()
        };
        let mut o = Outbox::new(b"k".to_vec(), config);
        for space in ["a", "b", "c"] {
            for i in 0..5 {
                o.push(event(space, &format!("{space}{i}")), UnixMillis(0))
                    .unwrap();
            }
        }
        let (a, _) = o.poll(UnixMillis(0));
        assert_eq!(a.len(), 2);
        assert!(a.iter().all(|a| a.ids.len() == 3));
        // Full: the waiting lane is no deadline (no busy wake-ups).
        assert_eq!(o.next_deadline(), Some(UnixMillis(10_000)));
        o.answered(a[0].batch, Answer::Delivered, UnixMillis(1));
        let (b, _) = o.poll(UnixMillis(1));
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_full_outbox_refuses_new_events() {
        let config = OutboxConfig {
            max_queued: 2,
            ..OutboxConfig::default()
        };
        let mut o = Outbox::new(b"k".to_vec(), config);
        o.push(event("s", "1"), UnixMillis(0)).unwrap();
        o.push(event("s", "2"), UnixMillis(0)).unwrap();
        assert_eq!(
            o.push(event("s", "3"), UnixMillis(0)),
            Err(QueueFull {
                id: "3".into(),
                held: 2
            })
        );
    }
}
