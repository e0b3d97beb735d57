//! PROTOCOL.md section 10, presence state: at join, by update, coalesced,
//! in the leave, across a resume, and converging on every instance.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use longhouse_e2e::client::encode_space;
use longhouse_e2e::target::ServerLimits;
use longhouse_e2e::{Client, Ctx, TargetOptions};
use serde_json::{json, Value};

use crate::support::expect_all_silent;

/// The default `UPDATE_INTERVAL_MS`.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// The interval of [`LONG_INTERVAL`]: long enough to tell held from sent
/// on a loaded machine.
const LONG: Duration = Duration::from_millis(1000);

/// A deployment with `UPDATE_INTERVAL_MS=1000`.
pub const LONG_INTERVAL: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    update_interval_ms: Some(1000),
    ..ServerLimits::NONE
});

/// A deployment with `MAX_STATE_BYTES=64`.
pub const SMALL_STATES: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    max_state_bytes: Some(64),
    ..ServerLimits::NONE
});

/// A deployment with `UPDATE_INTERVAL_MS=0`: no coalescing.
pub const NO_COALESCING: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    update_interval_ms: Some(0),
    ..ServerLimits::NONE
});

/// `{base}/{space}?identity=…&…` with every parameter encoded.
pub fn url_with(base: &str, space: &str, identity: &str, params: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("identity", identity);
    for (k, v) in params {
        query.append_pair(k, v);
    }
    format!("{base}/{}?{}", encode_space(space), query.finish())
}

/// Joins `space` as `identity` with extra query parameters and waits for
/// the welcome.
pub async fn join_with(
    base: &str,
    space: &str,
    identity: &str,
    params: &[(&str, &str)],
) -> Result<Client> {
    let mut c = Client::connect_url(&url_with(base, space, identity, params)).await?;
    c.identity = identity.to_owned();
    c.label = format!("{identity:?}");
    c.expect_welcome().await?;
    Ok(c)
}

/// The raw JSON of the welcome's entry for `id`.
pub fn welcome_entry(c: &Client, id: &str) -> Result<Value> {
    let welcome = c
        .log
        .iter()
        .find_map(|r| r.what.json().filter(|v| v.get("clients").is_some()))
        .ok_or_else(|| anyhow!("{}: no welcome", c.label))?;
    welcome["clients"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id))
        .cloned()
        .ok_or_else(|| anyhow!("{}: {id} not in the welcome {welcome}", c.label))
}

/// The next message, which must be the event `kind`; its whole JSON.
pub async fn expect_event_json(c: &mut Client, kind: &str) -> Result<Value> {
    let v = c
        .recv_json()
        .await
        .with_context(|| format!("{}: waiting for {kind:?}", c.label))?;
    ensure!(
        v["event"] == kind,
        "{}: expected {kind:?}, got {v}",
        c.label
    );
    Ok(v)
}

/// An update message.
pub fn update(state: Value) -> Value {
    json!({"action": "update", "state": state})
}

/// A welcome and a `remote join` carry the joiner's `state=`; a client
/// without state has no `state` key anywhere.
pub async fn join_state_is_in_the_welcome_and_the_remote_join(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut a = cx.join(&space, "a").await?;
    let b = join_with(
        &base,
        &space,
        "b",
        &[("state", r#"{"name":"Bo","xy":[1,2.5]}"#)],
    )
    .await?;
    let mine = welcome_entry(&b, &b.id)?;
    ensure!(
        mine["state"] == json!({"name": "Bo", "xy": [1, 2.5]}),
        "welcome: {mine}"
    );
    let theirs = welcome_entry(&b, &a.id)?;
    ensure!(theirs.get("state").is_none(), "a has no state: {theirs}");
    let join = expect_event_json(&mut a, "remote join").await?;
    ensure!(
        join["client"] == mine,
        "remote join {join} vs welcome {mine}"
    );
    Ok(())
}

/// `state=` that is not JSON, not an object (null included) or over
/// `MAX_STATE_BYTES` (1024, counted in UTF-8 bytes): `Invalid state`,
/// close 1008, checked after `id`; nobody sees it.
pub async fn bad_join_state_is_invalid_state_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut a = cx.join(&space, "a").await?;
    let big = format!(r#"{{"p":"{}"}}"#, "x".repeat(1025 - 8));
    for state in ["{", "null", "[1]", "\"s\"", big.as_str()] {
        let mut c = Client::connect_url(&url_with(&base, &space, "b", &[("state", state)])).await?;
        c.expect_rejected("Invalid state", 1008)
            .await
            .with_context(|| format!("state={state:.40}"))?;
    }
    // The limit is on UTF-8 bytes: 517 characters, 1026 bytes.
    let wide = format!(r#"{{"p":"{}"}}"#, "é".repeat(509));
    let mut c = Client::connect_url(&url_with(&base, &space, "b", &[("state", &wide)])).await?;
    c.expect_rejected("Invalid state", 1008)
        .await
        .context("1026 UTF-8 bytes in 517 characters")?;
    // Checked after `id`: a bad id with a bad state is `Invalid id`.
    let both = url_with(&base, &space, "b", &[("id", "a.b"), ("state", "{")]);
    let mut c = Client::connect_url(&both).await?;
    c.expect_rejected("Invalid id", 1008)
        .await
        .context("bad id and bad state")?;
    // 1024 bytes exactly is fine.
    let fits = format!(r#"{{"p":"{}"}}"#, "x".repeat(1024 - 8));
    let b = join_with(&base, &space, "b", &[("state", &fits)]).await?;
    a.expect_join(&b.member()).await?;
    a.expect_silence().await
}

/// An update reaches every other client as `remote update` with the whole
/// client object; the sender gets nothing; `null` clears it (no key); a
/// newcomer's welcome has the latest.
pub async fn update_reaches_everyone_else_never_the_sender(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let (mut a, mut b, mut c) = crate::support::join_three(cx, &space).await?;
    a.send_json(&update(json!({"cursor": {"x": 3, "y": 4}})))
        .await?;
    for other in [&mut b, &mut c] {
        let v = expect_event_json(other, "remote update").await?;
        ensure!(v["client"]["id"] == a.id.as_str(), "{v}");
        ensure!(v["client"]["identity"] == "a" && v["client"]["joinedAt"] == a.joined_at.as_str());
        ensure!(
            v["client"]["state"] == json!({"cursor": {"x": 3, "y": 4}}),
            "{v}"
        );
    }
    a.expect_silence().await?;
    // Past the interval, so that this one is not held.
    longhouse_e2e::let_time_pass(INTERVAL * 2).await;
    a.send_json(&update(Value::Null)).await?;
    let v = expect_event_json(&mut b, "remote update").await?;
    ensure!(v["client"].get("state").is_none(), "cleared: {v}");
    expect_event_json(&mut c, "remote update").await?;
    longhouse_e2e::let_time_pass(INTERVAL * 2).await;
    a.send_json(&update(json!({"status": "away"}))).await?;
    expect_event_json(&mut b, "remote update").await?;
    expect_event_json(&mut c, "remote update").await?;
    let d = cx.join(&space, "d").await?;
    let seen = welcome_entry(&d, &a.id)?;
    ensure!(seen["state"] == json!({"status": "away"}), "{seen}");
    a.expect_join(&d.member()).await?;
    expect_all_silent(&mut [&mut a]).await
}

/// An update is an operation, not a change: one whose state equals the
/// state everybody already has still reaches everyone else, once, and the
/// sender still gets nothing back.
pub async fn an_update_equal_to_the_current_state_is_still_sent(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let (mut a, mut b, mut c) = crate::support::join_three(cx, &space).await?;
    let state = json!({"status": "here", "xy": [1, 2]});
    for round in ["first", "the same again", "and again"] {
        // Held by coalescing or not, each reaches the others in time.
        a.send_json(&update(state.clone())).await?;
        for other in [&mut b, &mut c] {
            let v = expect_event_json(other, "remote update")
                .await
                .with_context(|| format!("update {round}"))?;
            ensure!(v["client"]["id"] == a.id.as_str(), "{round}: {v}");
            ensure!(v["client"]["state"] == state, "{round}: {v}");
        }
    }
    expect_all_silent(&mut [&mut a, &mut b, &mut c]).await
}

/// A bad update gets its error and changes nothing: missing or non-object
/// `state` is `Invalid state`, over 1024 bytes `State too large`; the
/// socket stays open and nobody sees anything.
pub async fn bad_update_is_refused_and_changes_nothing(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut a = join_with(&base, &space, "a", &[("state", r#"{"v":1}"#)]).await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let big = format!(r#"{{"p":"{}"}}"#, "x".repeat(1025 - 8));
    let too_large = format!(r#"{{"action":"update","state":{big}}}"#);
    for (text, error) in [
        (r#"{"action":"update"}"#, "Invalid state"),
        (r#"{"action":"update","state":[1]}"#, "Invalid state"),
        (r#"{"action":"update","state":"x"}"#, "Invalid state"),
        (too_large.as_str(), "State too large"),
    ] {
        a.send_text(text).await?;
        a.expect_error(error)
            .await
            .with_context(|| format!("{text:.60}"))?;
    }
    b.expect_silence().await?;
    // Still open, still with its state.
    let c = cx.join(&space, "c").await?;
    let seen = welcome_entry(&c, &a.id)?;
    ensure!(seen["state"] == json!({"v": 1}), "{seen}");
    a.expect_join(&c.member()).await?;
    Ok(())
}

/// Reads `remote update`s of `id` until `last` arrives or `within` passes;
/// returns them all (other events fail the case).
async fn updates_until(
    c: &mut Client,
    id: &str,
    last: &Value,
    within: Duration,
) -> Result<Vec<Value>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.last().map(|v: &Value| &v["client"]["state"]) != Some(last) {
        let Some((v, _)) = c.poll_json(deadline).await? else {
            bail!(
                "{}: {} updates and never {last}: last {:?}",
                c.label,
                got.len(),
                got.last()
            );
        };
        ensure!(v["event"] == "remote update", "{}: {v}", c.label);
        ensure!(v["client"]["id"] == id, "{}: {v}", c.label);
        got.push(v);
    }
    Ok(got)
}

/// A burst of 100 updates is seen as far fewer, in order, the last equal
/// to the final state, on every other client.
pub async fn burst_of_100_updates_is_coalesced_to_the_last(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let started = Instant::now();
    for n in 0..100 {
        a.send_json(&update(json!({ "n": n }))).await?;
    }
    let sent_for = started.elapsed();
    let got = updates_until(&mut b, &a.id, &json!({"n": 99}), Duration::from_secs(5)).await?;
    // The server may take longer to read the burst than the client took to
    // send it (the edge's runtime hands the object one frame at a time, in
    // events of their own): the intervals that passed are counted until the
    // last update arrived.
    let seen_for = started.elapsed();
    let ns: Vec<u64> = got
        .iter()
        .map(|v| v["client"]["state"]["n"].as_u64().unwrap_or(u64::MAX))
        .collect();
    ensure!(ns.windows(2).all(|w| w[0] < w[1]), "out of order: {ns:?}");
    // One per interval, plus the first and the trailing one.
    let bound = (seen_for.as_millis() / INTERVAL.as_millis()) as usize + 3;
    ensure!(
        got.len() <= bound.min(50),
        "{} updates seen for a burst of 100 sent in {sent_for:?}, the last seen after {seen_for:?}: {ns:?}",
        got.len()
    );
    b.expect_silence().await?;
    println!(
        "[state] a burst of 100 updates (sent in {} ms) was seen as {}",
        sent_for.as_millis(),
        got.len()
    );
    Ok(())
}

/// 60 updates a second for 4 seconds (the default limits): never
/// disconnected, the others see at most about one per interval, and the
/// last they see is the final state.
pub async fn sixty_updates_a_second_are_not_disconnected(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let period = Duration::from_millis(1000 / 60);
    let started = Instant::now();
    let mut seen = 0usize;
    let mut last = Value::Null;
    let total = 240;
    for n in 0..total {
        a.send_json(&update(json!({ "n": n }))).await?;
        // Read what has arrived meanwhile, so nobody's queue fills.
        let next = started + period * (n + 1);
        while let Some((v, _)) = b.poll_json(next).await? {
            ensure!(v["event"] == "remote update", "{v}");
            seen += 1;
            last = v["client"]["state"].clone();
        }
        ensure!(
            a.drain_for(Duration::ZERO).await?.is_empty(),
            "the sender got something: {}",
            a.transcript()
        );
    }
    let fin = json!({ "n": total - 1 });
    if last != fin {
        seen += updates_until(&mut b, &a.id, &fin, Duration::from_secs(5))
            .await?
            .len();
    }
    let elapsed = started.elapsed();
    let bound = (elapsed.as_millis() / INTERVAL.as_millis()) as usize + 3;
    ensure!(seen <= bound, "{seen} updates seen in {elapsed:?}");
    // Still open and in the space.
    a.ping().await?;
    crate::support::expect_still_open(cx, &space, &mut a).await?;
    println!(
        "[state] {total} updates at 60/s over {} ms: {seen} seen by the other, no close",
        elapsed.as_millis()
    );
    Ok(())
}

/// A client that closes with an update still held is seen leaving with
/// that latest state; no `remote update` follows the leave.
pub async fn leave_carries_the_latest_state_and_nothing_follows(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    for n in 0..5 {
        b.send_json(&update(json!({ "n": n }))).await?;
    }
    b.close().await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (v, _) = a
            .poll_json(deadline)
            .await?
            .ok_or_else(|| anyhow!("no leave: {}", a.transcript()))?;
        match v["event"].as_str() {
            Some("remote update") => continue,
            Some("remote leave") => {
                ensure!(v["client"]["state"] == json!({"n": 4}), "leave: {v}");
                ensure!(v["reason"] == "left", "leave: {v}");
                break;
            }
            _ => bail!("unexpected {v}"),
        }
    }
    a.expect_silence_for(INTERVAL * 6).await
}

/// An update renews the lease like a ping: a client that only updates
/// outlives two TTLs.
pub async fn update_renews_the_lease(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let ttl = cx.ttl();
    let until = Instant::now() + ttl * 2 + ttl / 2;
    let mut n = 0;
    while Instant::now() < until {
        a.send_json(&update(json!({ "n": n }))).await?;
        b.ping().await?;
        n += 1;
        let next = Instant::now() + ttl / 3;
        while let Some((v, _)) = b.poll_json(next).await? {
            ensure!(v["event"] == "remote update", "b got {v}");
        }
    }
    crate::support::expect_still_open(cx, &space, &mut a).await
}

/// A resume keeps the lease's state and makes no event; `state=` on a
/// resume replaces it with exactly one `remote update` (no join, no
/// leave); the same state again makes nothing.
pub async fn resume_keeps_state_and_state_on_resume_is_one_update(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut a = join_with(&base, &space, "a", &[("state", r#"{"v":1}"#)]).await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    a.drop_tcp()?;
    let a2 = join_with(&base, &space, "a", &[("id", &a.id)]).await?;
    ensure!(
        a2.member() == a.member(),
        "{} vs {}",
        a2.member(),
        a.member()
    );
    let mine = welcome_entry(&a2, &a.id)?;
    ensure!(mine["state"] == json!({"v": 1}), "resume kept {mine}");
    b.expect_silence().await?;
    let mut a3 = join_with(
        &base,
        &space,
        "a",
        &[("id", &a.id), ("state", r#"{"v":1}"#)],
    )
    .await?;
    b.expect_silence().await?;
    let mut a4 = join_with(
        &base,
        &space,
        "a",
        &[("id", &a.id), ("state", r#"{"v":2}"#)],
    )
    .await?;
    a3.expect_close(4001).await?;
    // The resumer's own welcome already shows the state it brought.
    let mine = welcome_entry(&a4, &a.id)?;
    ensure!(mine["state"] == json!({"v": 2}), "resumed with {mine}");
    let v = expect_event_json(&mut b, "remote update").await?;
    ensure!(v["client"]["state"] == json!({"v": 2}), "{v}");
    ensure!(v["client"]["joinedAt"] == a.joined_at.as_str(), "{v}");
    expect_all_silent(&mut [&mut b, &mut a4]).await
}

/// Several clients on every instance update at once; once quiet, every
/// client's view of every other's state equals that client's last update,
/// and every view's roster is the true one.
pub async fn states_converge_on_every_instance(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut clients = Vec::new();
    for i in 0..6 {
        let c = cx.join(&space, &format!("u{i}")).await?;
        clients.push(c);
    }
    // Everyone's view: welcome, then events.
    let mut views: Vec<BTreeMap<String, Value>> = clients
        .iter()
        .map(|c| {
            let welcome = c
                .log
                .iter()
                .find_map(|r| r.what.json().filter(|v| v.get("clients").is_some()))
                .expect("welcomed");
            welcome["clients"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone()))
                .collect()
        })
        .collect();
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for round in 0..20 {
        for (i, c) in clients.iter_mut().enumerate() {
            if (round + i) % 3 == 0 {
                let state = json!({"who": i, "round": round});
                c.send_json(&update(state.clone())).await?;
                last.insert(c.id.clone(), state);
            }
        }
        longhouse_e2e::let_time_pass(Duration::from_millis(7)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (c, view) in clients.iter_mut().zip(views.iter_mut()) {
        loop {
            let settled = last.iter().all(|(id, s)| {
                *id == c.id || view.get(id).is_some_and(|e| e.get("state") == Some(s))
            });
            let wait = if settled {
                (Instant::now() + longhouse_e2e::SILENCE).min(deadline)
            } else {
                deadline
            };
            let Some((v, _)) = c.poll_json(wait).await? else {
                ensure!(
                    settled,
                    "{}: never converged: {view:?} vs {last:?}",
                    c.label
                );
                break;
            };
            let entry = v["client"].clone();
            let id = entry["id"].as_str().unwrap_or_default().to_owned();
            match v["event"].as_str() {
                Some("remote update") => {
                    ensure!(
                        view.contains_key(&id),
                        "{}: update before join: {v}",
                        c.label
                    );
                    ensure!(id != c.id, "{}: told of itself: {v}", c.label);
                    view.insert(id, entry);
                }
                Some("remote join") => {
                    ensure!(
                        view.insert(id, entry).is_none(),
                        "{}: doubled join",
                        c.label
                    );
                }
                _ => bail!("{}: unexpected {v}", c.label),
            }
        }
        ensure!(view.len() == 6, "{}: roster {:?}", c.label, view.keys());
    }
    Ok(())
}

/// A native instance SIGTERMed on Redis: its clients resume on the other
/// instance with their state (the latest, an update held by coalescing
/// included), and nobody sees an update, a join or a leave.
pub async fn sigterm_instance_clients_resume_with_their_state(cx: &Ctx) -> Result<()> {
    let d = cx.start_own(longhouse_e2e::TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let mut a = Client::join(&d.ws_base_of(0), &space, "alice", None).await?;
    let mut b = join_with(&d.ws_base_of(1), &space, "bob", &[("state", r#"{"n":0}"#)]).await?;
    a.expect_join(&b.member()).await?;
    // Two updates at once: the second is held by coalescing when the
    // signal comes.
    b.send_json(&update(json!({"n": 1}))).await?;
    let v = expect_event_json(&mut a, "remote update").await?;
    ensure!(v["client"]["state"] == json!({"n": 1}), "{v}");
    b.send_json(&update(json!({"n": 2}))).await?;
    // Frames of one socket are handled in order: once this error is back,
    // the update has been taken (and is held, well within the interval).
    b.send_text(r#"{"action":"sync-point"}"#).await?;
    b.expect_error("Unrecognized action").await?;
    d.instances()[1].signal(libc::SIGTERM)?;
    b.expect_close(1012).await?;
    // The held update may reach alice before the instance stops: that is
    // the update made, not one caused by the restart.
    let deadline = Instant::now() + INTERVAL * 10;
    if let Some((v, _)) = a.poll_json(deadline).await? {
        ensure!(
            v["event"] == "remote update" && v["client"]["state"] == json!({"n": 2}),
            "alice got {v}"
        );
    }
    let mut b2 = join_with(&d.ws_base_of(0), &space, "bob", &[("id", &b.id)]).await?;
    ensure!(
        b2.member() == b.member(),
        "{} vs {}",
        b2.member(),
        b.member()
    );
    let mine = welcome_entry(&b2, &b.id)?;
    ensure!(mine["state"] == json!({"n": 2}), "resumed with {mine}");
    let seen = welcome_entry(&b2, &a.id)?;
    ensure!(seen.get("state").is_none(), "{seen}");
    expect_all_silent(&mut [&mut a, &mut b2]).await
}

/// Updates count towards `MESSAGE_RATE`: a client that updates faster than
/// it allows is closed 1008 (`Rate limit exceeded`) and seen leaving.
pub async fn updates_count_towards_the_message_rate(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let message = r#"{"action":"update","state":{"n":1}}"#;
    let reason =
        crate::reasons::flood_until_rate_limited(cx, &space, &mut a, message, "remote update")
            .await?;
    ensure!(reason == "left", "{reason}");
    Ok(())
}

/// `UPDATE_INTERVAL_MS=0`: every update reaches the others, none held or
/// skipped, in the order sent.
pub async fn interval_zero_sends_every_update(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let total = 20u64;
    for n in 0..total {
        a.send_json(&update(json!({ "n": n }))).await?;
    }
    for n in 0..total {
        let v = expect_event_json(&mut b, "remote update").await?;
        ensure!(v["client"]["id"] == a.id.as_str(), "{v}");
        ensure!(v["client"]["state"] == json!({ "n": n }), "update {n}: {v}");
    }
    expect_all_silent(&mut [&mut a, &mut b]).await
}

/// An update sent within the interval after the last one sent is held,
/// replaced by a later one, and sent once the interval has passed: three
/// updates at once reach the others as the first at once and the last
/// about one interval later (all three only should the machine stall
/// between sending them), never as the middle one alone.
pub async fn held_update_is_sent_once_the_interval_has_passed(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    for n in 0..3 {
        a.send_json(&update(json!({ "n": n }))).await?;
    }
    let mut seen = Vec::new();
    while seen.last().map(|(n, _)| *n) != Some(2) {
        let (v, at) = b.recv_json_timed(LONG * 3).await?;
        ensure!(v["event"] == "remote update", "{v}");
        let n = v["client"]["state"]["n"].as_u64().unwrap_or(u64::MAX);
        seen.push((n, at));
    }
    let ns: Vec<u64> = seen.iter().map(|(n, _)| *n).collect();
    ensure!(ns == [0, 2] || ns == [0, 1, 2], "seen {ns:?}");
    let first = seen[0].1;
    let (_, held_at) = seen[1];
    let gap = held_at - first;
    // The first was sent at once; the next left a whole interval after it
    // (less the first's delivery time), and within the protocol's bound.
    ensure!(
        gap >= LONG - crate::support::DELIVERY_SLACK && gap <= LONG + Duration::from_millis(500),
        "the held update came {gap:?} after the first ({ns:?})"
    );
    expect_all_silent(&mut [&mut a, &mut b]).await
}

/// `MAX_STATE_BYTES` is honoured (64 here): at join, 65 bytes are `Invalid
/// state` (1008) and 64 fit; by update, 65 bytes are `State too large` and
/// 64 reach the others.
pub async fn max_state_bytes_setting_is_honoured(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let of_len = |len: usize| format!(r#"{{"p":"{}"}}"#, "x".repeat(len - 8));
    let (fits, over) = (of_len(64), of_len(65));
    let mut c = Client::connect_url(&url_with(&base, &space, "a", &[("state", &over)])).await?;
    c.expect_rejected("Invalid state", 1008).await?;
    let mut a = join_with(&base, &space, "a", &[("state", &fits)]).await?;
    let mut b = cx.join(&space, "b").await?;
    ensure!(welcome_entry(&b, &a.id)?["state"] == serde_json::from_str::<Value>(&fits)?);
    a.expect_join(&b.member()).await?;
    a.send_text(&format!(r#"{{"action":"update","state":{over}}}"#))
        .await?;
    a.expect_error("State too large").await?;
    // Another state of 64 bytes (the same again might be no change).
    let other = fits.replace('x', "y");
    a.send_text(&format!(r#"{{"action":"update","state":{other}}}"#))
        .await?;
    let v = expect_event_json(&mut b, "remote update").await?;
    ensure!(
        v["client"]["state"] == serde_json::from_str::<Value>(&other)?,
        "{v}"
    );
    expect_all_silent(&mut [&mut a, &mut b]).await
}
