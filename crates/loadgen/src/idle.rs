//! `idle`: N connections over S spaces, pinging every P ms, held T seconds;
//! the server's RSS before and after, bytes per connection, drops; then all
//! closed at once and the server checked to be alive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::client::{Client, Counters, Spec, Target};
use crate::common::{alive, load, open_all, rss_kib, run_tag, settle};

/// How the held connections end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CloseMode {
    /// A close frame from every client at once.
    Clean,
    /// Every socket dropped at once without a close frame.
    Abort,
}

/// Flags of `idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdleArgs {
    /// Connections.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Spaces they are spread over.
    #[arg(long, default_value_t = 500)]
    pub spaces: usize,
    /// Each client pings this often, ms (0: never).
    #[arg(long, default_value_t = 20000)]
    pub ping_ms: u64,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 30)]
    pub hold_secs: u64,
    /// Connects in flight while opening.
    #[arg(long, default_value_t = 200)]
    pub in_flight: usize,
    /// The server's pid, for its RSS and to check it survives.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How to end the connections, all at once.
    #[arg(long, value_enum, default_value_t = CloseMode::Clean)]
    pub close: CloseMode,
    /// Give up waiting for events after this long without progress, ms.
    #[arg(long, default_value_t = 5000)]
    pub quiet_ms: u64,
}

/// Runs `idle`; returns the report and whether nothing dropped and the
/// server survived.
pub async fn run(target: &Target, args: &IdleArgs) -> (Value, bool) {
    let tag = run_tag();
    let counters = Arc::new(Counters::default());
    let pid = args.server_pid;
    let rss = || pid.and_then(rss_kib);
    let rss_before = rss();
    let spaces = args.spaces.max(1);
    let ping = (args.ping_ms > 0).then(|| Duration::from_millis(args.ping_ms));
    let specs: Vec<Spec> = (0..args.connections)
        .map(|i| Spec {
            space: format!("idle-{tag}-{}", i % spaces),
            identity: format!("idle{i}"),
            ping,
            state: None,
        })
        .collect();
    let opened = Instant::now();
    let clients = open_all(target, specs, args.in_flight, &counters, 0).await;
    let open_secs = opened.elapsed().as_secs_f64();
    let held = clients.iter().filter(|c| c.is_live()).count();
    let per = args.connections / spaces;
    let extra = args.connections % spaces;
    let pairs = |n: usize| (n * n.saturating_sub(1) / 2) as u64;
    let expected = pairs(per + 1) * extra as u64 + pairs(per) * (spaces - extra) as u64;
    settle(
        || load(&counters.joins),
        expected,
        Duration::from_millis(args.quiet_ms),
        Duration::ZERO,
    )
    .await;
    let rss_open = rss();
    println!(
        "idle: {held}/{} connections over {spaces} spaces open in {open_secs:.1} s; pinging every {} ms; holding {} s",
        args.connections, args.ping_ms, args.hold_secs
    );
    let mut rss_max = rss_open.unwrap_or(0);
    let hold_until = Instant::now() + Duration::from_secs(args.hold_secs);
    while Instant::now() < hold_until {
        tokio::time::sleep(Duration::from_secs(1).min(hold_until - Instant::now())).await;
        rss_max = rss_max.max(rss().unwrap_or(0));
    }
    let rss_held = rss();
    let dropped_while_held = load(&counters.dropped);
    let own_rss = rss_kib(std::process::id());

    // All at once.
    let closing = Instant::now();
    for c in &clients {
        match args.close {
            CloseMode::Clean => c.close(),
            CloseMode::Abort => c.abort(),
        }
    }
    let all_done = tokio::time::timeout(Duration::from_secs(120), async {
        for c in &clients {
            c.wait().await;
        }
    })
    .await
    .is_ok();
    let close_secs = closing.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server_alive = pid.is_none_or(alive);
    // A fresh join must still work, into an empty space.
    let (tx, rx) = oneshot::channel();
    let probe = Client::spawn(
        target,
        args.connections as u64,
        Spec {
            space: format!("idle-{tag}-probe"),
            identity: "probe".into(),
            ping: None,
            state: None,
        },
        counters.clone(),
        Some(tx),
    );
    let probe_ok = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .map(|r| r.unwrap_or(false))
        .unwrap_or(false);
    probe.close_and_wait().await;
    let rss_after = rss();

    let per_conn = match (rss_before, rss_held) {
        (Some(b), Some(h)) if held > 0 => Some((h.saturating_sub(b) as f64 * 1024.0) / held as f64),
        _ => None,
    };
    let kib = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} KiB"));
    println!(
        "  server RSS: before {}, all open {}, after holding {}, max {} KiB, after closing {}",
        kib(rss_before),
        kib(rss_open),
        kib(rss_held),
        rss_max,
        kib(rss_after)
    );
    if let Some(b) = per_conn {
        println!(
            "  bytes per connection (held - before) / held: {b:.0} B = {:.2} KiB",
            b / 1024.0
        );
    }
    println!("  dropped while held: {dropped_while_held}");
    println!(
        "  closed all ({:?}) in {close_secs:.2} s (all ended: {all_done}); server alive: {server_alive}; fresh join after: {probe_ok}",
        args.close
    );
    println!("  load generator's own RSS while holding: {}", kib(own_rss));
    let ok =
        held == args.connections && dropped_while_held == 0 && all_done && server_alive && probe_ok;
    println!("  {}", if ok { "OK" } else { "FAILED" });
    let report = json!({
        "scenario": "idle",
        "connections": args.connections, "held": held, "spaces": spaces,
        "ping_ms": args.ping_ms, "hold_secs": args.hold_secs, "open_secs": open_secs,
        "server_rss_kib": {"before": rss_before, "open": rss_open, "held": rss_held, "max": rss_max, "after_close": rss_after},
        "bytes_per_connection": per_conn.map(|b| b.round()),
        "dropped": dropped_while_held,
        "close": format!("{:?}", args.close).to_lowercase(), "close_secs": close_secs, "all_ended": all_done,
        "server_alive": server_alive, "fresh_join_after": probe_ok,
        "loadgen_rss_kib": own_rss,
        "ok": ok,
    });
    (report, ok)
}
