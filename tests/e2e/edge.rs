//! What only the edge target has: a Durable Object that hibernates, pings
//! answered without waking it, and leases kept in its storage. These read
//! the handler trace the test target turns on (`TRACE_HANDLERS=1`).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use longhouse_e2e::client::{join_url, Incoming};
use longhouse_e2e::target::{fresh_port, workspace_root, ServerProcess, TargetOptions};
use longhouse_e2e::worker_target::{persist_dir, WorkerTarget};
use longhouse_e2e::{Client, Ctx};
use serde_json::{json, Value};

/// Handler invocations the object logged for `space` so far.
fn handler_lines(process: &ServerProcess, space: &str, handler: &str) -> usize {
    let space = serde_json::to_string(space).expect("a string");
    process
        .log()
        .lines()
        .filter(|l| l.contains(&format!("\"space\":{space}")))
        .filter(|l| l.contains(&format!("\"event\":\"{handler}\"")))
        .count()
}

/// Polls the trace until `handler` has been logged `count` times for
/// `space`, at most `timeout`.
async fn await_handler(
    process: &ServerProcess,
    space: &str,
    handler: &str,
    count: usize,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = handler_lines(process, space, handler);
        if seen >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{handler} logged {seen} times for {space}, expected {count} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins `space` as `identity` with `?state=` (form-encoded as browsers
/// do) and waits for the welcome.
async fn join_with_state(
    base: &str,
    space: &str,
    identity: &str,
    id: Option<&str>,
    state: &Value,
) -> Result<Client> {
    let encoded: String = form_urlencoded::byte_serialize(state.to_string().as_bytes()).collect();
    let url = format!(
        "{}&state={encoded}",
        join_url(base, space, Some(identity), id)
    );
    let mut c = Client::connect_url(&url).await?;
    c.identity = identity.to_owned();
    c.label = format!("{identity:?}");
    c.expect_welcome().await?;
    Ok(c)
}

/// The state the welcome's roster gives client `id` (`Null`: none).
fn welcome_state(c: &Client, id: &str) -> Result<Value> {
    let welcome = c
        .log
        .iter()
        .find_map(|r| match &r.what {
            Incoming::Text(t) => serde_json::from_str::<Value>(t).ok(),
            _ => None,
        })
        .context("no welcome in the log")?;
    let entry = welcome["clients"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id))
        .with_context(|| format!("{id} not in the welcome {welcome}"))?;
    Ok(entry.get("state").cloned().unwrap_or(Value::Null))
}

/// Waits for a `remote update` and returns its subject's id and state
/// (`Null`: cleared).
async fn expect_update(c: &mut Client, timeout: Duration) -> Result<(String, Value)> {
    let (v, _) = c.recv_json_timed(timeout).await?;
    ensure!(
        v["event"] == "remote update",
        "{}: expected a remote update, got {v}",
        c.label
    );
    let id = v["client"]["id"].as_str().context("update without id")?;
    Ok((
        id.to_owned(),
        v["client"].get("state").cloned().unwrap_or(Value::Null),
    ))
}

/// `{"action":"update","state":state}`.
async fn update(c: &mut Client, state: &Value) -> Result<()> {
    c.send_json(&json!({"action": "update", "state": state}))
        .await
}

/// A held update is sent by the object's alarm once its interval has
/// passed, and only then: three updates sent at once reach the other client
/// as the first at once and the last about one interval later (or as all
/// three, should the machine stall between them), and a space where nothing
/// is held does not wake the object again before its next lease expiry.
pub async fn held_update_is_sent_by_an_alarm_when_due_and_only_then(_cx: &Ctx) -> Result<()> {
    let interval = Duration::from_millis(1000);
    let process = tokio::task::spawn_blocking(move || {
        WorkerTarget::new().start_with_vars(
            TargetOptions::DEFAULT,
            &[("UPDATE_INTERVAL_MS", "1000")],
            "edge-flush",
        )
    })
    .await??;
    let outcome = async {
        let base = process.ws_base();
        let space = "held-updates";
        let mut a = Client::join(&base, space, "alice", None).await?;
        let mut b = Client::join(&base, space, "bob", None).await?;
        a.expect_join(&b.member()).await?;
        let alarms = handler_lines(&process, space, "alarm");
        let sent = Instant::now();
        for n in 1..=3 {
            update(&mut a, &json!({ "n": n })).await?;
        }
        let mut seen = Vec::new();
        while seen.last() != Some(&json!({"n": 3})) {
            let (id, state) = expect_update(&mut b, interval + Duration::from_secs(5)).await?;
            ensure!(id == a.id, "an update of {id}, not alice");
            seen.push(state);
        }
        let took = sent.elapsed();
        ensure!(
            seen.first() == Some(&json!({"n": 1})),
            "bob saw {seen:?}: the first update is not held"
        );
        if seen.len() < 3 {
            // Something was held, and no message came after it: only the
            // alarm can have sent it, not before its interval.
            ensure!(
                took >= interval - Duration::from_millis(50),
                "the held update came {took:?} after the first; the interval is {interval:?}"
            );
            await_handler(&process, space, "alarm", alarms + 1, Duration::from_secs(1)).await?;
        }
        a.expect_silence().await?;
        // Nothing is held now and the next lease ends in a minute: no alarm
        // for the next three seconds.
        let after = handler_lines(&process, space, "alarm");
        b.expect_silence_for(Duration::from_secs(3)).await?;
        let later = handler_lines(&process, space, "alarm");
        ensure!(
            later == after,
            "{} alarms ran in a quiet space with nothing held",
            later - after
        );
        Ok(())
    }
    .await;
    process.kill();
    outcome
}

/// Exact pings are answered by the runtime (`{"pong":true}`) without
/// running the object; any other spelling of a ping reaches it.
pub async fn exact_pings_do_not_wake_the_object(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let process = cx.dep().instances()[0].clone();
    let mut a = cx.join(&space, "alice").await?;
    for _ in 0..5 {
        a.ping().await?;
        a.expect_pong(Duration::from_secs(5)).await?;
    }
    a.send_text(r#"{"action":"ping","spelled":"otherwise"}"#)
        .await?;
    // The one message that reached the object: five exact pings went
    // before it on the same socket and none of them ran a handler.
    await_handler(&process, &space, "message", 1, Duration::from_secs(5)).await?;
    a.expect_silence().await?;
    let seen = handler_lines(&process, &space, "message");
    ensure!(
        seen == 1,
        "{seen} message handlers ran for 6 pings, 5 of them exact"
    );
    Ok(())
}

/// After more than ten idle seconds the object is evicted; the space it
/// rebuilds from storage and attachments still joins, renews (pings
/// answered while it slept count), leaves and expires correctly, and keeps
/// every lease's latest state (section 10: the state survives what the
/// lease survives) and its updates flowing.
pub async fn space_keeps_working_after_the_object_hibernates(cx: &Ctx) -> Result<()> {
    let ttl = cx.ttl();
    let space = cx.space();
    let process = cx.dep().instances()[0].clone();
    let mut a = join_with_state(
        &process.ws_base(),
        &space,
        "alice",
        None,
        &json!({"cursor": 1}),
    )
    .await?;
    let mut x = cx.join(&space, "xavier").await?;
    a.expect_join(&x.member()).await?;
    update(&mut a, &json!({"cursor": 2, "name": "Alice"})).await?;
    let (_, seen) = expect_update(&mut x, Duration::from_secs(5)).await?;
    ensure!(
        seen == json!({"cursor": 2, "name": "Alice"}),
        "xavier saw {seen}"
    );
    let x_welcomed = x.welcomed_at.context("welcomed")?;
    let rebuilds = handler_lines(&process, &space, "rebuild");
    // Idle for eleven seconds; alice pings (auto-answered) so her lease
    // outlives xavier's, who never pings.
    let idle_until = Instant::now() + Duration::from_secs(11);
    while Instant::now() < idle_until {
        a.ping().await?;
        a.expect_pong(Duration::from_secs(5)).await?;
        longhouse_e2e::let_time_pass(Duration::from_secs(2)).await;
    }
    let mut b = cx.join(&space, "bob").await?;
    ensure!(
        handler_lines(&process, &space, "rebuild") > rebuilds,
        "the object did not rebuild after eleven idle seconds: no hibernation to test"
    );
    ensure!(
        b.roster.contains(&a.member()) && b.roster.contains(&x.member()),
        "rebuilt roster lost someone: {:?}",
        b.roster
    );
    let kept = welcome_state(&b, &a.id)?;
    ensure!(
        kept == json!({"cursor": 2, "name": "Alice"}),
        "alice's state after the object hibernated: {kept}"
    );
    a.expect_join(&b.member()).await?;
    x.expect_join(&b.member()).await?;
    update(&mut a, &json!({"cursor": 3})).await?;
    for c in [&mut x, &mut b] {
        let (id, seen) = expect_update(c, Duration::from_secs(5)).await?;
        ensure!(
            id == a.id && seen == json!({"cursor": 3}),
            "{} saw {id}: {seen}",
            c.label
        );
    }
    // xavier's lease ends one TTL after his join: expired and 4000 to him,
    // a leave to the others within a second, and nothing for alice.
    let expired = x.recv_json_timed(ttl + Duration::from_secs(2)).await?.0;
    ensure!(
        expired == serde_json::json!({"event": "expired"}),
        "xavier got {expired}"
    );
    x.expect_close(4000).await?;
    let left = a
        .expect_leave_within(&x.member(), ttl + Duration::from_secs(2))
        .await?;
    ensure!(
        left >= x_welcomed + ttl - Duration::from_millis(50)
            && left <= x_welcomed + ttl + Duration::from_secs(1),
        "xavier's leave came {:?} after his welcome; the lease is {ttl:?}",
        left - x_welcomed
    );
    b.expect_leave(&x.member()).await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;
    a.close().await?;
    Ok(())
}

/// Leases, states included, are in the object's storage: `wrangler dev`
/// restarted between a disconnect and a resume (as a deploy would) loses
/// nobody and no state, and the resumes are silent (a resume with another
/// `state=` makes one update).
pub async fn presence_survives_a_restart_of_wrangler_dev(cx: &Ctx) -> Result<()> {
    let options = TargetOptions::DEFAULT;
    let space = cx.space();
    let target = WorkerTarget::new();
    let label = "edge-restart";
    let first_port = fresh_port()?;
    let persist = persist_dir(label, first_port)?;
    let (first, persist) = {
        let persist2 = persist.clone();
        let p = tokio::task::spawn_blocking(move || {
            target.start_on(options, label, first_port, &persist2)
        })
        .await??;
        (p, persist)
    };
    let base = first.ws_base();
    let mut a = join_with_state(&base, &space, "alice", None, &json!({"typing": false})).await?;
    let mut b = Client::join(&base, &space, "bob", None).await?;
    a.expect_join(&b.member()).await?;
    update(&mut a, &json!({"typing": true})).await?;
    let (_, seen) = expect_update(&mut b, Duration::from_secs(5)).await?;
    ensure!(seen == json!({"typing": true}), "bob saw {seen}");
    let (alice, bob) = (a.member(), b.member());
    first.kill();
    drop((a, b));

    let second_port = fresh_port()?;
    let second = tokio::task::spawn_blocking(move || {
        WorkerTarget::new().start_on(options, label, second_port, &persist)
    })
    .await??;
    let base = second.ws_base();
    let outcome = async {
        let b2 = Client::join(&base, &space, "bob", Some(&bob.id)).await?;
        ensure!(
            b2.member() == bob,
            "bob came back as {:?}, was {bob:?}",
            b2.member()
        );
        ensure!(
            b2.roster.contains(&alice),
            "alice's lease did not survive the restart: {:?}",
            b2.roster
        );
        let kept = welcome_state(&b2, &alice.id)?;
        ensure!(
            kept == json!({"typing": true}),
            "alice's state after the restart: {kept}"
        );
        let mut b2 = b2;
        let a2 = Client::join(&base, &space, "alice", Some(&alice.id)).await?;
        ensure!(a2.member() == alice, "alice came back as {:?}", a2.member());
        b2.expect_silence().await?;
        // A resume with a different `state=`: one update, no join or leave.
        let a3 =
            join_with_state(&base, &space, "alice", Some(&alice.id), &json!({"away": 1})).await?;
        ensure!(a3.member() == alice, "alice came back as {:?}", a3.member());
        let (id, seen) = expect_update(&mut b2, Duration::from_secs(5)).await?;
        ensure!(
            id == alice.id && seen == json!({"away": 1}),
            "bob saw {id}: {seen}"
        );
        b2.expect_silence().await?;
        Ok(())
    }
    .await;
    second.kill();
    outcome
}

/// Shows that the lingering connection after an object's 4000 or 4001 is
/// the runtime's (README, "Closes on the edge"), with the minimal Worker of
/// `tests/fixtures/close-hang` and no Longhouse code: a hibernatable
/// socket closed in its own `webSocketMessage` ends at once, one closed by
/// an alarm only when the object hibernates, about 10 s later; a socket of
/// the standard API ends at once. Should a workerd release end this, the
/// case fails, and `PromptServerCloses` can be given to the edge.
pub async fn runtime_keeps_a_hibernatable_socket_closed_from_an_alarm_open(cx: &Ctx) -> Result<()> {
    let config = workspace_root().join("tests/fixtures/close-hang/wrangler.toml");
    let process = tokio::task::spawn_blocking(move || {
        WorkerTarget::new().start_fixture(&config, "close-hang")
    })
    .await??;
    let outcome = async {
        let mut ended = Vec::new();
        for path in ["/own", "/standard", "/alarm"] {
            let mut c = Client::connect_url(&format!("{}{path}", process.ws_base())).await?;
            if path == "/own" {
                c.send_text("close me").await?;
            }
            let took = c
                .expect_close_then_end(4000, Duration::from_secs(20))
                .await?;
            eprintln!(
                "[close-hang] {path}: close 4000 -> end of connection in {} ms",
                took.as_millis()
            );
            ended.push((path, took));
        }
        let prompt = Duration::from_secs(1);
        ensure!(
            ended[0].1 < prompt && ended[1].1 < prompt && ended[2].1 >= Duration::from_secs(8),
            "close frame to end of connection: {ended:?}; expected /own and /standard at once \
             and /alarm at the object's hibernation, about 10 s (has workerd changed? see {})",
            cx.name
        );
        Ok(())
    }
    .await;
    process.kill();
    outcome
}
