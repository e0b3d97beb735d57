//! One instance's clock is five seconds ahead (libfaketime): leases are
//! judged by Redis's clock, so a client that pings every half second on
//! the other instance is never expired, one that stops is expired on time,
//! and the skewed instance does not stamp joins in the future.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use longhouse_e2e::client::parse_joined_at;
use longhouse_e2e::{Client, Ctx, TargetOptions, View};

use super::{ms, watch};
use crate::support::check_expiry_timing;

const SKEW_S: i64 = 5;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn skewed_instance_expires_by_the_stores_clock(cx: &Ctx) -> Result<()> {
    let d = cx
        .start_own(
            TargetOptions::DEFAULT
                .with_ttl_ms(2_000)
                .with_clock_skew_s(SKEW_S),
        )
        .await?;
    let ttl = d.ttl();
    let space = cx.space();
    let skewed = d.instances().len() - 1;
    // The observer joins through the skewed instance.
    let before = now_ms();
    let mut o = Client::join(&d.ws_base_of(skewed), &space, "observer", None).await?;
    let after = now_ms();
    let stamped = parse_joined_at(&o.member().joined_at)?;
    let mut p = Client::join(&d.ws_base_of(0), &space, "pinger", None).await?;
    let s_start = Instant::now();
    let s = Client::join(&d.ws_base_of(0), &space, "stopper", None).await?;
    let s_joined = Instant::now();
    o.expect_join(&p.member()).await?;
    o.expect_join(&s.member()).await?;
    p.expect_join(&s.member()).await?;

    let mut views = vec![
        View::from_roster(&[o.member(), p.member(), s.member()])?,
        View::from_roster(&[o.member(), p.member(), s.member()])?,
    ];
    let watched = Duration::from_secs(8);
    let seen = watch(
        &mut [&mut o, &mut p],
        &[true, true],
        &mut views,
        watched,
        Duration::from_millis(500),
    )
    .await?;
    for e in &seen {
        ensure!(
            e.kind == "remote leave" && e.member == s.member(),
            "client {} saw {} of {} (only the stopper may leave)",
            e.who,
            e.kind,
            e.member
        );
    }
    ensure!(
        stamped >= before - 1_000 && stamped <= after + 1_000,
        "the skewed instance stamped joinedAt {} ms away from the real time",
        if stamped > after {
            stamped - after
        } else {
            before - stamped
        }
    );
    let mut late = Vec::new();
    for who in 0..2 {
        let leave = seen
            .iter()
            .find(|e| e.who == who)
            .with_context(|| format!("client {who} never saw the stopper leave"))?;
        check_expiry_timing("the stopper", leave.at, s_start, s_joined, ttl)?;
        late.push(ms(leave.at.saturating_duration_since(s_joined + ttl)));
    }
    println!(
        "[faults] clock {SKEW_S} s ahead on one instance: joinedAt within {} ms of the real time; \
         a client pinging every 500 ms kept its lease for {} s (TTL {} ms); the stopper's leave \
         came {:?} ms after its lease ended",
        (stamped - (before + after) / 2).abs(),
        watched.as_secs(),
        ms(ttl),
        late
    );
    Ok(())
}
