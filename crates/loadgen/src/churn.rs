//! `churn`: R joins and R clean leaves per second for D seconds over S
//! spaces; then every live client's view, and a fresh observer's welcome in
//! each space, compared with the truth.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::client::{Client, Counters, Kind, Spec, Target};
use crate::common::{close_all, load, open_all, percentiles, round3, run_tag, settle, show, Rng};

/// Flags of `churn`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChurnArgs {
    /// Joins per second, and as many clean leaves per second.
    #[arg(long, default_value_t = 400)]
    pub rate: u32,
    /// Seconds of churn.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Spaces.
    #[arg(long, default_value_t = 20)]
    pub spaces: usize,
    /// Clients present before the churn starts (kept about constant).
    #[arg(long, default_value_t = 400)]
    pub population: usize,
    /// Seed for picking spaces and leavers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Quiet time that ends the wait for late events, ms.
    #[arg(long, default_value_t = 1500)]
    pub quiet_ms: u64,
}

/// Runs `churn`; returns the report and whether every view converged.
pub async fn run(target: &Target, args: &ChurnArgs) -> (Value, bool) {
    let tag = run_tag();
    let counters = Arc::new(Counters::default());
    let spaces = args.spaces.max(1);
    let space = |k: usize| format!("churn-{tag}-{k}");
    let mut rng = Rng::new(args.seed);
    let initial: Vec<Spec> = (0..args.population)
        .map(|i| Spec {
            space: space(i % spaces),
            identity: format!("c{i}"),
            ping: None,
            state: None,
        })
        .collect();
    let mut clients: Vec<Client> = open_all(target, initial, 100, &counters, 0).await;
    let mut live: Vec<usize> = (0..clients.len())
        .filter(|&i| clients[i].is_live())
        .collect();
    let mut pending: Vec<(usize, oneshot::Receiver<bool>)> = Vec::new();
    let mut closing: Vec<usize> = Vec::new();
    println!(
        "churn: {} clients over {spaces} spaces; {} joins/s and {} leaves/s for {} s",
        live.len(),
        args.rate,
        args.rate,
        args.secs
    );

    let started = Instant::now();
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    let ticks = args.secs * u64::from(args.rate);
    let mut n = clients.len() as u64;
    for _ in 0..ticks {
        ticker.tick().await;
        // Newly welcomed clients become candidates for leaving.
        pending.retain_mut(|(i, rx)| match rx.try_recv() {
            Ok(true) => {
                live.push(*i);
                false
            }
            Ok(false) | Err(oneshot::error::TryRecvError::Closed) => false,
            Err(oneshot::error::TryRecvError::Empty) => true,
        });
        let (tx, rx) = oneshot::channel();
        clients.push(Client::spawn(
            target,
            n,
            Spec {
                space: space(rng.below(spaces)),
                identity: format!("c{n}"),
                ping: None,
                state: None,
            },
            counters.clone(),
            Some(tx),
        ));
        n += 1;
        pending.push((clients.len() - 1, rx));
        if !live.is_empty() {
            let victim = live.swap_remove(rng.below(live.len()));
            clients[victim].close();
            closing.push(victim);
        }
    }
    let churn_secs = started.elapsed().as_secs_f64();
    // Everything in flight finishes.
    for (_, rx) in pending.drain(..) {
        let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
    }
    for &i in &closing {
        clients[i].wait().await;
    }
    settle(
        || load(&counters.joins) + load(&counters.leaves),
        u64::MAX,
        Duration::from_millis(args.quiet_ms),
        Duration::ZERO,
    )
    .await;

    // The truth: who is welcomed and still open, per space.
    let mut truth: HashMap<String, HashSet<String>> = HashMap::new();
    for k in 0..spaces {
        truth.insert(space(k), HashSet::new());
    }
    for c in &clients {
        if c.is_live() {
            truth.entry(c.space.clone()).or_default().insert(c.id());
        }
    }
    let (mut ghosts, mut missing, mut duplicated) = (0u64, 0u64, 0u64);
    let mut checked = 0u64;
    for c in &clients {
        if !c.is_live() {
            continue;
        }
        checked += 1;
        let log = c.log.lock().expect("log lock");
        let mut view: HashSet<&str> = log.roster.iter().map(String::as_str).collect();
        for e in &log.events {
            match e.kind {
                Kind::Join => {
                    if !view.insert(e.id.as_str()) {
                        duplicated += 1;
                    }
                }
                Kind::Leave => {
                    if !view.remove(e.id.as_str()) {
                        duplicated += 1;
                    }
                }
            }
        }
        let t = &truth[&c.space];
        ghosts += view.iter().filter(|id| !t.contains(**id)).count() as u64;
        missing += t.iter().filter(|id| !view.contains(id.as_str())).count() as u64;
    }
    // A fresh observer per space.
    let observer_specs: Vec<Spec> = (0..spaces)
        .map(|k| Spec {
            space: space(k),
            identity: format!("observer{k}"),
            ping: None,
            state: None,
        })
        .collect();
    let observers = open_all(target, observer_specs, 100, &counters, n).await;
    let (mut obs_ghosts, mut obs_missing) = (0u64, 0u64);
    for o in &observers {
        let log = o.log.lock().expect("log lock");
        if log.welcomed.is_none() {
            obs_missing += 1;
            continue;
        }
        let seen: HashSet<&str> = log
            .roster
            .iter()
            .map(String::as_str)
            .filter(|id| *id != log.id)
            .collect();
        let t = &truth[&o.space];
        obs_ghosts += seen.iter().filter(|id| !t.contains(**id)).count() as u64;
        obs_missing += t.iter().filter(|id| !seen.contains(id.as_str())).count() as u64;
    }
    let latencies: Vec<f64> = clients
        .iter()
        .skip(args.population)
        .filter_map(|c| {
            let log = c.log.lock().expect("log lock");
            Some((log.welcomed? - log.started?).as_secs_f64() * 1000.0)
        })
        .collect();
    let joined = latencies.len();
    let left = closing.len();
    let failed = load(&counters.failed);
    let dropped = load(&counters.dropped);
    let rest: Vec<&Client> = clients
        .iter()
        .chain(observers.iter())
        .filter(|c| c.is_live())
        .collect();
    close_all(&rest, 200).await;

    let latency = percentiles(&latencies);
    println!(
        "  churned {joined} joins and {left} leaves in {churn_secs:.2} s ({:.0} joins/s, {:.0} leaves/s achieved)",
        joined as f64 / churn_secs,
        left as f64 / churn_secs
    );
    println!("  connect to welcome: {}", show(&latency));
    println!(
        "  {checked} live clients' views: ghosts {ghosts}, missing {missing}, duplicated {duplicated}"
    );
    println!(
        "  {} fresh observers: ghosts {obs_ghosts}, missing {obs_missing}",
        observers.len()
    );
    println!("  failed connects {failed}, dropped by the server {dropped}");
    let ok = ghosts == 0
        && missing == 0
        && duplicated == 0
        && obs_ghosts == 0
        && obs_missing == 0
        && failed == 0
        && dropped == 0;
    println!("  {}", if ok { "OK" } else { "FAILED" });
    let report = json!({
        "scenario": "churn",
        "rate": args.rate, "secs": args.secs, "spaces": spaces, "population": args.population,
        "joins": joined, "leaves": left, "churn_secs": round3(churn_secs),
        "joins_per_sec": round3(joined as f64 / churn_secs),
        "connect_to_welcome_ms": latency,
        "live_checked": checked, "ghosts": ghosts, "missing": missing, "duplicated": duplicated,
        "observer_ghosts": obs_ghosts, "observer_missing": obs_missing,
        "failed": failed, "dropped": dropped,
        "ok": ok,
    });
    (report, ok)
}
