//! `join`: S spaces x C clients joining with K connects in flight, then half
//! of each space leaving; every remote join and leave is accounted for.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{Client, Counters, Kind, Spec, Target};
use crate::common::{
    close_all, load, open_all, percentiles, redis_commandstats, redis_delta, round3, run_tag,
    settle, show, show_cpu, CpuMeter,
};
use crate::cursor;

/// Flags of `join`.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinArgs {
    /// Spaces.
    #[arg(long, default_value_t = 50)]
    pub spaces: usize,
    /// Clients per space.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Connects in flight (a new one starts when one is welcomed).
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// Idle connections opened first in other spaces, to see whether join
    /// cost depends on the total held.
    #[arg(long, default_value_t = 0)]
    pub background: usize,
    /// Spaces the background connections are spread over.
    #[arg(long, default_value_t = 500)]
    pub background_spaces: usize,
    /// Give up waiting for events after this long without progress, ms.
    #[arg(long, default_value_t = 5000)]
    pub quiet_ms: u64,
    /// Redis at this address (host:port): count its commands per join and
    /// per leave with `INFO commandstats`.
    #[arg(long)]
    pub redis: Option<String>,
    /// Join with a cursor-sized presence state, as clients of a
    /// live-cursor app do (a Yjs client is present only with a state, so
    /// this is how the two are compared).
    #[arg(long)]
    pub with_state: bool,
    /// The server's pid, for the CPU it spends on the joins.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// Runs `join`; returns the report and whether every event was accounted for.
pub async fn run(target: &Target, args: &JoinArgs) -> (Value, bool) {
    let tag = run_tag();
    let counters = Arc::new(Counters::default());
    let quiet = Duration::from_millis(args.quiet_ms);
    let grace = Duration::from_millis(300);

    // Background connections, idle, in spaces of their own.
    let bg_started = Instant::now();
    let bg_specs: Vec<Spec> = (0..args.background)
        .map(|i| Spec {
            space: format!("bg-{tag}-{}", i % args.background_spaces.max(1)),
            identity: format!("bg{i}"),
            ping: None,
            state: None,
        })
        .collect();
    let background = open_all(target, bg_specs, args.in_flight, &counters, 0).await;
    let bg_secs = bg_started.elapsed().as_secs_f64();
    let bg_welcomed = background.iter().filter(|c| c.is_live()).count();
    if args.background > 0 {
        println!(
            "background: {bg_welcomed}/{} connections held ({:.1} s to open)",
            args.background, bg_secs
        );
    }
    // Let the background's own join events drain before measuring.
    let bg_expected: u64 = {
        let per = args.background / args.background_spaces.max(1);
        let extra = args.background % args.background_spaces.max(1);
        let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as u64;
        pairs(per + 1) * extra as u64 + pairs(per) * (args.background_spaces.max(1) - extra) as u64
    };
    settle(|| load(&counters.joins), bg_expected, quiet, grace).await;
    let base_joins = load(&counters.joins);
    let base_leaves = load(&counters.leaves);

    // Phase 1: joins, interleaved over the spaces.
    let total = args.spaces * args.clients;
    let specs: Vec<Spec> = (0..total)
        .map(|i| Spec {
            space: format!("join-{tag}-{}", i % args.spaces),
            identity: format!("user{i}"),
            ping: None,
            state: args.with_state.then(|| cursor::state(i as u64, 0)),
        })
        .collect();
    let redis_0 = args
        .redis
        .as_deref()
        .and_then(|a| redis_commandstats(a).ok());
    let meter = CpuMeter::start(args.server_pid);
    let started = Instant::now();
    let clients = open_all(
        target,
        specs,
        args.in_flight,
        &counters,
        args.background as u64,
    )
    .await;
    let join_secs = started.elapsed().as_secs_f64();
    let latencies: Vec<f64> = clients
        .iter()
        .filter_map(|c| {
            let log = c.log.lock().expect("log lock");
            Some((log.welcomed? - log.started?).as_secs_f64() * 1000.0)
        })
        .collect();
    let welcomed = latencies.len();
    let failed = total - welcomed;

    // Every client must hear of everyone in its space not in its welcome.
    let by_space = group(&clients);
    let expected_joins: u64 = clients
        .iter()
        .map(|c| {
            let log = c.log.lock().expect("log lock");
            args.clients.saturating_sub(log.roster.len()) as u64
        })
        .sum();
    let joins_settled = settle(
        || load(&counters.joins) - base_joins,
        expected_joins,
        quiet,
        grace,
    )
    .await;
    let cpu = meter.finish();
    let redis_1 = args
        .redis
        .as_deref()
        .and_then(|a| redis_commandstats(a).ok());

    // Phase 2: the first half of each space leaves; the rest must see each
    // leave exactly once.
    let mut leavers: Vec<&Client> = Vec::new();
    let mut leaver_ids: HashMap<&str, HashSet<String>> = HashMap::new();
    for (space, members) in &by_space {
        for c in members.iter().take(members.len() / 2) {
            leavers.push(c);
            leaver_ids.entry(space.as_str()).or_default().insert(c.id());
        }
    }
    let leave_started = Instant::now();
    close_all(&leavers, args.in_flight).await;
    let leave_secs = leave_started.elapsed().as_secs_f64();
    let expected_leaves: u64 = by_space
        .iter()
        .map(|(space, members)| {
            let l = leaver_ids.get(space.as_str()).map_or(0, HashSet::len);
            (l * (members.len() - l)) as u64
        })
        .sum();
    let leaves_settled = settle(
        || load(&counters.leaves) - base_leaves,
        expected_leaves,
        quiet,
        grace,
    )
    .await;
    let redis_2 = args
        .redis
        .as_deref()
        .and_then(|a| redis_commandstats(a).ok());

    // Accounting, over the whole logs.
    let mut acc = Accounting::default();
    for (space, members) in &by_space {
        let ids: HashSet<String> = members.iter().map(|c| c.id()).collect();
        let empty = HashSet::new();
        let left = leaver_ids.get(space.as_str()).unwrap_or(&empty);
        for c in members {
            let log = c.log.lock().expect("log lock");
            if log.welcomed.is_none() {
                continue;
            }
            let mut seen: HashSet<&str> = log.roster.iter().map(String::as_str).collect();
            acc.unexpected += log
                .roster
                .iter()
                .filter(|id| !ids.contains(id.as_str()))
                .count() as u64;
            let mut leaves_seen: HashSet<&str> = HashSet::new();
            for e in &log.events {
                match e.kind {
                    Kind::Join => {
                        if e.id == log.id || !ids.contains(&e.id) {
                            acc.unexpected += 1;
                        } else if !seen.insert(e.id.as_str()) {
                            acc.duplicated_joins += 1;
                        }
                    }
                    Kind::Leave => {
                        // Only leavers have left at this point.
                        if !left.contains(&e.id) {
                            acc.unexpected += 1;
                        } else if !leaves_seen.insert(e.id.as_str()) {
                            acc.duplicated_leaves += 1;
                        }
                    }
                }
            }
            acc.missing_joins += ids.iter().filter(|id| !seen.contains(id.as_str())).count() as u64;
            if !left.contains(&log.id) {
                acc.missing_leaves += left
                    .iter()
                    .filter(|id| !leaves_seen.contains(id.as_str()))
                    .count() as u64;
            }
        }
    }

    // The rest close (not measured), then the background.
    let stayers: Vec<&Client> = clients.iter().filter(|c| c.is_live()).collect();
    close_all(&stayers, args.in_flight).await;
    let bg: Vec<&Client> = background.iter().collect();
    close_all(&bg, args.in_flight.max(200)).await;
    let dropped = load(&counters.dropped);

    let latency = percentiles(&latencies);
    let leave_count = leavers.len();
    let joins_per_sec = welcomed as f64 / join_secs;
    let leaves_per_sec = leave_count as f64 / leave_secs;
    println!(
        "join: {} spaces x {} clients, {} in flight, {} background connections",
        args.spaces, args.clients, args.in_flight, args.background
    );
    println!(
        "  joins: {welcomed}/{total} welcomed in {join_secs:.3} s = {joins_per_sec:.0} joins/s; {failed} failed"
    );
    println!("  connect to welcome: {}", show(&latency));
    println!(
        "  remote joins: expected {expected_joins}, missing {}, duplicated {} (settled: {joins_settled})",
        acc.missing_joins, acc.duplicated_joins
    );
    println!(
        "  leaves: {leave_count} clean closes in {leave_secs:.3} s = {leaves_per_sec:.0}/s; remote leaves expected {expected_leaves}, missing {}, duplicated {} (settled: {leaves_settled})",
        acc.missing_leaves, acc.duplicated_leaves
    );
    println!(
        "  unexpected events {}, sockets dropped by the server {dropped}",
        acc.unexpected
    );
    println!(
        "  cpu, joins until every remote join arrived: {}",
        show_cpu(&cpu)
    );
    let mut redis = Value::Null;
    if let (Some(r0), Some(r1), Some(r2)) = (&redis_0, &redis_1, &redis_2) {
        let joins = redis_delta(r0, r1);
        let leaves = redis_delta(r1, r2);
        let per = |d: &Value, n: usize| -> Value {
            let mut m = serde_json::Map::new();
            if let Some(o) = d.as_object() {
                for (k, v) in o {
                    m.insert(
                        k.clone(),
                        json!(round3(v.as_u64().unwrap_or(0) as f64 / n.max(1) as f64)),
                    );
                }
            }
            Value::Object(m)
        };
        redis = json!({
            "joins_phase_calls": joins, "per_join": per(&joins, welcomed),
            "leaves_phase_calls": leaves, "per_leave": per(&leaves, leave_count),
        });
        println!("  redis commands per join: {}", redis["per_join"]);
        println!("  redis commands per leave: {}", redis["per_leave"]);
    }
    let ok = failed == 0
        && dropped == 0
        && acc.missing_joins == 0
        && acc.duplicated_joins == 0
        && acc.missing_leaves == 0
        && acc.duplicated_leaves == 0
        && acc.unexpected == 0;
    println!("  {}", if ok { "OK" } else { "FAILED" });
    let report = json!({
        "scenario": "join",
        "spaces": args.spaces, "clients_per_space": args.clients, "in_flight": args.in_flight,
        "background": args.background, "background_welcomed": bg_welcomed,
        "welcomed": welcomed, "failed": failed,
        "join_secs": round3(join_secs), "joins_per_sec": round3(joins_per_sec),
        "connect_to_welcome_ms": latency,
        "remote_joins_expected": expected_joins,
        "missing_joins": acc.missing_joins, "duplicated_joins": acc.duplicated_joins,
        "leaves": leave_count, "leave_secs": round3(leave_secs), "leaves_per_sec": round3(leaves_per_sec),
        "remote_leaves_expected": expected_leaves,
        "missing_leaves": acc.missing_leaves, "duplicated_leaves": acc.duplicated_leaves,
        "unexpected": acc.unexpected, "dropped": dropped,
        "redis": redis,
        "protocol": format!("{:?}", target.protocol).to_lowercase(),
        "with_state": args.with_state,
        "join_cpu": cpu,
        "ok": ok,
    });
    (report, ok)
}

#[derive(Default)]
struct Accounting {
    missing_joins: u64,
    duplicated_joins: u64,
    missing_leaves: u64,
    duplicated_leaves: u64,
    unexpected: u64,
}

/// Welcomed clients by space, in the order they were started.
pub fn group(clients: &[Client]) -> Vec<(String, Vec<&Client>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by: HashMap<String, Vec<&Client>> = HashMap::new();
    for c in clients {
        if c.log.lock().expect("log lock").welcomed.is_none() {
            continue;
        }
        by.entry(c.space.clone())
            .or_insert_with(|| {
                order.push(c.space.clone());
                Vec::new()
            })
            .push(c);
    }
    order
        .into_iter()
        .map(|s| {
            let v = by.remove(&s).unwrap_or_default();
            (s, v)
        })
        .collect()
}
