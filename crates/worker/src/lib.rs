//! Longhouse edge target: a Cloudflare Worker (built with `worker` 0.8.7 and
//! `worker-build`) that routes each WebSocket to one Durable Object per space.
//!
//! Only [`config`] and [`sockets`] are compiled on the host; everything that touches the
//! Workers runtime is `wasm32`-only, so `cargo build --workspace` stays a
//! plain host build. Build with `scripts/build-worker.sh`, run with
//! `scripts/wrangler-dev.sh`.

pub mod config;
pub mod sockets;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod ffi;
#[cfg(target_arch = "wasm32")]
mod lease_table;
#[cfg(target_arch = "wasm32")]
mod short_lived;
#[cfg(target_arch = "wasm32")]
pub mod space;

/// The Worker's configuration: vars, and secrets for the auth secrets (a
/// var of the same name also works, for `wrangler dev --var`). A bad value
/// is returned, never replaced by its default: the callers refuse to serve
/// (see [`short_lived::misconfigured`]).
#[cfg(target_arch = "wasm32")]
fn edge_config(env: &worker::Env) -> Result<config::EdgeConfig, config::ConfigError> {
    let lookup = |name: &str| {
        env.secret(name)
            .ok()
            .map(|v| v.to_string())
            .or_else(|| env.var(name).ok().map(|v| v.to_string()))
    };
    config::EdgeConfig::from_lookup(lookup)
}

/// The join rules' authentication, from the configuration.
#[cfg(target_arch = "wasm32")]
fn auth(config: &config::EdgeConfig) -> longhouse_core::Auth {
    longhouse_core::Auth::hs256(
        config.auth_secret.as_deref().map(str::as_bytes),
        config.auth_secret_previous.as_deref().map(str::as_bytes),
    )
}

/// The runtime clock (`Date.now()`); inside a Worker it advances only
/// across I/O, which is all the protocol needs.
#[cfg(target_arch = "wasm32")]
fn now() -> longhouse_core::UnixMillis {
    longhouse_core::UnixMillis(u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0))
}

/// Whether `req` asks for a WebSocket upgrade (`Upgrade: websocket`).
#[cfg(target_arch = "wasm32")]
fn is_websocket_upgrade(req: &worker::Request) -> bool {
    req.headers()
        .get("Upgrade")
        .ok()
        .flatten()
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The Durable Object namespace binding in `wrangler.toml`.
#[cfg(target_arch = "wasm32")]
const SPACES: &str = "SPACES";

/// The Durable Object of `space`: named by the decoded space, so `/a%2Fb`
/// and `/a/b` meet in one object.
#[cfg(target_arch = "wasm32")]
fn space_stub(
    env: &worker::Env,
    space: &longhouse_core::SpaceName,
) -> worker::Result<worker::Stub> {
    env.durable_object(SPACES)?
        .id_from_name(space.as_str())?
        .get_stub()
}
