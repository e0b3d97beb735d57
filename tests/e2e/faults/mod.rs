//! Faults of a Redis-backed deployment (issue 3): Redis restarted empty,
//! an instance SIGKILLed or SIGTERMed, the subscription connection killed;
//! and (issue 10) data lost under connected instances (`history`), clocks
//! that disagree (`clock`), a flooded subscription (`flood`). Each case
//! prints its timings (`cargo test … -- --nocapture` shows them).

pub mod clock;
pub mod flood;
pub mod history;

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use longhouse_e2e::target::redis_cli;
use longhouse_e2e::{http, unique, Client, Ctx, Deployment, Member, TargetOptions, View};

use crate::support::{check_expiry_timing, expect_all_silent, expiry_wait};

/// How long a case waits for an instance to notice Redis went or came back.
const NOTICE: Duration = Duration::from_secs(10);

/// Polls `GET /health` of every instance until each answers `want`;
/// returns when the last one did, and the body of the last answer.
pub(crate) async fn wait_health(d: &Deployment, want: u16) -> Result<(Instant, String)> {
    let deadline = Instant::now() + NOTICE;
    let mut body = String::new();
    for p in d.instances() {
        loop {
            if let Ok(r) = http::get(&p.http_base(), "/health").await {
                if r.status == want {
                    body = r.body_text();
                    break;
                }
            }
            ensure!(
                Instant::now() < deadline,
                "{} never answered /health with {want}",
                p.label
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok((Instant::now(), body))
}

pub(crate) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The store keys of a space (under its hash tag; case spaces need no
/// escaping).
pub(crate) fn leases_key(space: &str) -> String {
    format!("lh:{{{space}}}:leases")
}

pub(crate) fn events_channel(space: &str) -> String {
    format!("lh:{{{space}}}:events")
}

/// Redis (on a Cluster: the master of the space's slot) is killed and
/// comes back empty under connected clients: meanwhile joins are refused
/// with an error and 1011 (and a single Redis's health says 503 with a
/// reason), connected clients stay connected, nobody sees a leave, and
/// after recovery the old clients are still present, can ping, and joins
/// work.
pub async fn redis_restarted_empty_under_connected_clients(cx: &Ctx) -> Result<()> {
    let d = cx.start_own(TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let node = d.redis_node_for(&leases_key(&space))?;
    let mut a = Client::join(&d.ws_base(), &space, "alice", None).await?;
    let mut b = Client::join(&d.ws_base(), &space, "bob", None).await?;
    a.expect_join(&b.member()).await?;

    let killed = Instant::now();
    d.kill_redis_node(node)?;
    let mut outage = String::from("a join into the space was refused with 1011");
    if !d.is_cluster() {
        let (down_seen, reason) = wait_health(&d, 503).await?;
        ensure!(!reason.trim().is_empty(), "503 without a reason");
        outage = format!(
            "503 seen {} ms after the kill ({reason:?})",
            ms(down_seen - killed)
        );
    }
    let mut refused = Client::connect(&d.ws_base(), &space, Some("carol"), None).await?;
    refused.expect_error("").await?;
    refused.expect_close(1011).await?;

    let restarted = Instant::now();
    let redis = tokio::task::spawn_blocking({
        let d = d.clone();
        move || d.restart_redis_node(node)
    })
    .await??;
    let (up_seen, _) = wait_health(&d, 200).await?;
    // Nobody connected appears to have left, or joined again.
    expect_all_silent(&mut [&mut a, &mut b]).await?;
    let deadline = Instant::now() + NOTICE;
    loop {
        let keys = redis_cli(redis.port, &["KEYS", "lh:*"])?;
        if keys.contains(":leases") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the leases were not re-asserted in the new Redis: {keys:?}"
        );
        a.expect_silence().await?;
    }
    a.ping().await?;
    b.ping().await?;
    let newcomer = Client::join(&d.ws_base(), &space, &unique("late"), None).await?;
    ensure!(
        newcomer.roster.contains(&a.member()) && newcomer.roster.contains(&b.member()),
        "after recovery the roster lost someone: {:?}",
        newcomer.roster
    );
    a.expect_join(&newcomer.member()).await?;
    b.expect_join(&newcomer.member()).await?;
    println!(
        "[faults] redis restart{}: {outage}; healthy {} ms after the empty restart; no leave seen",
        if d.is_cluster() {
            " (the space's Cluster master)"
        } else {
            ""
        },
        ms(up_seen - restarted)
    );
    Ok(())
}

/// An instance is SIGKILLed: its clients' leases run out, and the other
/// instance's clients get the leaves within TTL + 1 s.
pub async fn sigkill_instance_leaves_reach_the_other_within_ttl(cx: &Ctx) -> Result<()> {
    let d = cx.start_own(TargetOptions::SHORT_LEASE).await?;
    let ttl = d.ttl();
    let space = cx.space();
    let mut a = Client::join(&d.ws_base_of(0), &space, "alice", None).await?;
    let b_start = Instant::now();
    let b = Client::join(&d.ws_base_of(1), &space, "bob", None).await?;
    let b_joined = Instant::now();
    a.expect_join(&b.member()).await?;
    let victim = d.instances()[1].clone();
    victim.signal(libc::SIGKILL)?;
    let killed = Instant::now();
    // Keep alice alive past bob's expiry.
    let mut leave_at = None;
    let deadline = Instant::now() + expiry_wait(ttl);
    while leave_at.is_none() {
        a.ping().await?;
        match a.expect_leave_within(&b.member(), ttl / 3).await {
            Ok(at) => leave_at = Some(at),
            Err(_) if Instant::now() < deadline => {}
            Err(e) => return Err(e.context("bob's leave never reached alice")),
        }
    }
    let leave_at = leave_at.expect("set");
    check_expiry_timing("bob (instance SIGKILLed)", leave_at, b_start, b_joined, ttl)?;
    println!(
        "[faults] SIGKILL: leave reached the other instance {} ms after the kill, \
         {} ms after bob's lease ran out (TTL {} ms)",
        ms(leave_at - killed),
        ms(leave_at.saturating_duration_since(b_joined + ttl)),
        ms(ttl)
    );
    a.expect_silence().await
}

/// An instance is SIGTERMed: its sockets close with 1012, the leases stay,
/// its clients resume on the other instance with their ids and joinedAt,
/// and nobody sees a leave (or a join).
pub async fn sigterm_instance_clients_resume_on_the_other(cx: &Ctx) -> Result<()> {
    let d = cx.start_own(TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let mut a = Client::join(&d.ws_base_of(0), &space, "alice", None).await?;
    let mut b = Client::join(&d.ws_base_of(1), &space, "bob", None).await?;
    let mut c = Client::join(&d.ws_base_of(1), &space, "carol", None).await?;
    a.expect_join(&b.member()).await?;
    a.expect_join(&c.member()).await?;
    b.expect_join(&c.member()).await?;
    let stopping = d.instances()[1].clone();
    let sent = Instant::now();
    stopping.signal(libc::SIGTERM)?;
    b.expect_close(1012).await?;
    c.expect_close(1012).await?;
    let closed = Instant::now();
    let b2 = Client::join(&d.ws_base_of(0), &space, "bob", Some(&b.id)).await?;
    let c2 = Client::join(&d.ws_base_of(0), &space, "carol", Some(&c.id)).await?;
    let resumed = Instant::now();
    for (old, new) in [(&b, &b2), (&c, &c2)] {
        ensure!(
            new.member() == old.member(),
            "{} resumed as {} instead of {}",
            old.label,
            new.member(),
            old.member()
        );
    }
    let mut b2 = b2;
    let mut c2 = c2;
    expect_all_silent(&mut [&mut a, &mut b2, &mut c2]).await?;
    println!(
        "[faults] SIGTERM: 1012 closes {} ms after the signal; both clients resumed on \
         the other instance {} ms later with the same ids and joinedAt; no event seen",
        ms(closed - sent),
        ms(resumed - closed)
    );
    Ok(())
}

/// Reads events until `view` equals `truth` and nothing more arrives for
/// a quiet period (or fails on a doubled event). Events still on their way
/// when the view first matches (a join and its leave, say) are applied too.
pub(crate) async fn converge(c: &mut Client, view: &mut View, truth: &View) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let quiet = (Instant::now() + longhouse_e2e::SILENCE).min(deadline);
        let wait_until = if view == truth { quiet } else { deadline };
        let Some((v, _)) = c.poll_json(wait_until).await? else {
            if view == truth {
                return Ok(());
            }
            bail!(
                "{}: view never converged: has {:?}, truth {:?}",
                c.label,
                view.members(),
                truth.members()
            );
        };
        let kind = v
            .get("event")
            .and_then(|e| e.as_str())
            .ok_or_else(|| anyhow!("{}: not an event: {v}", c.label))?
            .to_string();
        let member = Member::from_json(v.get("client").ok_or_else(|| anyhow!("no client: {v}"))?)?;
        view.apply(&kind, &member)
            .with_context(|| format!("{}'s view", c.label))?;
    }
}

/// The subscription connections are killed from Redis (`CLIENT KILL TYPE
/// pubsub`, on every node) while joins and leaves flow: every observer's
/// view still converges to the true roster, with nothing doubled.
pub async fn subscription_killed_while_events_flow(cx: &Ctx) -> Result<()> {
    let d = cx.start_own(TargetOptions::DEFAULT).await?;
    let space = cx.space();
    let mut observers = Vec::new();
    for i in 0..d.instances().len() * 2 {
        let o = Client::join(&d.ws_base(), &space, &format!("observer{i}"), None).await?;
        let view = View::from_roster(&o.roster)?;
        observers.push((o, view));
    }
    let mut kills = 0;
    let mut stayers = Vec::new();
    let started = Instant::now();
    for round in 0..30 {
        let mut c = Client::join(&d.ws_base(), &space, &format!("churn{round}"), None).await?;
        if round % 3 == 0 {
            stayers.push(c);
        } else {
            c.close().await?;
        }
        if round % 10 == 5 {
            let outs = d.redis_cli_all(&["CLIENT", "KILL", "TYPE", "pubsub"])?;
            let n: u32 = outs.iter().map(|o| o.trim().parse().unwrap_or(0)).sum();
            ensure!(n >= 1, "CLIENT KILL TYPE pubsub killed nothing: {outs:?}");
            kills += n;
        }
    }
    let churned = Instant::now();
    // Who is present: the observers and the stayers (the others closed
    // cleanly). Every observer converges to that, nothing doubled...
    let mut present: Vec<Member> = observers.iter().map(|(o, _)| o.member()).collect();
    present.extend(stayers.iter().map(Client::member));
    let expected = View::from_roster(&present)?;
    for (o, view) in observers.iter_mut() {
        converge(o, view, &expected).await?;
    }
    // ...and a newcomer's welcome says the same.
    let truth_client = Client::join(&d.ws_base(), &space, "truth", None).await?;
    let truth = View::from_roster(&truth_client.roster)?;
    present.push(truth_client.member());
    ensure!(
        truth == View::from_roster(&present)?,
        "the true roster {:?} is not who is present {:?}",
        truth.members(),
        present
    );
    for (o, view) in observers.iter_mut() {
        converge(o, view, &truth).await?;
    }
    println!(
        "[faults] CLIENT KILL TYPE pubsub: {kills} subscription connections killed during \
         30 joins ({} ms); {} observers converged {} ms after the churn, nothing doubled",
        ms(churned - started),
        observers.len(),
        ms(churned.elapsed())
    );
    Ok(())
}

/// Commands the scripts run inside Redis (commandstats counts them too).
const SCRIPT_INTERNAL: &[&str] = &[
    "time",
    "hget",
    "hmget",
    "hgetall",
    "hlen",
    "zcard",
    "del",
    "hlen",
    "hset",
    "hdel",
    "hvals",
    "zadd",
    "zrem",
    "zrange",
    "zrangebyscore",
    "zscore",
    "incr",
    "get",
    "set",
    "pexpire",
    "spublish",
    "publish",
];

/// A join into a space the instance already serves costs one round trip:
/// exactly one EVALSHA, and no other command comes from a client (what
/// commandstats adds besides are the script's own calls inside Redis).
pub async fn join_is_one_evalsha(cx: &Ctx) -> Result<()> {
    let d = cx
        .start_own(TargetOptions::DEFAULT.with_keepalive_ms(0))
        .await?;
    let space = cx.space();
    let base = d.ws_base_of(0);
    let mut a = Client::join(&base, &space, "alice", None).await?;
    let stats = |text: &str| -> Result<(u64, u64)> {
        let mut total = 0;
        let mut evalsha = 0;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let (name, fields) = rest.split_once(':').context("cmdstat line")?;
            let calls: u64 = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .context("calls=")?
                .parse()?;
            if name == "info" || SCRIPT_INTERNAL.contains(&name) {
                continue;
            }
            total += calls;
            if name == "evalsha" {
                evalsha += calls;
            }
        }
        Ok((total, evalsha))
    };
    // Summed over every node (a Cluster has three).
    let all_stats = || -> Result<(u64, u64)> {
        let mut sum = (0, 0);
        for text in d.redis_cli_all(&["INFO", "commandstats"])? {
            let (t, e) = stats(&text)?;
            sum = (sum.0 + t, sum.1 + e);
        }
        Ok(sum)
    };
    let before = all_stats()?;
    let b = Client::join(&base, &space, "bob", None).await?;
    a.expect_join(&b.member()).await?;
    let after = all_stats()?;
    let (total, evalsha) = (after.0 - before.0, after.1 - before.1);
    println!("[faults] one join: {evalsha} EVALSHA, {total} client commands in all");
    ensure!(
        evalsha == 1 && total == 1,
        "a join took {evalsha} EVALSHA and {total} commands in all"
    );
    Ok(())
}

/// An event one of several watched clients received.
pub(crate) struct Seen {
    /// Which client (its index).
    pub who: usize,
    /// `remote join` or `remote leave`.
    pub kind: String,
    pub member: Member,
    pub at: Instant,
}

/// Watches `clients` together for `period`, pinging those marked in
/// `pinging` every `ping_every`, applying every event to its `views` entry
/// (which fails on a doubled join or a leave never joined); returns the
/// events. Anything else (`expired`, an error, a close) fails the case.
pub(crate) async fn watch(
    clients: &mut [&mut Client],
    pinging: &[bool],
    views: &mut [View],
    period: Duration,
    ping_every: Duration,
) -> Result<Vec<Seen>> {
    let deadline = Instant::now() + period;
    let mut last_ping = vec![Instant::now(); clients.len()];
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for (i, c) in clients.iter_mut().enumerate() {
            if pinging[i] && last_ping[i].elapsed() >= ping_every {
                last_ping[i] = c.ping().await?;
            }
            let slice = (Instant::now() + Duration::from_millis(10)).min(deadline);
            while let Some((v, at)) = c.poll_json(slice).await? {
                let kind = v
                    .get("event")
                    .and_then(|e| e.as_str())
                    .ok_or_else(|| anyhow!("{} got something else than an event: {v}", c.label))?
                    .to_string();
                ensure!(
                    kind == "remote join" || kind == "remote leave",
                    "{} got {v}",
                    c.label
                );
                let member =
                    Member::from_json(v.get("client").ok_or_else(|| anyhow!("no client: {v}"))?)?;
                views[i]
                    .apply(&kind, &member)
                    .with_context(|| format!("{}'s view", c.label))?;
                seen.push(Seen {
                    who: i,
                    kind,
                    member,
                    at,
                });
            }
        }
    }
    Ok(seen)
}

/// The peak resident memory so far (`VmHWM`) of each instance of `d`, MiB.
pub(crate) fn peak_rss_mib(d: &Deployment) -> Result<Vec<u64>> {
    d.instances()
        .iter()
        .map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid()))?;
            let kib: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no VmHWM for {}", p.label))?;
            Ok(kib / 1024)
        })
        .collect()
}
