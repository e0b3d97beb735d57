//! Longhouse edge target: a Cloudflare Worker (built with `worker` 0.8.7 and
//! `worker-build`) that routes each WebSocket to one Durable Object per space.
//!
//! Only [`config`] is compiled on the host; everything that touches the
//! Workers runtime is `wasm32`-only, so `cargo build --workspace` stays a
//! plain host build. Build with `scripts/build-worker.sh`, run with
//! `scripts/wrangler-dev.sh`.

pub mod config;

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod ffi;
#[cfg(target_arch = "wasm32")]
pub mod space;

/// Whether `req` asks for a WebSocket upgrade (`Upgrade: websocket`).
#[cfg(target_arch = "wasm32")]
fn is_websocket_upgrade(req: &worker::Request) -> bool {
    req.headers()
        .get("Upgrade")
        .ok()
        .flatten()
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
