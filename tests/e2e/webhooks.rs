//! Section 14, webhooks: member events POSTed to `WEBHOOK_URL`, signed,
//! batched, first sent within a second, retried with the same ids, in
//! order within a space, never for a resume, a second tab or a 4001
//! replacement. Every case starts its own receiver (a real HTTP server on
//! loopback) and its own deployment pointed at it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use longhouse_e2e::client::{parse_joined_at, unix_now};
use longhouse_e2e::receiver::Receiver;
use longhouse_e2e::target::ServerLimits;
use longhouse_e2e::{unique, Client, Ctx, Deployment, TargetOptions};
use serde_json::Value;

const SECRET: &str = "whsec_e2e";

/// How long a test waits for a webhook that should come at once.
const SOON: Duration = Duration::from_secs(5);

/// A receiver, and a deployment of the case's own whose webhooks go to it.
pub async fn with_receiver(
    cx: &Ctx,
    options: TargetOptions,
) -> Result<(Receiver, Arc<Deployment>)> {
    let receiver = Receiver::start(SECRET).await?;
    // The options are `Copy` with `'static` strings; one URL per case.
    let url: &'static str = Box::leak(receiver.url().into_boxed_str());
    let limits = ServerLimits {
        webhook: Some((url, SECRET)),
        ..options.limits
    };
    let dep = cx.start_own(options.with_limits(limits)).await?;
    Ok((receiver, dep))
}

async fn join(dep: &Deployment, space: &str, identity: &str) -> Result<Client> {
    Client::join(&dep.ws_base(), space, identity, None).await
}

/// `(type, identity, reason)` of events, for comparing sequences.
fn summary(events: &[Value]) -> Vec<(String, Option<String>, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("?").to_owned(),
                e["identity"].as_str().map(str::to_owned),
                e["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn ev(
    kind: &str,
    identity: Option<&str>,
    reason: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    (
        kind.into(),
        identity.map(Into::into),
        reason.map(Into::into),
    )
}

/// The whole life of a space that one member joined and left for
/// `reason`: occupied, joined, left, vacated.
fn lone_member(identity: &str, reason: &str) -> Vec<(String, Option<String>, Option<String>)> {
    vec![
        ev("space.occupied", None, None),
        ev("member.joined", Some(identity), None),
        ev("member.left", Some(identity), Some(reason)),
        ev("space.vacated", None, None),
    ]
}

/// Each event type, shaped as section 14 shows it (`id` unique, `space`,
/// `identity` absent for `space.*`, `reason` only on `member.left`, `at`
/// RFC 3339 with milliseconds), every request signed with the secret over
/// `t.body`, `t` the time of sending.
pub async fn each_event_type_signed_and_shaped(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    let space = format!("{}/ü x", cx.space());
    let (ann, bob) = (unique("ann|1"), unique("bob"));
    let mut a = join(&dep, &space, &ann).await?;
    let mut b = join(&dep, &space, &bob).await?;
    a.expect_join(&b.member()).await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;
    a.close().await?;
    let events = receiver.wait_for_delivered(6, SOON).await?;
    ensure!(
        summary(&events)
            == vec![
                ev("space.occupied", None, None),
                ev("member.joined", Some(&ann), None),
                ev("member.joined", Some(&bob), None),
                ev("member.left", Some(&bob), Some("left")),
                ev("member.left", Some(&ann), Some("left")),
                ev("space.vacated", None, None),
            ],
        "events: {events:#?}"
    );
    let mut ids = std::collections::HashSet::new();
    for e in &events {
        ensure!(e["space"] == space.as_str(), "space of {e}");
        ensure!(
            ids.insert(e["id"].as_str().context("id")?.to_owned()),
            "duplicate id {e}"
        );
        let at = e["at"].as_str().context("at")?;
        parse_joined_at(at).with_context(|| format!("at of {e}"))?;
        let obj = e.as_object().context("object")?;
        let is_space = e["type"].as_str().is_some_and(|t| t.starts_with("space."));
        ensure!(obj.contains_key("identity") != is_space, "identity in {e}");
        ensure!(
            obj.contains_key("reason") == (e["type"] == "member.left"),
            "reason in {e}"
        );
    }
    for r in receiver.requests() {
        ensure!(
            r.signature_ok,
            "bad signature {:?} for {}",
            r.signature,
            r.body
        );
        let t = r.signed_at.context("t")?;
        ensure!(
            t.abs_diff(unix_now()) <= 5,
            "t={t} is not the time of sending"
        );
    }
    Ok(())
}

/// A second tab of a member, a resume within the lease (after a lost
/// connection, and over a still open socket, which is closed 4001) and a
/// state update make no event: the next event the receiver gets is the
/// marker's.
pub async fn none_for_a_second_tab_a_resume_or_a_replacement(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let ann = unique("ann");
    let mut a = join(&dep, &space, &ann).await?;
    receiver.wait_for_delivered(2, SOON).await?;
    // A second tab.
    let mut tab = join(&dep, &space, &ann).await?;
    a.expect_join(&tab.member()).await?;
    // A lost connection, resumed.
    let id = a.id.clone();
    a.drop_tcp()?;
    let mut a2 = Client::join(&dep.ws_base(), &space, &ann, Some(&id)).await?;
    ensure!(a2.id == id, "resumed with another id");
    // A replacement over the open socket (4001).
    let mut a3 = Client::join(&dep.ws_base(), &space, &ann, Some(&id)).await?;
    a2.expect_close(4001).await?;
    // A state update (section 10) changes no member.
    a3.send_json(&serde_json::json!({"action": "update", "state": {"typing": true}}))
        .await?;
    let update = tab.recv_json().await?;
    ensure!(update["event"] == "remote update", "the tab got {update}");
    // The tab closes: ann still holds a lease, so no member.left.
    tab.close().await?;
    a3.expect_leave(&tab.member()).await?;
    let marker = unique("marker");
    let _m = join(&dep, &space, &marker).await?;
    let events = receiver.wait_for_delivered(3, SOON).await?;
    ensure!(
        summary(&events)
            == vec![
                ev("space.occupied", None, None),
                ev("member.joined", Some(&ann), None),
                ev("member.joined", Some(&marker), None),
            ],
        "events: {events:#?}"
    );
    Ok(())
}

/// A lease that runs out is `member.left` with `"reason":"expired"`.
pub async fn expiry_is_member_left_with_reason_expired(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::SHORT_LEASE).await?;
    let space = cx.space();
    let ann = unique("ann");
    let mut a = join(&dep, &space, &ann).await?;
    let v = a.recv_json().await?;
    ensure!(v["event"] == "expired", "expected expired, got {v}");
    a.expect_close(4000).await?;
    let events = receiver.wait_for_delivered(4, SOON).await?;
    ensure!(
        summary(&events) == lone_member(&ann, "expired"),
        "events: {events:#?}"
    );
    Ok(())
}

/// A receiver that fails twice then succeeds gets the same event ids three
/// times, the retries after about 1 s and then 2 s more (back-off).
pub async fn failing_receiver_gets_the_same_ids_again_with_backoff(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    receiver.fail_next(2);
    let space = cx.space();
    let _a = join(&dep, &space, &unique("ann")).await?;
    let requests = receiver
        .wait_until(Duration::from_secs(10), "a third attempt", |rs| {
            rs.len() >= 3
        })
        .await?;
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    ensure!(statuses[..3] == [500, 500, 204], "statuses {statuses:?}");
    let ids = requests[0].ids();
    ensure!(ids.len() == 2, "one batch of both events: {ids:?}");
    ensure!(
        requests[1].ids() == ids && requests[2].ids() == ids,
        "ids changed: {requests:#?}"
    );
    let gap1 = requests[1].at - requests[0].at;
    let gap2 = requests[2].at - requests[1].at;
    ensure!(
        gap1 >= Duration::from_millis(900) && gap1 < Duration::from_millis(1_900),
        "first retry after {gap1:?}"
    );
    ensure!(
        gap2 >= Duration::from_millis(1_900) && gap2 < Duration::from_millis(3_000),
        "second retry after {gap2:?}"
    );
    Ok(())
}

/// A POST that gets no answer in 10 s has failed: the same ids are sent
/// again, after the 10 s and the first back-off (1 s), and delivered.
pub async fn no_answer_in_ten_seconds_is_retried(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    receiver.hang_next(1);
    let space = cx.space();
    let ann = unique("ann");
    let _a = join(&dep, &space, &ann).await?;
    let requests = receiver
        .wait_until(Duration::from_secs(20), "a second attempt", |rs| {
            rs.len() >= 2
        })
        .await?;
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    ensure!(statuses[..2] == [0, 204], "statuses {statuses:?}");
    ensure!(
        requests[1].ids() == requests[0].ids(),
        "ids changed: {requests:#?}"
    );
    let gap = requests[1].at - requests[0].at;
    ensure!(
        gap >= Duration::from_millis(9_900) && gap < Duration::from_secs(14),
        "retry after {gap:?}"
    );
    let delivered = receiver.delivered();
    ensure!(
        summary(&delivered)
            == vec![
                ev("space.occupied", None, None),
                ev("member.joined", Some(&ann), None),
            ],
        "delivered: {delivered:#?}"
    );
    Ok(())
}

/// Many changes in quick succession reach the receiver in the order they
/// happened, whatever the batching: an observer stays in the space (so
/// it is occupied once), and sees each of five others join and leave.
pub async fn order_within_a_space_is_kept(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let observer = unique("observer");
    let mut o = join(&dep, &space, &observer).await?;
    let mut expected = vec![
        ev("space.occupied", None, None),
        ev("member.joined", Some(&observer), None),
    ];
    for round in 0..5 {
        let who = unique(&format!("p{round}"));
        let mut c = join(&dep, &space, &who).await?;
        o.expect_join(&c.member()).await?;
        c.close().await?;
        o.expect_leave(&c.member()).await?;
        expected.extend([
            ev("member.joined", Some(&who), None),
            ev("member.left", Some(&who), Some("left")),
        ]);
    }
    o.close().await?;
    expected.extend([
        ev("member.left", Some(&observer), Some("left")),
        ev("space.vacated", None, None),
    ]);
    let events = receiver.wait_for_delivered(expected.len(), SOON).await?;
    ensure!(summary(&events) == expected, "events: {events:#?}");
    Ok(())
}

/// A receiver that is down while events are made gets them all, in order,
/// once it is back (retried, not lost).
pub async fn receiver_down_then_back_gets_every_event(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    receiver.down();
    let space = cx.space();
    let ann = unique("ann");
    let mut a = join(&dep, &space, &ann).await?;
    a.close().await?;
    // Long enough for a first attempt and a retry to fail.
    longhouse_e2e::let_time_pass(Duration::from_millis(1_500)).await;
    receiver.up().await?;
    let events = receiver
        .wait_for_delivered(4, Duration::from_secs(10))
        .await?;
    ensure!(
        summary(&events) == lone_member(&ann, "left"),
        "events: {events:#?}"
    );
    Ok(())
}

/// The first attempt reaches the receiver within 1 s of the change:
/// measured from just before the join's handshake to the POST's arrival,
/// over 20 joins; the figures are printed for BENCHMARKS.md.
pub async fn first_attempt_within_one_second(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    let mut latencies = Vec::new();
    let mut clients = Vec::new();
    for i in 0..20 {
        let space = format!("{}-{i}", cx.space());
        let who = unique("ann");
        let before = receiver.requests().len();
        let started = Instant::now();
        clients.push(join(&dep, &space, &who).await?);
        let requests = receiver
            .wait_until(SOON, "the join's webhook", |rs| rs.len() > before)
            .await?;
        latencies.push(requests[before].at - started);
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = *latencies.last().expect("20 of them");
    println!(
        "webhook first attempt, {}: p50 {:.1} ms, max {:.1} ms (20 joins, join handshake to POST arrival)",
        cx.target().name(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    ensure!(max < Duration::from_secs(1), "first attempt after {max:?}");
    Ok(())
}

/// A kick ends the member with `"reason":"removed"`.
pub async fn kick_is_member_left_with_reason_removed(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, crate::api::ADMIN).await?;
    let space = cx.space();
    let ann = unique("ann");
    let mut a = join(&dep, &space, &ann).await?;
    let path = format!("/{space}?identity={ann}");
    let auth = format!("Bearer {}", crate::api::TOKEN);
    let r = longhouse_e2e::http::request(
        &dep.http_base(),
        "DELETE",
        &path,
        &[("Authorization", &auth)],
        None,
    )
    .await?;
    ensure!(r.status == 200, "DELETE: {} {}", r.status, r.body_text());
    let v = a.recv_json().await?;
    ensure!(v["error"] == "Removed", "kicked socket got {v}");
    a.expect_close(4003).await?;
    let events = receiver.wait_for_delivered(4, SOON).await?;
    ensure!(
        summary(&events) == lone_member(&ann, "removed"),
        "events: {events:#?}"
    );
    Ok(())
}

/// In memory, the outbox goes with the process: on SIGTERM the server
/// waits (within its shutdown grace) for pending events, so a batch that
/// failed once is retried and delivered before it exits 0.
pub async fn sigterm_delivers_pending_events_before_exit(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    receiver.fail_next(1);
    let space = cx.space();
    let ann = unique("ann");
    let _a = join(&dep, &space, &ann).await?;
    receiver
        .wait_until(SOON, "a first (failed) attempt", |rs| !rs.is_empty())
        .await?;
    let process = dep.instances()[0].clone();
    process.signal(libc::SIGTERM)?;
    let status = process.wait_exit(Duration::from_secs(10)).await?;
    ensure!(status.success(), "exit status {status}");
    let events = receiver.delivered();
    ensure!(
        summary(&events)
            == vec![
                ev("space.occupied", None, None),
                ev("member.joined", Some(&ann), None),
            ],
        "delivered before exit: {events:#?}"
    );
    Ok(())
}

/// Two instances on one Redis: the instance whose scripts made the events
/// (and whose pump owns the space's stream) is SIGKILLed while the
/// receiver is down; once the receiver is back, the other instance takes
/// the stream over (the owner key ran out, `XAUTOCLAIM`) and delivers
/// every event, in order, and the stream is trimmed.
pub async fn maker_killed_while_receiver_down_other_instance_delivers(cx: &Ctx) -> Result<()> {
    let (receiver, dep) = with_receiver(cx, TargetOptions::DEFAULT).await?;
    receiver.down();
    let space = cx.space();
    let ann = unique("ann");
    let mut a = Client::join(&dep.ws_base_of(0), &space, &ann, None).await?;
    a.close().await?;
    // The maker's pump owns the stream (its consumer id is in its log).
    let maker = dep.instances()[0].clone();
    let consumer = maker
        .log()
        .lines()
        .find_map(|l| l.split("consumer=").nth(1))
        .map(|c| {
            c.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        })
        .context("the maker's consumer id in its log")?;
    let key = format!("lh:{{{space}}}:webhooks");
    let node = dep.redis_node_for(&key)?;
    let redis = dep.redis_nodes()[node].clone();
    let owner_key = format!("{key}-owner");
    let owner = || longhouse_e2e::target::redis_cli(redis.port, &["GET", &owner_key]);
    let deadline = Instant::now() + Duration::from_secs(3);
    while owner()?.trim() != consumer {
        ensure!(
            Instant::now() < deadline,
            "the maker ({consumer}) does not own {key}: {:?}",
            owner()?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Attempts go and fail meanwhile.
    longhouse_e2e::let_time_pass(Duration::from_millis(1_500)).await;
    maker.signal(libc::SIGKILL)?;
    receiver.up().await?;
    let events = receiver
        .wait_for_delivered(4, Duration::from_secs(20))
        .await?;
    ensure!(
        summary(&events) == lone_member(&ann, "left"),
        "events: {events:#?}"
    );
    let taker = owner()?;
    ensure!(
        taker.trim() != consumer && !taker.trim().is_empty(),
        "owner after the takeover: {taker:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let len = longhouse_e2e::target::redis_cli(redis.port, &["XLEN", &key])?;
        if len.trim() == "0" {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "stream {key} still holds {len} entries"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
