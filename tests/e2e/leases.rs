//! PROTOCOL.md section 4, Leases.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use longhouse_e2e::client::Incoming;
use longhouse_e2e::Ctx;
use serde_json::Value;

use crate::support::{
    check_expiry_timing, expect_all_silent, expiry_wait, outlive_subject, ping_of_len, AT_ONCE,
};

/// A client pinging every TTL/3 is still there after 2×TTL; nobody sees it
/// leave and it gets no `expired`.
pub async fn ping_every_third_of_ttl_keeps_lease_past_two_ttls(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut pinger = cx.join(&space, "pinger").await?;
    observer.expect_join(&pinger.member()).await?;
    let start = Instant::now();
    while start.elapsed() < ttl * 2 {
        pinger.ping().await?;
        observer.ping().await?;
        // The wait between pings doubles as the check that nobody left.
        observer.expect_silence_for(ttl / 3).await?;
    }
    let late = cx.join(&space, "late").await?;
    ensure!(
        late.roster.contains(&pinger.member()),
        "the pinging client is gone after {:?}: {:?}",
        start.elapsed(),
        late.roster
    );
    pinger.expect_join(&late.member()).await?;
    observer.expect_join(&late.member()).await?;
    expect_all_silent(&mut [&mut pinger, &mut observer]).await
}

/// Extra fields in a ping are ignored: it still renews.
pub async fn ping_with_extra_fields_renews(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut pinger = cx.join(&space, "pinger").await?;
    observer.expect_join(&pinger.member()).await?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < ttl + ttl / 2 {
        n += 1;
        pinger
            .send_text(&format!(
                r#"{{"action":"ping","seq":{n},"extra":{{"nested":[1,"two",null]}},"ping":false}}"#
            ))
            .await?;
        observer.ping().await?;
        observer.expect_silence_for(ttl / 3).await?;
    }
    let late = cx.join(&space, "late").await?;
    ensure!(
        late.roster.contains(&pinger.member()),
        "pings with extra fields did not renew the lease: {:?}",
        late.roster
    );
    pinger.expect_join(&late.member()).await?;
    pinger.expect_silence().await
}

/// When the lease runs out the holder gets `{"event":"expired"}`, then close
/// 4000, and everyone else gets `remote leave`.
pub async fn expiry_sends_expired_then_close_4000_and_leave(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut idle = cx.join(&space, "idle").await?;
    observer.expect_join(&idle.member()).await?;
    outlive_subject(&mut observer, ttl).await?;
    let (v, _) = idle.recv_json_timed(expiry_wait(ttl)).await?;
    ensure!(
        v.get("event").and_then(Value::as_str) == Some("expired"),
        "expected {{\"event\":\"expired\"}}, got {v}"
    );
    idle.expect_close(4000).await?;
    observer.expect_leave(&idle.member()).await?;
    Ok(())
}

/// The leave after expiry comes no earlier than the lease end and within a
/// second after it, without any message arriving meanwhile.
pub async fn expiry_leave_within_one_second_of_lease_end(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let idle = cx.join(&space, "idle").await?;
    observer.expect_join(&idle.member()).await?;
    outlive_subject(&mut observer, ttl).await?;
    let at = observer
        .expect_leave_within(&idle.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing(
        "leave after idle lease",
        at,
        idle.connect_started,
        idle.welcomed_at.expect("welcomed"),
        ttl,
    )
}

/// A lease renewed by a ping runs TTL from that ping: the leave comes no
/// earlier than last ping + TTL and within a second after.
pub async fn expiry_counts_from_last_ping(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut subject = cx.join(&space, "subject").await?;
    observer.expect_join(&subject.member()).await?;
    // Age the lease past half its length, then renew it once.
    observer.expect_silence_for(ttl * 2 / 3).await?;
    observer.ping().await?;
    let before_ping = Instant::now();
    let sent = subject.ping().await?;
    outlive_subject(&mut observer, ttl).await?;
    let at = observer
        .expect_leave_within(&subject.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing("leave after last ping", at, before_ping, sent, ttl)
}

/// A ping just before the connection is lost still counts: the lease runs
/// TTL from that ping, not from the join (on the edge, where the runtime
/// answers the ping, the object counts it when the socket goes).
pub async fn lost_after_a_ping_expires_from_the_ping(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut subject = cx.join(&space, "subject").await?;
    observer.expect_join(&subject.member()).await?;
    observer.expect_silence_for(ttl * 2 / 3).await?;
    observer.ping().await?;
    let before_ping = Instant::now();
    let sent = subject.ping().await?;
    subject.drop_tcp()?;
    outlive_subject(&mut observer, ttl).await?;
    let at = observer
        .expect_leave_within(&subject.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing("leave after ping then loss", at, before_ping, sent, ttl)
}

/// Only `{"action":"ping"}` renews: unparsable, unrecognized and binary
/// messages, a keepalive echoed back, and near-misses of `ping` do not.
pub async fn non_ping_messages_do_not_renew(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut subject = cx.join(&space, "subject").await?;
    observer.expect_join(&subject.member()).await?;
    // Late in the lease, so that a renewal would push the leave far past
    // the bound checked below.
    outlive_subject(&mut observer, ttl).await?;
    for (text, error) in [
        ("ping", "Unparsable message sent"),
        (r#"{"ping":true}"#, "Unrecognized action sent"),
        (r#"{"pong":true}"#, "Unrecognized action sent"),
        (r#"{"action":"PING"}"#, "Unrecognized action sent"),
        (r#"{"action":"ping "}"#, "Unrecognized action sent"),
        (r#"{"action":"pong"}"#, "Unrecognized action sent"),
    ] {
        subject.send_text(text).await?;
        subject.expect_error(error).await?;
    }
    subject.send_binary(br#"{"action":"ping"}"#).await?;
    subject
        .expect_error("Binary messages are not supported")
        .await?;
    let at = observer
        .expect_leave_within(&subject.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing(
        "leave despite non-ping messages",
        at,
        subject.connect_started,
        subject.welcomed_at.expect("welcomed"),
        ttl,
    )
}

/// A clean close ends the lease at once: others get `remote leave` well
/// under a second later, long before the TTL.
pub async fn clean_close_leaves_at_once(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    ensure!(cx.ttl() >= Duration::from_secs(5), "needs a long TTL");
    let mut observer = cx.join(&space, "observer").await?;
    let mut leaver = cx.join(&space, "leaver").await?;
    observer.expect_join(&leaver.member()).await?;
    let closed = leaver.close().await?;
    let at = observer
        .expect_leave_within(&leaver.member(), AT_ONCE)
        .await?;
    ensure!(
        at - closed < AT_ONCE,
        "leave {} ms after the close",
        (at - closed).as_millis()
    );
    observer.expect_silence().await
}

/// A connection lost without a close frame keeps the lease: the leave comes
/// only at expiry (and then within a second).
pub async fn lost_connection_keeps_lease_until_expiry(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut observer = cx.join(&space, "observer").await?;
    let mut lost = cx.join(&space, "lost").await?;
    observer.expect_join(&lost.member()).await?;
    lost.drop_tcp()?;
    outlive_subject(&mut observer, ttl).await?;
    let at = observer
        .expect_leave_within(&lost.member(), expiry_wait(ttl))
        .await?;
    check_expiry_timing(
        "leave after lost connection",
        at,
        lost.connect_started,
        lost.welcomed_at.expect("welcomed"),
        ttl,
    )
}

/// A close the server makes for a protocol violation (1009 here) ends the
/// lease at once, like a clean close.
pub async fn server_close_1009_ends_lease_at_once(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    ensure!(cx.ttl() >= Duration::from_secs(5), "needs a long TTL");
    let max = cx.dep().options().max_message_bytes;
    let mut observer = cx.join(&space, "observer").await?;
    let mut violator = cx.join(&space, "violator").await?;
    observer.expect_join(&violator.member()).await?;
    let sent = Instant::now();
    violator.send_text(&ping_of_len(max + 1)).await?;
    violator.expect_rejected("Message too large", 1009).await?;
    let at = observer
        .expect_leave_within(&violator.member(), AT_ONCE)
        .await?;
    ensure!(
        at - sent < AT_ONCE,
        "leave {} ms after the violation",
        (at - sent).as_millis()
    );
    let late = cx.join(&space, "late").await?;
    ensure!(
        !late.roster.contains(&violator.member()),
        "the violator is still in the roster: {:?}",
        late.roster
    );
    Ok(())
}

/// A client that only sends exact pings (which the edge's runtime answers
/// without waking the object, so the object counts them lazily) keeps its
/// lease while someone else talks for three leases: no sweep run for the
/// talker's messages expires it. A silent client expires meanwhile, so
/// those sweeps did run.
pub async fn pinging_client_outlives_others_talking(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ttl = cx.ttl();
    let mut pinger = cx.join(&space, "pinger").await?;
    let mut talker = cx.join(&space, "talker").await?;
    pinger.expect_join(&talker.member()).await?;
    let mut silent = cx.join(&space, "silent").await?;
    pinger.expect_join(&silent.member()).await?;
    talker.expect_join(&silent.member()).await?;
    let (mut to_pinger, mut to_talker) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut pinged = start;
    pinger.ping().await?;
    while start.elapsed() < ttl * 3 {
        if pinged.elapsed() >= ttl / 4 {
            pinger.ping().await?;
            pinged = Instant::now();
        }
        // A ping the runtime does not answer itself: it reaches the
        // object (or the server) and renews the talker, about 8 a second.
        talker
            .send_text(r#"{"action":"ping","about":"something"}"#)
            .await?;
        to_pinger.extend(pinger.drain_for(Duration::from_millis(60)).await?);
        to_talker.extend(talker.drain_for(Duration::from_millis(60)).await?);
    }
    let silent_left = |got: &[Incoming]| {
        matches!(got, [one] if one.json().is_some_and(|v| {
            v["event"] == "remote leave" && v["client"]["id"] == silent.id.as_str()
        }))
    };
    ensure!(
        silent_left(&to_pinger) && silent_left(&to_talker),
        "over {:?} the pinger got {to_pinger:?} and the talker {to_talker:?}; \
         each should have seen the silent client leave, and nothing else",
        start.elapsed()
    );
    let (v, _) = silent.recv_json_timed(Duration::from_secs(1)).await?;
    ensure!(
        v == serde_json::json!({"event": "expired"}),
        "silent got {v}"
    );
    silent.expect_close(4000).await?;
    let late = cx.join(&space, "late").await?;
    ensure!(
        late.roster.contains(&pinger.member()) && late.roster.contains(&talker.member()),
        "after {:?} the roster is {:?}",
        start.elapsed(),
        late.roster
    );
    Ok(())
}
