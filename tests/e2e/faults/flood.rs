//! A flood of messages on a space's channel, far more than the
//! subscription's queue holds (`SUBSCRIPTION_QUEUE`): the messages beyond
//! it are dropped, every space resynchronises from Redis, events that
//! happen during the flood are not lost, and the instances' memory stays
//! bounded.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use longhouse_e2e::target::ServerLimits;
use longhouse_e2e::{unique, Client, Ctx, TargetOptions, View};

use super::{converge, events_channel, leases_key, ms, peak_rss_mib};

/// Messages in the flood, and the size of each.
const FLOOD: usize = 100_000;
const PAYLOAD: usize = 1_000;
/// What an instance's memory may grow by while the flood (100 MB) passes.
const GROWTH_MIB: u64 = 24;

/// `SPUBLISH channel payload` as RESP, `count` times.
fn flood_commands(channel: &str, count: usize) -> Vec<u8> {
    let payload = format!(r#"{{"flood":"{}"}}"#, "x".repeat(PAYLOAD - 12));
    let one = format!(
        "*3\r\n$8\r\nSPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n",
        channel.len(),
        payload.len()
    );
    one.repeat(count).into_bytes()
}

pub async fn subscription_flood_resyncs_and_loses_nothing(cx: &Ctx) -> Result<()> {
    let limits = ServerLimits {
        subscription_queue: Some(16),
        ..ServerLimits::NONE
    };
    let d = cx
        .start_own(TargetOptions::DEFAULT.with_limits(limits))
        .await?;
    let space = cx.space();
    let node = d.redis_nodes()[d.redis_node_for(&leases_key(&space))?].clone();
    let mut observers = Vec::new();
    for i in 0..d.instances().len() {
        let o = Client::join(&d.ws_base_of(i), &space, &format!("observer{i}"), None).await?;
        observers.push(o);
    }
    let mut leaver = Client::join(&d.ws_base(), &space, "leaver", None).await?;
    let mut members: Vec<_> = observers.iter().map(Client::member).collect();
    members.push(leaver.member());
    let everyone = View::from_roster(&members)?;
    let mut views = Vec::new();
    for o in &mut observers {
        let mut view = View::from_roster(&o.roster)?;
        converge(o, &mut view, &everyone).await?;
        views.push(view);
    }
    let before = peak_rss_mib(&d)?;

    let commands = flood_commands(&events_channel(&space), FLOOD);
    let started = Instant::now();
    let flood = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut child = Command::new("redis-cli")
            .args(["-p", &node.port.to_string(), "--pipe"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("redis-cli --pipe")?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&commands)
            .context("write the flood")?;
        ensure!(child.wait()?.success(), "redis-cli --pipe failed");
        Ok(())
    });
    // Events while the flood passes: one joins, one leaves.
    let joiner = Client::join(&d.ws_base(), &space, &unique("joiner"), None).await?;
    leaver.close().await?;
    flood.await??;
    let flooded = Instant::now();
    let truth_client = Client::join(&d.ws_base(), &space, "truth", None).await?;
    let truth = View::from_roster(&truth_client.roster)?;
    ensure!(
        truth.contains(&joiner.id) && !truth.contains(&leaver.id),
        "the true roster {:?} lost the joiner or kept the leaver",
        truth.members()
    );
    for (o, view) in observers.iter_mut().zip(views.iter_mut()) {
        converge(o, view, &truth).await?;
    }
    let converged = flooded.elapsed();
    // The high-water mark: whatever the flood made the instance hold.
    let peak = peak_rss_mib(&d)?;
    for (i, (b, p)) in before.iter().zip(&peak).enumerate() {
        ensure!(
            p.saturating_sub(*b) <= GROWTH_MIB,
            "instance {i}'s peak memory grew from {b} MiB to {p} MiB while the flood passed"
        );
    }
    let overflowed = d
        .instances()
        .iter()
        .filter(|p| p.log().contains("subscription queue full"))
        .count();
    ensure!(
        overflowed >= 1,
        "no instance reported its subscription queue full: the flood did not overflow it"
    );
    println!(
        "[faults] subscription flood: {FLOOD} messages of {PAYLOAD} bytes in {} ms; {overflowed} \
         instance(s) overflowed their queue and resynchronised; peak RSS {:?} -> {:?} MiB; observers \
         converged {} ms after the flood",
        ms(flooded - started),
        before,
        peak,
        ms(converged)
    );
    Ok(())
}
