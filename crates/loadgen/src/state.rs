//! `state`: N clients in one space, each replacing its presence state (a
//! live cursor) R times a second for D seconds. Updates delivered per
//! second, latency to the last receiver, the coalescing each receiver saw,
//! the server's CPU; then every receiver's view of every sender's state is
//! compared with that sender's final state.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{Counters, Spec, Storm, Target};
use crate::common::{
    close_all, load, open_all, percentiles, round3, run_tag, settle, settle_with, show, show_cpu,
    CpuMeter,
};
use crate::cursor;
use crate::latency::{measure, Received, Sent};

/// Flags of `state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Clients in the space, every one of them sending.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Clients that send (the first ones); the others only receive. 0:
    /// every client sends. With few senders in a large space, the cost of
    /// one update to its many recipients is what is measured.
    #[arg(long, default_value_t = 0)]
    pub senders: usize,
    /// Updates per second each sending client sends.
    #[arg(long, default_value_t = 20)]
    pub rate_hz: u32,
    /// Seconds of updates.
    #[arg(long, default_value_t = 30)]
    pub secs: u32,
    /// Connects in flight while filling the space.
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// Give up waiting for events after this long without progress, ms.
    #[arg(long, default_value_t = 5000)]
    pub quiet_ms: u64,
    /// The server's pid, for the CPU it spends on the storm.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Runs `state`; returns the report and whether every receiver ended with
/// every sender's final state (and nothing failed, dropped or misordered).
pub async fn run(target: &Target, args: &StateArgs) -> (Value, bool) {
    let tag = run_tag();
    let space = format!("state-{tag}");
    let counters = Arc::new(Counters::default());
    let quiet = Duration::from_millis(args.quiet_ms);
    let specs: Vec<Spec> = (0..args.clients)
        .map(|i| Spec {
            space: space.clone(),
            identity: format!("user{i}"),
            ping: None,
            state: Some(cursor::state(i as u64, 0)),
        })
        .collect();
    let members = open_all(target, specs, args.in_flight, &counters, 0).await;
    let live: Vec<(u32, &crate::client::Client)> = members
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_live())
        .map(|(i, c)| (i as u32, c))
        .collect();
    let held = live.len();
    let joined_pairs = (held * held.saturating_sub(1)) as u64;
    settle(
        || load(&counters.joins),
        joined_pairs / 2,
        quiet,
        Duration::ZERO,
    )
    .await;
    let sending = if args.senders == 0 {
        held
    } else {
        args.senders.min(held)
    };
    // Every receiver's view of every sender's final state.
    let pairs = (sending * held.saturating_sub(1)) as u64;
    let incomplete_views = live
        .iter()
        .filter(|(_, c)| c.log.lock().expect("log lock").views.len() + 1 != held)
        .count();
    println!(
        "state: {held}/{} clients in one space ({:?}), {sending} of them sending {} updates/s each for {} s",
        args.clients, target.protocol, args.rate_hz, args.secs
    );

    // The storm: every sender on its own phase within one period.
    let count = args.rate_hz.max(1) * args.secs;
    let period = Duration::from_secs(1) / args.rate_hz.max(1);
    for (_, c) in &live {
        c.log.lock().expect("log lock").final_seq = Some(count);
    }
    let joins_before = load(&counters.joins);
    let meter = CpuMeter::start(args.server_pid);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    for (k, (n, c)) in live.iter().take(sending).enumerate() {
        c.storm(Storm {
            start: start + period.mul_f64(k as f64 / sending.max(1) as f64),
            period,
            count,
            n: u64::from(*n),
        });
    }
    let all_sent = settle(
        || load(&counters.sent),
        sending as u64 * u64::from(count),
        quiet,
        Duration::ZERO,
    )
    .await;
    // The final states may queue behind a backlog: any delivery is progress.
    let settled = settle_with(
        || load(&counters.finals),
        pairs,
        || load(&counters.updates),
        quiet,
        Duration::from_millis(200),
    )
    .await;
    let cpu = meter.finish();
    // Nobody leaves before the close below: any leave (and the join that
    // brings the client back) is a flicker, e.g. a server timing a busy
    // client out.
    let spurious_leaves = load(&counters.leaves);
    let rejoins = load(&counters.joins).saturating_sub(joins_before);

    // Figures, from every log.
    let logs: Vec<_> = live
        .iter()
        .map(|(n, c)| (*n, c.log.lock().expect("log lock")))
        .collect();
    let senders: Vec<Sent> = logs
        .iter()
        .take(sending)
        .map(|(n, l)| Sent {
            n: *n,
            at: &l.sent_at,
        })
        .collect();
    let receivers: Vec<Received> = logs
        .iter()
        .map(|(n, l)| Received {
            n: *n,
            deliveries: &l.deliveries,
        })
        .collect();
    let f = measure(&senders, &receivers);
    // Every receiver's view of every sender, against the sender's last state.
    let mut lost = 0u64;
    for (r, rl) in &logs {
        for (s, sl) in logs.iter().take(sending) {
            if r == s {
                continue;
            }
            let want = sl.own_state.as_deref().map(parse);
            let got = rl
                .views
                .get(&sl.id)
                .and_then(|v| v.state.as_deref())
                .map(parse);
            if want != got || want.is_none() {
                lost += 1;
            }
        }
    }
    let sum = |g: fn(&crate::client::Log) -> u64| logs.iter().map(|(_, l)| g(l)).sum::<u64>();
    let out_of_order = sum(|l| l.out_of_order);
    let before_join = sum(|l| l.before_join);
    let errors = load(&counters.errors);
    let first_errors: Vec<String> = logs
        .iter()
        .flat_map(|(_, l)| l.errors.iter().cloned())
        .take(3)
        .collect();
    drop(receivers);
    drop(senders);
    drop(logs);

    let all: Vec<&crate::client::Client> = members.iter().collect();
    close_all(&all, args.in_flight).await;
    let dropped = load(&counters.dropped);
    let failed = load(&counters.failed);

    let delivered: u64 = f.received.iter().sum();
    let sent_to: u64 = f.sent_to.iter().sum();
    let span_secs = f
        .span
        .map_or(0.0, |(a, b)| b.saturating_sub(a) as f64 / 1e6);
    let per_sec = if span_secs > 0.0 {
        delivered as f64 / span_secs
    } else {
        0.0
    };
    let ratios: Vec<f64> = f
        .received
        .iter()
        .zip(&f.sent_to)
        .filter(|(_, &s)| s > 0)
        .map(|(&r, &s)| r as f64 / s as f64)
        .collect();
    let min_ratio = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max_ratio = ratios.iter().copied().fold(0.0, f64::max);
    let to_last = percentiles(&f.to_last_ms);
    let receipt = percentiles(&f.receipt_ms);
    println!(
        "  sent {} updates ({count} per client; all sent: {all_sent}); delivered {delivered} of {sent_to} sent to receivers in {span_secs:.3} s = {per_sec:.0} updates/s",
        f.sent
    );
    println!(
        "  update to the last receiver (it or a newer one): {}",
        show(&to_last)
    );
    println!("  each receipt, from its send: {}", show(&receipt));
    println!(
        "  coalescing: each receiver got {:.3} of the updates sent to it on average (min {:.3}, max {:.3}); {} of {} updates reached every receiver as themselves",
        delivered as f64 / sent_to.max(1) as f64,
        if ratios.is_empty() { 0.0 } else { min_ratio },
        max_ratio,
        f.delivered_to_all,
        f.sent
    );
    println!(
        "  final states: {lost} of {pairs} views lost (settled: {settled}); never reached {}; out of order {out_of_order}; before join {before_join}; incomplete views before the storm {incomplete_views}",
        f.unreached
    );
    println!(
        "  leaves seen of clients that did not leave {spurious_leaves}, joins seen again {rejoins}"
    );
    println!("  cpu: {}", show_cpu(&cpu));
    println!("  errors {errors} {first_errors:?}, failures {failed}, dropped {dropped}");
    let ok = lost == 0
        && f.unreached == 0
        && out_of_order == 0
        && before_join == 0
        && incomplete_views == 0
        && spurious_leaves == 0
        && errors == 0
        && failed == 0
        && dropped == 0
        && held == args.clients;
    println!("  {}", if ok { "OK" } else { "FAILED" });
    let report = json!({
        "scenario": "state",
        "protocol": format!("{:?}", target.protocol).to_lowercase(),
        "clients": args.clients, "held": held, "senders": sending,
        "rate_hz": args.rate_hz, "secs": args.secs,
        "sent": f.sent, "all_sent": all_sent,
        "delivered": delivered, "sent_to_receivers": sent_to,
        "span_secs": round3(span_secs), "delivered_per_sec": round3(per_sec),
        "to_last_receiver_ms": to_last,
        "receipt_ms": receipt,
        "received_fraction": {
            "mean": round3(delivered as f64 / sent_to.max(1) as f64),
            "min": round3(if ratios.is_empty() { 0.0 } else { min_ratio }),
            "max": round3(max_ratio),
        },
        "delivered_to_all": f.delivered_to_all,
        "final_views": pairs, "lost_final_states": lost, "settled": settled,
        "unreached": f.unreached, "out_of_order": out_of_order, "before_join": before_join,
        "incomplete_views": incomplete_views,
        "spurious_leaves": spurious_leaves, "rejoins": rejoins,
        "cpu": cpu,
        "errors": errors, "first_errors": first_errors,
        "failed": failed, "dropped": dropped,
        "ok": ok,
    });
    (report, ok)
}

/// A state as a JSON value, so that equal states compare equal whatever
/// their bytes (the protocol forwards an equal value, not the same text).
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}
