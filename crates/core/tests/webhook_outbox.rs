//! Property tests of the webhook outbox (section 14): under any mix of
//! events, answers, failures and timeouts, every space's events are
//! delivered in order, each delivered batch once, a retry carries the same
//! ids as the attempt that failed, no retry goes before its back-off, a
//! space never has two batches in flight, and the outbox never asks to be
//! woken for nothing.

use std::collections::BTreeMap;

use longhouse_core::webhook::{
    Answer, Attempt, EventType, Outbox, OutboxConfig, Settled, WebhookEvent,
};
use longhouse_core::UnixMillis;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    Poll,
    /// Answer the n-th attempt in flight (modulo), delivered or not.
    Answer(usize, bool),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3).prop_map(Op::Push),
        3 => Just(Op::Poll),
        3 => (any::<usize>(), prop::bool::weighted(0.6)).prop_map(|(n, ok)| Op::Answer(n, ok)),
        2 => (0u64..15_000).prop_map(Op::Wait),
    ]
}

fn event(space: &str, n: usize) -> WebhookEvent {
    WebhookEvent {
        id: format!("{space}-{n}"),
        kind: EventType::MemberJoined,
        space: space.into(),
        identity: Some("ann".into()),
        reason: None,
        at: UnixMillis(0),
    }
}

struct Model {
    pushed: BTreeMap<String, usize>,
    delivered: BTreeMap<String, Vec<String>>,
    in_flight: Vec<Attempt>,
    /// The ids of a space's last failed attempt, and the earliest time
    /// its retry may go.
    failed: BTreeMap<String, (Vec<String>, UnixMillis)>,
}

impl Model {
    fn settle(&mut self, s: Settled) {
        match s {
            Settled::Delivered { space, events } => {
                let ids: Vec<String> = events.into_iter().map(|e| e.id).collect();
                let list = self.delivered.entry(space.clone()).or_default();
                let start = list.len();
                for (i, id) in ids.iter().enumerate() {
                    assert_eq!(*id, format!("{space}-{}", start + i), "in order, once");
                }
                list.extend(ids);
                self.failed.remove(&space);
            }
            Settled::Retrying {
                space,
                at,
                failures,
            } => {
                assert!(failures >= 1);
                let entry = self.failed.get_mut(&space).expect("a failed attempt");
                entry.1 = at;
            }
            Settled::GivenUp { .. } => panic!("nothing is retried for an hour here"),
        }
    }

    fn sent(&mut self, a: Attempt, now: UnixMillis) {
        assert!(
            self.in_flight.iter().all(|b| b.space != a.space),
            "two batches in flight for {}",
            a.space
        );
        let done = self.delivered.get(&a.space).map_or(0, Vec::len);
        for (i, id) in a.ids.iter().enumerate() {
            assert_eq!(
                *id,
                format!("{}-{}", a.space, done + i),
                "a prefix of what is left"
            );
        }
        if let Some((ids, not_before)) = self.failed.get(&a.space) {
            assert_eq!(&a.ids, ids, "a retry carries the same ids");
            assert!(now >= *not_before, "retried before its back-off");
        }
        self.in_flight.push(a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn delivered_in_order_once_retried_with_the_same_ids(ops in prop::collection::vec(op(), 1..120)) {
        let config = OutboxConfig { max_batch: 3, max_in_flight: 2, ..OutboxConfig::default() };
        let mut outbox = Outbox::new(b"k".to_vec(), config);
        let mut now = UnixMillis(1_000);
        let mut m = Model {
            pushed: BTreeMap::new(),
            delivered: BTreeMap::new(),
            in_flight: Vec::new(),
            failed: BTreeMap::new(),
        };
        let spaces = ["a", "b", "c"];
        let run = |outbox: &mut Outbox, m: &mut Model, now: UnixMillis| {
            let wake = outbox.next_deadline();
            let (attempts, settled) = outbox.poll(now);
            if wake.is_none_or(|w| w > now) {
                prop_assert!(attempts.is_empty() && settled.is_empty(), "work before its deadline");
            }
            for s in settled {
                // A timeout: the model's attempt is gone too.
                if let Settled::Retrying { space, .. } = &s {
                    let pos = m.in_flight.iter().position(|a| &a.space == space).expect("in flight");
                    let a = m.in_flight.remove(pos);
                    m.failed.insert(space.clone(), (a.ids, now));
                }
                m.settle(s);
            }
            for a in attempts {
                m.sent(a, now);
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::Push(s) => {
                    let space = spaces[s as usize];
                    let n = m.pushed.entry(space.into()).or_default();
                    outbox.push(event(space, *n), now).unwrap();
                    *n += 1;
                }
                Op::Poll => run(&mut outbox, &mut m, now)?,
                Op::Answer(n, ok) => {
                    if m.in_flight.is_empty() { continue; }
                    let a = m.in_flight.remove(n % m.in_flight.len());
                    let answer = if ok { Answer::Delivered } else { Answer::Failed };
                    if !ok {
                        m.failed.insert(a.space.clone(), (a.ids.clone(), now));
                    }
                    let s = outbox.answered(a.batch, answer, now).expect("in flight");
                    m.settle(s);
                }
                Op::Wait(ms) => now = now.plus(ms),
            }
        }
        // Then the receiver answers everything: all is delivered, in order.
        for _ in 0..10_000 {
            for a in std::mem::take(&mut m.in_flight) {
                let s = outbox.answered(a.batch, Answer::Delivered, now).expect("in flight");
                m.settle(s);
            }
            match outbox.next_deadline() {
                Some(at) => {
                    now = now.max(at);
                    run(&mut outbox, &mut m, now)?;
                }
                None if m.in_flight.is_empty() => break,
                None => {}
            }
        }
        prop_assert_eq!(outbox.held(), 0);
        for (space, n) in &m.pushed {
            let got = m.delivered.get(space).map_or(0, Vec::len);
            prop_assert_eq!(got, *n, "space {} delivered {} of {}", space, got, n);
        }
    }
}
