//! `longhouse-loadgen`: drives a Longhouse server over loopback and measures
//! joins/s, fan-out latency, memory per idle connection, convergence under
//! churn and state storms. With `--protocol yjs` the join, fan-out and
//! state scenarios drive a Yjs awareness server instead, with the same
//! measuring code. Each subcommand prints a readable summary, then one JSON
//! line; the exit status is 0 only if no event was lost or doubled and no
//! socket failed.

mod churn;
mod client;
mod common;
mod cursor;
mod fanout;
mod idle;
mod join;
mod latency;
mod state;
mod wire;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::Target;
use crate::wire::Protocol;

/// Load generator for a Longhouse presence server (loopback only).
#[derive(Debug, Parser)]
#[command(name = "longhouse-loadgen", version)]
struct Cli {
    /// The server, host:port (a loopback address).
    #[arg(long, global = true, default_value = "127.0.0.1:5003")]
    server: SocketAddr,
    /// Spread sockets over source addresses 127.0.0.1 to 127.0.0.N.
    #[arg(long, global = true, default_value_t = 8)]
    sources: u8,
    /// Runtime worker threads (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// The protocol the server speaks (yjs: join, fanout and state only).
    #[arg(long, global = true, value_enum, default_value_t = Protocol::Longhouse)]
    protocol: Protocol,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// S spaces x C clients joining, K in flight; then half of each space
    /// leaves. Joins/s, connect-to-welcome latency, missing and duplicated
    /// remote joins and leaves.
    Join(join::JoinArgs),
    /// C clients in one space; a newcomer joins and leaves R times; time
    /// until the last of C has the join and the leave.
    Fanout(fanout::FanoutArgs),
    /// N idle connections held T seconds; the server's RSS per connection,
    /// drops, then all closed at once.
    Idle(idle::IdleArgs),
    /// Joins and leaves at R/s for D seconds; every view and a fresh
    /// observer per space compared with the truth.
    Churn(churn::ChurnArgs),
    /// N clients in one space each updating its state at R Hz for D
    /// seconds; updates delivered per second, latency to the last receiver,
    /// coalescing, server CPU, and no final state lost.
    State(state::StateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.server.ip().is_loopback() {
        eprintln!("longhouse-loadgen: --server must be a loopback address");
        return ExitCode::from(2);
    }
    if cli.protocol == Protocol::Yjs
        && matches!(cli.scenario, Scenario::Idle(_) | Scenario::Churn(_))
    {
        eprintln!("longhouse-loadgen: --protocol yjs drives join, fanout and state only");
        return ExitCode::from(2);
    }
    let (soft, hard) = common::raise_nofile();
    println!(
        "open-files limit: {soft} (hard {hard}); sources 127.0.0.1..127.0.0.{}",
        cli.sources.max(1)
    );
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(t) = cli.threads {
        builder.worker_threads(t.max(1));
    }
    let runtime = builder.build().expect("tokio runtime");
    let target = Target {
        server: cli.server,
        sources: cli.sources.max(1),
        protocol: cli.protocol,
    };
    let (report, ok) = runtime.block_on(async {
        match &cli.scenario {
            Scenario::Join(a) => join::run(&target, a).await,
            Scenario::Fanout(a) => fanout::run(&target, a).await,
            Scenario::Idle(a) => idle::run(&target, a).await,
            Scenario::Churn(a) => churn::run(&target, a).await,
            Scenario::State(a) => state::run(&target, a).await,
        }
    });
    println!("{report}");
    // Sockets left to the runtime are dropped without waiting.
    runtime.shutdown_background();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
