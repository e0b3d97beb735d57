//! Redis loses a space's data while instances stay connected (`FLUSHALL`;
//! an eviction under a `volatile-*` policy or a failover to a replica that
//! was behind do the same to a space): a newcomer is still welcomed, a
//! client that stopped pinging before the loss is still swept within its
//! TTL and a second, and every view converges to the sockets actually
//! connected, nobody else seeming to leave or join.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use longhouse_e2e::{unique, Client, Ctx, TargetOptions, View};

use super::{ms, watch};
use crate::support::check_expiry_timing;

pub async fn flushall_under_connected_clients(cx: &Ctx) -> Result<()> {
    let d = cx
        .start_own(TargetOptions::DEFAULT.with_ttl_ms(3_000))
        .await?;
    let ttl = d.ttl();
    let space = cx.space();
    let mut a = Client::join(&d.ws_base(), &space, "alice", None).await?;
    let mut b = Client::join(&d.ws_base(), &space, "bob", None).await?;
    let c_start = Instant::now();
    let mut c = Client::join(&d.ws_base(), &space, "carol", None).await?;
    let c_joined = Instant::now();
    a.expect_join(&b.member()).await?;
    a.expect_join(&c.member()).await?;
    b.expect_join(&c.member()).await?;
    // Carol's browser dies: her lease runs on, unrenewed.
    c.drop_tcp()?;
    let mut views = vec![
        View::from_roster(&[a.member(), b.member(), c.member()])?,
        View::from_roster(&[a.member(), b.member(), c.member()])?,
    ];
    watch(
        &mut [&mut a, &mut b],
        &[true, true],
        &mut views,
        Duration::from_millis(300),
        ttl / 4,
    )
    .await?;

    let flushed = Instant::now();
    d.redis_cli_all(&["FLUSHALL"])?;
    let mut n = Client::join(&d.ws_base(), &space, &unique("newcomer"), None)
        .await
        .context("a newcomer after the flush was never welcomed")?;
    let welcomed = Instant::now();
    ensure!(
        n.roster.contains(&a.member()) && n.roster.contains(&b.member()),
        "the newcomer's welcome lost a connected client: {:?}",
        n.roster
    );
    let saw_carol = n.roster.contains(&c.member());
    views.push(View::from_roster(&n.roster)?);

    // Watch everyone, pinging, past carol's lease end and a second more.
    let until =
        (c_joined + ttl + Duration::from_millis(2_500)).saturating_duration_since(Instant::now());
    let seen = watch(
        &mut [&mut a, &mut b, &mut n],
        &[true, true, true],
        &mut views,
        until.max(Duration::from_secs(1)),
        ttl / 4,
    )
    .await?;
    for e in &seen {
        let expected = (e.kind == "remote leave" && e.member == c.member())
            || (e.kind == "remote join" && e.who < 2 && e.member == n.member());
        ensure!(
            expected,
            "client {} saw {} of {} (only carol's leave and the newcomer's join may happen)",
            e.who,
            e.kind,
            e.member
        );
    }
    for who in 0..3 {
        if who == 2 && !saw_carol {
            continue;
        }
        let leave = seen
            .iter()
            .find(|e| e.who == who && e.kind == "remote leave")
            .with_context(|| format!("client {who} never saw carol leave"))?;
        check_expiry_timing(
            "carol (lease lost in the flush)",
            leave.at,
            c_start,
            c_joined,
            ttl,
        )?;
    }
    let truth = View::from_roster(&[a.member(), b.member(), n.member()])?;
    for (i, v) in views.iter().enumerate() {
        ensure!(
            *v == truth,
            "client {i}'s view {:?} is not the connected clients {:?}",
            v.members(),
            truth.members()
        );
    }
    let carol_leave = seen
        .iter()
        .filter(|e| e.kind == "remote leave")
        .map(|e| e.at)
        .max()
        .expect("checked above");
    println!(
        "[faults] FLUSHALL: newcomer welcomed {} ms after the flush (carol {}in its welcome); \
         carol's leave {} ms after her lease ended (TTL {} ms); views converged",
        ms(welcomed - flushed),
        if saw_carol { "" } else { "not " },
        ms(carol_leave.saturating_duration_since(c_joined + ttl)),
        ms(ttl)
    );
    Ok(())
}
