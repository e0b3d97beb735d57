//! The shared space's rules one by one, each on a small scenario against
//! the simulated store (`sim_store`): when joins are sent or refused, when
//! a gap resynchronises, what a loss of the store's data costs, when the
//! space wakes, and the order of a violation's close and its leave.

mod sim_store;

use longhouse_core::shared::{
    ScriptReply, SharedConfig, SharedSpace, SharedStep, StoreCall, StoreClock, StoreOp,
    Subscription,
};
use longhouse_core::{
    CloseCode, ConnId, Disconnect, ErrorKind, Frame, JoinRequest, Output, SpaceConfig, UnixMillis,
    PING_TEXT,
};
use serde_json::json;
use sim_store::{Loss, SimStore};

const TTL: u64 = 1_000;
const T: u64 = 1_700_000_000_000;

fn space() -> SharedSpace {
    SharedSpace::new(
        SharedConfig::new(SpaceConfig {
            ttl_ms: TTL,
            max_message_bytes: 4096,
            ..SpaceConfig::default()
        }),
        StoreClock::new(),
    )
}

fn request(identity: &str, id: &str) -> JoinRequest {
    JoinRequest::parse("/room", Some(&format!("identity={identity}&id={id}"))).unwrap()
}

fn join(s: &mut SharedSpace, conn: u64, id: &str, now: u64) -> SharedStep {
    s.join(
        ConnId(conn),
        &request("ann", id),
        || unreachable!("ids are given"),
        UnixMillis(now),
    )
}

/// Runs every call of `step` in `store` at store time `at` and feeds the
/// replies back at local time `now`; returns everything that came of it.
fn run(
    s: &mut SharedSpace,
    store: &mut SimStore,
    step: SharedStep,
    at: u64,
    now: u64,
) -> Vec<SharedStep> {
    let mut pending: Vec<StoreCall> = step.calls.clone();
    let mut steps = vec![step];
    while let Some(call) = pending.pop() {
        let done = store.execute(&call, at);
        let next = s.reply(call.id, Ok(done.reply), UnixMillis(now));
        pending.extend(next.calls.iter().cloned());
        steps.push(next);
    }
    steps
}

fn outputs(steps: &[SharedStep]) -> Vec<Output> {
    steps.iter().flat_map(|s| s.step.outputs.clone()).collect()
}

fn texts_to(steps: &[SharedStep], conn: u64) -> Vec<String> {
    outputs(steps)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, text } if c == ConnId(conn) => Some(text.to_string()),
            _ => None,
        })
        .collect()
}

fn welcomed(steps: &[SharedStep], conn: u64) -> bool {
    texts_to(steps, conn)
        .iter()
        .any(|t| t.contains("\"clients\""))
}

#[test]
fn a_join_waits_for_the_subscription_then_is_one_call_with_a_snapshot() {
    let mut s = space();
    let mut store = SimStore::new(TTL, 1_000);
    let step = join(&mut s, 1, "a", T);
    assert!(
        step.calls.is_empty(),
        "sent before the subscription was confirmed"
    );
    let step = s.subscription(Subscription::Confirmed, UnixMillis(T + 5));
    assert_eq!(step.calls.len(), 1);
    assert!(matches!(
        step.calls[0].op,
        StoreOp::Join { snapshot: true, .. }
    ));
    let steps = run(&mut s, &mut store, step, T + 6, T + 7);
    assert!(welcomed(&steps, 1));
    // A second join needs no snapshot.
    let step = join(&mut s, 2, "b", T + 10);
    assert!(matches!(
        step.calls[0].op,
        StoreOp::Join {
            snapshot: false,
            ..
        }
    ));
}

#[test]
fn a_join_is_refused_with_1011_when_the_store_is_down_or_the_subscription_late() {
    let mut s = space();
    s.subscription(Subscription::Unavailable, UnixMillis(T));
    let step = join(&mut s, 1, "a", T);
    assert_eq!(step.step.errors, [ErrorKind::StoreUnavailable]);
    assert!(step.step.outputs.contains(&Output::Close {
        conn: ConnId(1),
        code: CloseCode::InternalError
    }));
    assert!(texts_to(&[step], 1)[0].contains("Presence store unavailable"));

    let mut s = space();
    join(&mut s, 1, "a", T);
    let wait = SharedConfig::default().subscribe_wait_ms;
    assert_eq!(s.poll_timeout(), Some(UnixMillis(T + wait)));
    assert!(s.tick(UnixMillis(T + wait - 1)).step.outputs.is_empty());
    let step = s.tick(UnixMillis(T + wait));
    assert!(step.step.outputs.contains(&Output::Close {
        conn: ConnId(1),
        code: CloseCode::InternalError
    }));
    assert!(s.is_idle());
}

/// Two sockets joined and welcomed, on a confirmed subscription.
fn two_joined(store: &mut SimStore) -> SharedSpace {
    let mut s = space();
    s.subscription(Subscription::Confirmed, UnixMillis(T));
    let step = join(&mut s, 1, "a", T);
    run(&mut s, store, step, T, T);
    let step = join(&mut s, 2, "b", T + 1);
    let steps = run(&mut s, store, step, T + 1, T + 1);
    assert!(welcomed(&steps, 2));
    s
}

#[test]
fn a_gap_resynchronises_after_the_patience_and_an_overflow_at_once() {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    // Two more joins by another instance; the first of their events is lost.
    let other = |store: &mut SimStore, id: &str, conn: u64| {
        let call = StoreCall {
            id: longhouse_core::shared::CallId(99),
            history: Default::default(),
            op: StoreOp::Join {
                client: longhouse_core::ClientInfo::new(
                    longhouse_core::ClientId::parse(id).unwrap(),
                    "bob",
                    UnixMillis(T + 2),
                ),
                holder: ConnId(conn),
                snapshot: false,
            },
        };
        store.execute(&call, T + 2).published
    };
    let _lost = other(&mut store, "c", 100);
    let late = other(&mut store, "d", 101);
    let patience = SharedConfig::default().gap_patience_ms;
    let step = s.message(late.last().unwrap(), UnixMillis(T + 10));
    assert!(step.calls.is_empty());
    assert_eq!(s.poll_timeout(), Some(UnixMillis(T + 10 + patience)));
    assert!(s.tick(UnixMillis(T + 9 + patience)).calls.is_empty());
    let step = s.tick(UnixMillis(T + 10 + patience));
    assert!(matches!(
        step.calls[..],
        [StoreCall {
            op: StoreOp::Resync { .. },
            ..
        }]
    ));
    let steps = run(&mut s, &mut store, step, T + 300, T + 300);
    let told = texts_to(&steps, 1);
    assert_eq!(told.len(), 2, "both joins, once each: {told:?}");

    // More events behind a gap than a space holds: at once.
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    let _lost = other(&mut store, "e", 102);
    let held = SharedConfig::default().max_held_events;
    let mut calls = Vec::new();
    for i in 0..=held {
        let published = other(&mut store, &format!("f{i}"), 200 + i as u64);
        calls.extend(
            s.message(published.last().unwrap(), UnixMillis(T + 20))
                .calls,
        );
    }
    assert!(
        calls.iter().any(|c| matches!(c.op, StoreOp::Resync { .. })),
        "an overflowing gap waits for the patience"
    );
}

#[test]
fn a_flush_is_noticed_by_the_next_ping_and_the_leases_go_back_silently() {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    let before: Vec<_> = store.roster().into_iter().collect();
    store.lose(Loss::Flush);
    let step = s.frame(
        ConnId(1),
        Frame::Text(PING_TEXT.as_bytes()),
        UnixMillis(T + 100),
    );
    let steps = run(&mut s, &mut store, step, T + 100, T + 101);
    assert!(
        steps.iter().any(|s| s
            .calls
            .iter()
            .any(|c| matches!(c.op, StoreOp::Resync { .. }))),
        "the loss went unnoticed"
    );
    assert!(
        outputs(&steps).is_empty(),
        "sockets were told of the loss: {:?}",
        outputs(&steps)
    );
    let after: Vec<_> = store.roster().into_iter().collect();
    assert_eq!(
        after, before,
        "the leases came back as they were (holder, joinedAt)"
    );
    // Their expiries are what the joins and the ping justified, no more.
    for (id, end) in store.expiries() {
        assert!(
            *end <= store.justified[id],
            "{id} ends later than justified"
        );
    }
}

#[test]
fn the_space_wakes_when_a_lease_ends_by_the_stores_clock() {
    // The local clock is 5 s ahead of the store's.
    let skew = 5_000;
    let mut store = SimStore::new(TTL, 1_000);
    // What the target learnt when it connected (it reads the store's
    // TIME once; every reply refines it).
    let mut clock = StoreClock::new();
    clock.observe(UnixMillis(T + skew), UnixMillis(T + skew), UnixMillis(T));
    let mut s = SharedSpace::new(
        SharedConfig::new(SpaceConfig {
            ttl_ms: TTL,
            max_message_bytes: 4096,
            ..SpaceConfig::default()
        }),
        clock,
    );
    s.subscription(Subscription::Confirmed, UnixMillis(T + skew));
    let step = join(&mut s, 1, "a", T + skew);
    let steps = run(&mut s, &mut store, step, T, T + skew);
    assert!(welcomed(&steps, 1));
    let wake = s.poll_timeout().expect("a lease to sweep");
    // The lease ends at store time T + TTL, local T + skew + TTL.
    assert!(
        wake.0 >= T + skew + TTL && wake.0 <= T + skew + TTL + 10,
        "woken at local +{} instead of +{}",
        wake.0 - T,
        skew + TTL
    );
    // joinedAt is the store's time, not the skewed local one.
    let welcome = &texts_to(&steps, 1)[0];
    assert!(welcome.contains(&UnixMillis(T).to_rfc3339()), "{welcome}");
}

#[test]
fn a_violations_close_waits_for_its_leave_and_a_leave_for_its_join() {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    let step = s.frame(ConnId(1), Frame::Oversized, UnixMillis(T + 10));
    assert_eq!(step.step.errors, [ErrorKind::TooLarge]);
    assert!(
        !step
            .step
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Close { .. })),
        "closed before its lease ended"
    );
    assert!(s.holds(ConnId(1)), "its outbox must stay until the close");
    let steps = run(&mut s, &mut store, step, T + 10, T + 11);
    assert!(outputs(&steps).contains(&Output::Close {
        conn: ConnId(1),
        code: CloseCode::MessageTooBig
    }));
    assert!(!s.holds(ConnId(1)));

    // A clean close while the join is in flight: the leave goes after it.
    let step = join(&mut s, 3, "c", T + 20);
    let join_call = step.calls[0].clone();
    let closed = s.closed(ConnId(3), Disconnect::Clean, UnixMillis(T + 21));
    assert!(closed.calls.is_empty(), "the leave overtook the join");
    let done = store.execute(&join_call, T + 22);
    let after = s.reply(join_call.id, Ok(done.reply), UnixMillis(T + 23));
    assert!(matches!(
        after.calls[..],
        [StoreCall {
            op: StoreOp::Leave { .. },
            ..
        }]
    ));
    run(&mut s, &mut store, after, T + 24, T + 24);
    assert!(!store.roster().keys().any(|id| id.as_str() == "c"));
}

#[test]
fn a_reply_of_an_unknown_history_is_not_applied() {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    store.lose(Loss::Flush);
    let step = join(&mut s, 3, "c", T + 50);
    let call = step.calls[0].clone();
    let done = store.execute(&call, T + 50);
    let reply: ScriptReply = done.reply;
    assert_ne!(reply.epoch.as_ref(), s.epoch());
    let step = s.reply(call.id, Ok(reply), UnixMillis(T + 51));
    assert!(
        !welcomed(std::slice::from_ref(&step), 3),
        "welcomed into a history the view is not at"
    );
    assert!(step
        .calls
        .iter()
        .any(|c| matches!(c.op, StoreOp::Resync { .. })));
    let steps = run(&mut s, &mut store, step, T + 52, T + 52);
    assert!(
        welcomed(&steps, 3),
        "the newcomer is welcomed once the view moved"
    );
    for conn in [1, 2] {
        let told = texts_to(&steps, conn);
        assert_eq!(
            told.len(),
            1,
            "{conn} told more than the newcomer's join: {told:?}"
        );
        assert!(told[0].contains("remote join"));
    }
}

fn join_query(s: &mut SharedSpace, conn: u64, query: &str, now: u64) -> SharedStep {
    let request = JoinRequest::parse("/room", Some(query)).unwrap();
    s.join(
        ConnId(conn),
        &request,
        || unreachable!("ids are given"),
        UnixMillis(now),
    )
}

/// The client entry `id` of the welcome among `texts`.
fn own_entry(texts: &[String], id: &str) -> serde_json::Value {
    let welcome: serde_json::Value = texts
        .iter()
        .map(|t| serde_json::from_str::<serde_json::Value>(t).unwrap())
        .find(|v| v.get("clients").is_some())
        .expect("a welcome");
    welcome["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
        .expect("itself in its welcome")
}

fn store_state(store: &SimStore, id: &str) -> Option<serde_json::Value> {
    let lease = store
        .roster()
        .into_iter()
        .find(|(k, _)| k.as_str() == id)?
        .1;
    lease
        .client
        .state
        .map(|s| serde_json::from_str(s.as_str()).unwrap())
}

#[test]
fn a_resumes_welcome_shows_the_state_it_brought_and_a_later_update_wins() {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = space();
    s.subscription(Subscription::Confirmed, UnixMillis(T));
    let step = join_query(&mut s, 1, r#"identity=ann&id=a&state={"n":1}"#, T);
    run(&mut s, &mut store, step, T, T);
    let step = join(&mut s, 2, "b", T + 1);
    run(&mut s, &mut store, step, T + 1, T + 1);
    s.closed(ConnId(1), Disconnect::Lost, UnixMillis(T + 2));

    // Welcomed by the join's reply.
    let step = join_query(&mut s, 3, r#"identity=ann&id=a&state={"n":2}"#, T + 10);
    let steps = run(&mut s, &mut store, step, T + 10, T + 10);
    assert_eq!(
        own_entry(&texts_to(&steps, 3), "a")["state"],
        json!({"n": 2})
    );
    let told = texts_to(&steps, 2);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("remote update") && told[0].contains(r#""n":2"#));
    assert_eq!(store_state(&store, "a"), Some(json!({"n": 2})));
    s.closed(ConnId(3), Disconnect::Lost, UnixMillis(T + 11));

    // Welcomed by the channel while the join's reply is still on its way;
    // the socket updates at once: its update is the latest, and wins.
    let step = join_query(&mut s, 4, r#"identity=ann&id=a&state={"n":3}"#, T + 20);
    let join_call = step.calls[0].clone();
    let done = store.execute(&join_call, T + 20);
    let mut told = Vec::new();
    for text in &done.published {
        told.push(s.message(text, UnixMillis(T + 21)));
    }
    assert_eq!(
        own_entry(&texts_to(&told, 4), "a")["state"],
        json!({"n": 3})
    );
    let update = json!({"action": "update", "state": {"n": 4}}).to_string();
    let step = s.frame(
        ConnId(4),
        Frame::Text(update.as_bytes()),
        UnixMillis(T + 200),
    );
    let mut steps = run(&mut s, &mut store, step, T + 200, T + 200);
    let step = s.reply(join_call.id, Ok(done.reply), UnixMillis(T + 201));
    steps.extend(run(&mut s, &mut store, step, T + 201, T + 201));
    assert_eq!(store_state(&store, "a"), Some(json!({"n": 4})));
    let last = texts_to(&steps, 2)
        .into_iter()
        .rfind(|t| t.contains("remote update"))
        .expect("b sees the update");
    assert!(last.contains(r#""n":4"#), "b's last view of a: {last}");
    // The join's reply settles the record the update made, sent again: a
    // repeat, which nobody is told of (an update is told even if equal).
    let updates = texts_to(&steps, 2)
        .into_iter()
        .filter(|t| t.contains("remote update"))
        .count();
    assert_eq!(updates, 1, "b told of the update once");
    assert!(
        texts_to(&steps, 4).is_empty(),
        "told about itself: {:?}",
        texts_to(&steps, 4)
    );
}

/// A failover to a replica that was behind keeps the epoch: the reply of an
/// update that ran in the lost history (at sequence 3) is applied, then the
/// store gives sequence 3 to a newcomer's join. The newcomer's lease runs
/// out unrenewed and another instance's sweep publishes its leave, which
/// arrives before the join's reply. Applied on top of the lost event, that
/// leave told the newcomer `expired` though it was never welcomed. The
/// contradiction (two events under sequence 3) now stops the view: nothing
/// more of that history is applied, the space forces a new one, and the
/// newcomer's join, sent again there, is welcomed.
#[test]
fn a_join_under_a_sequence_number_a_rollback_reused_is_welcomed_not_expired() {
    a_join_under_a_reused_number(true);
}

/// The same with the join's event lost on its way: nothing shows the
/// contradiction before the leave arrives (only the join's reply will).
/// The hub leaves an unwelcomed socket waiting on such a leave instead of
/// telling it `expired`; its join's reply then shows the contradiction, and
/// the space sends the join again in the history it forces.
#[test]
fn a_join_under_a_reused_number_whose_event_was_lost_is_welcomed_not_expired() {
    a_join_under_a_reused_number(false);
}

fn a_join_under_a_reused_number(event_arrives: bool) {
    let mut store = SimStore::new(TTL, 1_000);
    let mut s = two_joined(&mut store);
    store.save();
    // Steps seen, and the calls they asked for that are not run yet.
    let mut steps = Vec::new();
    let mut later = Vec::new();
    let mut took = |step: SharedStep, steps: &mut Vec<SharedStep>| {
        later.extend(step.calls.clone());
        steps.push(step);
    };

    // Socket 1's update runs at sequence 3; then the store goes back to 2.
    let update = json!({"action": "update", "state": {"n": 1}}).to_string();
    let step = s.frame(
        ConnId(1),
        Frame::Text(update.as_bytes()),
        UnixMillis(T + 100),
    );
    let [update_call] = &step.calls[..] else {
        panic!("one update call: {:?}", step.calls);
    };
    let lost = store.execute(update_call, T + 100);
    assert_eq!(lost.reply.seq, 3);
    store.lose(Loss::Rollback);
    // The failover drops the subscription: a resync, answered later.
    took(
        s.subscription(Subscription::Lost, UnixMillis(T + 101)),
        &mut steps,
    );
    took(
        s.subscription(Subscription::Confirmed, UnixMillis(T + 101)),
        &mut steps,
    );

    // A newcomer's join takes sequence 3 of the same epoch.
    let step = join(&mut s, 3, "c", T + 102);
    let [join_call] = &step.calls[..] else {
        panic!("one join call: {:?}", step.calls);
    };
    let joined = store.execute(join_call, T + 102);
    assert_eq!(joined.reply.epoch.as_ref(), s.epoch());
    assert_eq!(joined.reply.seq, 3);

    // The lost update's reply, then (if not lost) the join's event by the
    // channel.
    took(
        s.reply(update_call.id, Ok(lost.reply), UnixMillis(T + 103)),
        &mut steps,
    );
    if event_arrives {
        for text in &joined.published {
            took(s.message(text, UnixMillis(T + 104)), &mut steps);
        }
    }

    // Sockets 1 and 2 ping; the newcomer's lease runs out and another
    // instance's sweep ends it.
    for conn in [1, 2] {
        let step = s.frame(
            ConnId(conn),
            Frame::Text(PING_TEXT.as_bytes()),
            UnixMillis(T + 900),
        );
        for call in &step.calls {
            let done = store.execute(call, T + 900);
            took(
                s.reply(call.id, Ok(done.reply), UnixMillis(T + 900)),
                &mut steps,
            );
        }
        steps.push(step);
    }
    let sweep = StoreCall {
        id: longhouse_core::shared::CallId(99),
        history: Default::default(),
        op: StoreOp::Sweep,
    };
    let swept = store.execute(&sweep, T + 102 + TTL + 1);
    assert!(
        swept.published.iter().any(|m| m.contains(r#""leave""#)),
        "the newcomer's lease was not swept: {:?}",
        swept.published
    );
    for text in &swept.published {
        took(s.message(text, UnixMillis(T + 102 + TTL + 2)), &mut steps);
    }
    assert!(
        texts_to(&steps, 3).is_empty(),
        "the newcomer was told something before any welcome: {:?}",
        texts_to(&steps, 3)
    );

    // Then the join's reply, and everything it and the resync lead to.
    let now = T + 102 + TTL + 3;
    took(
        s.reply(join_call.id, Ok(joined.reply), UnixMillis(now)),
        &mut steps,
    );
    let rest = SharedStep {
        calls: std::mem::take(&mut later),
        ..SharedStep::default()
    };
    steps.extend(run(&mut s, &mut store, rest, now, now));

    let told = texts_to(&steps, 3);
    assert!(
        told.first().is_some_and(|t| t.contains(r#""clients""#)),
        "the newcomer's first message is not a welcome: {told:?}"
    );
    assert!(
        !told.iter().any(|t| t.contains("expired")),
        "the newcomer was told expired: {told:?}"
    );
    assert!(
        !outputs(&steps)
            .iter()
            .any(|o| matches!(o, Output::Close { .. })),
        "a socket was closed: {:?}",
        outputs(&steps)
    );
    let (_, c) = store
        .roster()
        .into_iter()
        .find(|(id, _)| id.as_str() == "c")
        .expect("the newcomer holds a lease");
    assert_eq!(c.holder, ConnId(3));
    // (And the update the rollback lost is back.)
    assert_eq!(store_state(&store, "a"), Some(json!({"n": 1})));
}
