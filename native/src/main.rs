//! `longhouse`: the self-hosted presence server.

mod app;
mod clock;
mod config;
mod connection;
mod demo;
mod health_check;
mod ids;
mod keepalive;
mod logs;
mod malloc;
mod metrics;
mod outbox;
mod server;
mod store;
mod web;
mod webhooks;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use longhouse_core::SpaceConfig;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::app::AppState;
use crate::config::Config;
use crate::connection::{Limits, Settings};
use crate::ids::ConnIds;
use crate::store::{MemoryStore, RedisStore, Store};

/// How long shutdown waits for sockets to flush their 1012 close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    malloc::one_arena();
    logs::init();
    metrics::install();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            error!(variable = %e.var, "{e}");
            eprintln!("longhouse: {e}");
            return ExitCode::from(2);
        }
    };
    if config.health_check {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        return match runtime.block_on(health_check::check(&config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("longhouse: health check failed: {why}");
                ExitCode::FAILURE
            }
        };
    }
    // Every socket is a file: take the hard limit, not the soft default
    // (often 1,024), so the process holds what MAX_CONNECTIONS allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(open_files = limit, "open-files limit"),
        Err(e) => warn!(error = %e, "could not raise the open-files limit"),
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("longhouse: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    let space_config = SpaceConfig {
        ttl_ms: config.ttl_ms,
        max_message_bytes: config.max_message_bytes,
        max_state_bytes: config.max_state_bytes,
        update_interval_ms: config.update_interval_ms,
    };
    // In memory: one in-process outbox; on Redis the store's own pump.
    let webhooks = config
        .webhook()
        .filter(|_| config.redis().is_none())
        .map(|(url, secret)| webhooks::Webhooks::start(url, secret, Default::default()));
    let (store, store_name) = match config.redis() {
        Some(url) => match RedisStore::start(
            space_config,
            config.max_clients(),
            url,
            config.subscription_queue,
            config.webhook(),
        ) {
            Ok(r) => (Store::Redis(r), "redis"),
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "REDIS_URL / REDISCLOUD_URL: {e}"
                )))
            }
        },
        None => (
            Store::Memory(MemoryStore::start(
                space_config,
                config.max_clients(),
                webhooks.clone(),
            )),
            "memory",
        ),
    };
    let sockets = TaskTracker::new();
    let state = AppState {
        settings: Settings {
            store: store.clone(),
            keepalive: (config.keepalive_ms > 0)
                .then(|| keepalive::Keepalive::start(Duration::from_millis(config.keepalive_ms))),
            limits: Arc::new(Limits::from_config(&config)),
        },
        conn_ids: Arc::new(ConnIds::new()),
        sockets: sockets.clone(),
        admin: config.admin(),
    };
    let state_api = state.admin.is_on();
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port)).await?;
    info!(
        addr = %listener.local_addr()?,
        ttl_ms = config.ttl_ms,
        keepalive_ms = config.keepalive_ms,
        max_message_bytes = config.max_message_bytes,
        store = store_name,
        api = state_api,
        webhooks = config.webhook().is_some(),
        "listening"
    );
    let shutdown_store = store.clone();
    server::serve(
        listener,
        app::router(state),
        Duration::from_millis(config.handshake_timeout_ms),
        async move {
            let signal = stop_signal().await;
            info!(signal, "stopping: closing sockets with 1012, leases kept");
            shutdown_store.shutdown().await;
        },
    )
    .await;
    sockets.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, sockets.wait())
        .await
        .is_err()
    {
        warn!(
            open = sockets.len(),
            "sockets still open after the grace period"
        );
    }
    if let Some(webhooks) = &webhooks {
        let left = webhooks.drained(SHUTDOWN_GRACE).await;
        if left > 0 {
            warn!(
                events = left,
                "webhook events not delivered before exit are lost (in-memory store)"
            );
        }
    }
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT, naming which.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
