//! End-to-end test support for Longhouse.
//!
//! The cases themselves live in `e2e/` (a `harness = false` test binary);
//! this library holds what they share:
//!
//! - [`target`]: how to start, address and stop a running Longhouse
//!   ([`Target`], [`Deployment`], [`ServerProcess`]), chosen by the
//!   `LONGHOUSE_TARGET` environment variable.
//! - [`client`]: a WebSocket client that speaks the protocol and checks what
//!   it receives ([`Client`], [`Member`], [`View`]).
//! - [`http`]: a minimal HTTP/1.1 GET for `/health` and friends.
//! - [`receiver`]: the webhook receiver, a real HTTP server on loopback.
//! - [`suite`]: deployments shared between cases ([`Suite`]) and the
//!   per-case context ([`Ctx`]).

pub mod client;
pub mod http;
pub mod receiver;
pub mod suite;
pub mod target;
pub mod worker_target;

pub use client::{Client, Member, View};
pub use suite::{Ctx, Suite};
pub use target::{Capability, Deployment, ServerLimits, ServerProcess, Target, TargetOptions};

use std::time::Duration;

/// How long any single expected message may take to arrive before a case
/// fails. Generous: it only bounds how long a broken server makes us wait.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The quiet period used by "nothing arrives" assertions
/// ([`Client::expect_silence`]).
pub const SILENCE: Duration = Duration::from_millis(400);

/// A name that no other case (or run) uses: `{prefix}-{12 hex digits}`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

/// Lets time pass because the scenario needs it to (a lease has to age
/// before the next step). Never a stand-in for waiting on a condition: use
/// the `Client::expect_*` helpers for that.
pub async fn let_time_pass(duration: Duration) {
    tokio::time::sleep(duration).await;
}
