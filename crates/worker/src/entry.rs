//! The Worker's `fetch` handler: health check and demo page, the origin
//! check, refusal of bad joins (and of everything while a var is unusable),
//! and routing of every valid join to its space's Durable Object.

use longhouse_core::{origin_allowed, refuse_join, ConnId, JoinError, JoinRequest};
use worker::{event, Context, Env, Method, Request, Response, Result};

use crate::{api, short_lived};

/// `clients/demo/index.html`, the demo page the native server serves too.
const INDEX_HTML: &str = include_str!("../../../clients/demo/index.html");
/// `clients/js/dist/index.js`, the client library the page loads.
const CLIENT_JS: &str = include_str!("../../../clients/js/dist/index.js");

/// Entry point for every HTTP request the Worker receives.
#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let config = match crate::edge_config(&env) {
        Ok(config) => config,
        Err(error) => return short_lived::misconfigured(&req, &error),
    };
    if !crate::is_websocket_upgrade(&req) {
        return match (req.method(), req.path().as_str()) {
            (Method::Get, "/health") => Response::ok("ok"),
            (Method::Get, "/" | "/index.html") => asset(INDEX_HTML, "text/html; charset=utf-8"),
            (Method::Get, "/client.js") => asset(CLIENT_JS, "text/javascript; charset=utf-8"),
            _ => match api::route(req, &env, &config).await {
                Some(answer) => answer,
                None => Response::error("Upgrade Required", 426),
            },
        };
    }
    let origin = req.headers().get("Origin")?;
    if !origin_allowed(&config.allowed_origins, origin.as_deref()) {
        return Response::error("Forbidden: origin not allowed", 403);
    }
    let url = req.url()?;
    let auth = crate::auth(&config);
    let parsed = JoinRequest::parse_limited(
        url.path(),
        url.query(),
        &auth,
        crate::now(),
        config.max_state_bytes,
    );
    match parsed {
        Ok(join) => {
            crate::space_stub(&env, &join.space)?
                .fetch_with_request(req)
                .await
        }
        Err(error) => refuse(&error),
    }
}

fn asset(body: &str, content_type: &str) -> Result<Response> {
    let mut response = Response::ok(body)?;
    let headers = response.headers_mut();
    headers.set("Content-Type", content_type)?;
    headers.set("Cache-Control", "no-cache")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(response)
}

/// Accepts the upgrade in the Worker itself (no Durable Object is woken for
/// a bad join) and plays the core's refusal: the error, then the close.
fn refuse(error: &JoinError) -> Result<Response> {
    if matches!(error, JoinError::Unauthorized(_)) {
        // Logged without the token: the error names only the reason.
        worker::console_log!(
            "{}",
            serde_json::json!({ "event": "join refused", "error": error.to_string() })
        );
    }
    short_lived::refusal(&refuse_join(ConnId(0), error))
}
