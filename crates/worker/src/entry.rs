//! The Worker's `fetch` handler: health check, and routing of WebSocket
//! upgrades to the space's Durable Object.

use serde_json::json;
use worker::{event, js_sys, Context, Env, Method, Request, Response, Result, WebSocketPair};

/// The Durable Object namespace binding in `wrangler.toml`.
const SPACES: &str = "SPACES";

/// Entry point for every HTTP request the Worker receives.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let path = req.path();
    if !crate::is_websocket_upgrade(&req) {
        return match (req.method(), path.as_str()) {
            (Method::Get, "/health") => Response::ok("ok"),
            _ => Response::error("Upgrade Required", 426),
        };
    }
    let raw = path.strip_prefix('/').unwrap_or(&path);
    // Placeholder canonicalisation: the real hub takes the space from
    // longhouse-core's join parser, so that `/a%2Fb` and `/a/b` meet.
    let space = js_sys::decode_uri_component(raw)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default();
    if space.is_empty() {
        return refuse("Space ID is required");
    }
    let stub = env
        .durable_object(SPACES)?
        .id_from_name(&space)?
        .get_stub()?;
    stub.fetch_with_request(req).await
}

/// Accepts the upgrade in the Worker itself (no Durable Object), sends one
/// error message and closes with 1008.
fn refuse(message: &str) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    pair.server.accept()?;
    pair.server.send(&json!({ "error": message }))?;
    pair.server.close(Some(1008), Some(message))?;
    Response::from_websocket(pair.client)
}
