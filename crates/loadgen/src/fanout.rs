//! `fanout`: C clients in one space; a newcomer joins and leaves R times;
//! how long until the last of the C has the join, and the leave.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::client::{Client, Counters, Kind, Spec, Target};
use crate::common::{
    close_all, load, open_all, percentiles, round3, run_tag, settle, show, show_cpu, CpuMeter,
};

/// Flags of `fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Clients held in the space.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Join-and-leave rounds of the newcomer.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// Connects in flight while filling the space.
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// Pause between rounds, ms.
    #[arg(long, default_value_t = 20)]
    pub gap_ms: u64,
    /// Give up waiting for events after this long without progress, ms.
    #[arg(long, default_value_t = 5000)]
    pub quiet_ms: u64,
    /// The server's pid, for the CPU it spends on the rounds (per event and
    /// per delivered frame: the cost that bounds the time to the last
    /// receiver whatever the machine's load)
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Runs `fanout`; returns the report and whether every event arrived once.
pub async fn run(target: &Target, args: &FanoutArgs) -> (Value, bool) {
    let tag = run_tag();
    let space = format!("fanout-{tag}");
    let counters = Arc::new(Counters::default());
    let quiet = Duration::from_millis(args.quiet_ms);
    let grace = Duration::from_millis(0);
    let specs = Spec::members(&space, args.clients);
    let fill_started = Instant::now();
    let members = open_all(target, specs, args.in_flight, &counters, 0).await;
    let held = members.iter().filter(|c| c.is_live()).count();
    let expected_fill = (held * held.saturating_sub(1) / 2) as u64;
    settle(|| load(&counters.joins), expected_fill, quiet, grace).await;
    println!(
        "fanout: {held}/{} clients in one space ({:.1} s to fill)",
        args.clients,
        fill_started.elapsed().as_secs_f64()
    );

    let mut join_from_request = Vec::new();
    let mut join_from_welcome = Vec::new();
    let mut leave_from_close = Vec::new();
    let mut newcomer_ids = Vec::new();
    let mut failures = 0u64;
    let meter = CpuMeter::start(args.server_pid);
    for round in 0..args.rounds {
        let base_joins = load(&counters.joins);
        let base_leaves = load(&counters.leaves);
        let (tx, rx) = oneshot::channel();
        let newcomer = Client::spawn(
            target,
            (args.clients + round) as u64,
            Spec {
                space: space.clone(),
                identity: format!("newcomer{round}"),
                ping: None,
                state: None,
            },
            counters.clone(),
            Some(tx),
        );
        if !rx.await.unwrap_or(false) {
            failures += 1;
            continue;
        }
        let (id, started, welcomed) = {
            let log = newcomer.log.lock().expect("log lock");
            (
                log.id.clone(),
                log.started.expect("started"),
                log.welcomed.expect("welcomed"),
            )
        };
        settle(
            || load(&counters.joins) - base_joins,
            held as u64,
            quiet,
            grace,
        )
        .await;
        let last_join = last_arrival(&members, &id, Kind::Join);
        let closing = Instant::now();
        newcomer.close();
        settle(
            || load(&counters.leaves) - base_leaves,
            held as u64,
            quiet,
            grace,
        )
        .await;
        newcomer.wait().await;
        let last_leave = last_arrival(&members, &id, Kind::Leave);
        match (last_join, last_leave) {
            (Some(j), Some(l)) => {
                join_from_request.push(ms(j - started));
                join_from_welcome.push(ms(j.saturating_duration_since(welcomed)));
                leave_from_close.push(ms(l - closing));
            }
            _ => failures += 1,
        }
        newcomer_ids.push(id);
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let cpu = meter.finish();
    // Settle stragglers, then count: each member must have each newcomer's
    // join and leave exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut missing, mut duplicated) = (0u64, 0u64);
    for m in &members {
        let log = m.log.lock().expect("log lock");
        if log.welcomed.is_none() {
            continue;
        }
        for id in &newcomer_ids {
            for kind in [Kind::Join, Kind::Leave] {
                let n = log
                    .events
                    .iter()
                    .filter(|e| e.kind == kind && &e.id == id)
                    .count();
                if n == 0 {
                    missing += 1;
                } else {
                    duplicated += n as u64 - 1;
                }
            }
        }
    }
    let all: Vec<&Client> = members.iter().collect();
    close_all(&all, 200).await;
    let dropped = load(&counters.dropped);
    let failed = load(&counters.failed) + failures;

    let jr = percentiles(&join_from_request);
    let jw = percentiles(&join_from_welcome);
    let lc = percentiles(&leave_from_close);
    println!("  rounds: {}", args.rounds);
    println!("  join, newcomer's connect to last receiver: {}", show(&jr));
    println!("  join, newcomer's welcome to last receiver: {}", show(&jw));
    println!("  leave, newcomer's close to last receiver:  {}", show(&lc));
    // Each round is two events (the join, the leave), each to every member.
    let frames = (2 * args.rounds * held).max(1) as f64;
    let per_frame = |key: &str| {
        cpu[key]
            .as_u64()
            .map(|ms| round3(ms as f64 * 1000.0 / frames))
    };
    let (server_us, loadgen_us) = (per_frame("server_cpu_ms"), per_frame("loadgen_cpu_ms"));
    println!("  cpu, the rounds: {}", show_cpu(&cpu));
    println!(
        "  cpu per delivered frame: server {} us, load generator {} us ({} frames)",
        server_us.map_or("-".to_owned(), |u| u.to_string()),
        loadgen_us.map_or("-".to_owned(), |u| u.to_string()),
        frames
    );
    println!(
        "  events missing {missing}, duplicated {duplicated}; failures {failed}, dropped {dropped}"
    );
    let ok = missing == 0 && duplicated == 0 && failed == 0 && dropped == 0;
    println!("  {}", if ok { "OK" } else { "FAILED" });
    let report = json!({
        "scenario": "fanout",
        "clients": args.clients, "held": held, "rounds": args.rounds,
        "join_connect_to_last_ms": jr,
        "join_welcome_to_last_ms": jw,
        "leave_close_to_last_ms": lc,
        "cpu": cpu,
        "server_cpu_us_per_frame": server_us,
        "loadgen_cpu_us_per_frame": loadgen_us,
        "missing": missing, "duplicated": duplicated, "failed": failed, "dropped": dropped,
        "ok": ok,
    });
    (report, ok)
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// The latest arrival of `kind` about `id` over all members, if all have it.
fn last_arrival(members: &[Client], id: &str, kind: Kind) -> Option<Instant> {
    let mut last: Option<Instant> = None;
    for m in members {
        let log = m.log.lock().expect("log lock");
        if log.welcomed.is_none() {
            continue;
        }
        let at = log
            .events
            .iter()
            .rev()
            .find(|e| e.kind == kind && e.id == id)?
            .at;
        last = Some(last.map_or(at, |l| l.max(at)));
    }
    last
}
