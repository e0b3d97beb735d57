//! The HTTP surface. Every WebSocket upgrade is a join, whatever its path
//! (section 1: the path is the space, so an upgrade to `/health` is the
//! space `health`): a layer in front of the routes takes those. Plain
//! requests are routed by method and path: `/health`, the demo page,
//! `/metrics`, a space's roster; anything else is told to upgrade (426).
//! Routes match the raw path, and handlers read the space from the raw
//! path too, so `/a%2Fb` and `/a/b` stay one space.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::FutureExt;
use tokio_util::task::TaskTracker;

use crate::connection::{self, Settings};
use crate::ids::ConnIds;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// What each socket needs.
    pub settings: Settings,
    /// Connection ids.
    pub conn_ids: Arc<ConnIds>,
    /// Every socket task, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
    /// The server API's token (`ADMIN_TOKEN`).
    pub admin: longhouse_core::api::AdminToken,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/", get(crate::demo::page))
        .route("/index.html", get(crate::demo::page))
        .route("/client.js", get(crate::demo::script))
        .route("/metrics", get(crate::web::metrics))
        .route(
            "/{*space}",
            get(crate::web::space)
                .post(crate::web::broadcast)
                .delete(crate::web::kick),
        )
        .fallback(upgrade_required)
        .method_not_allowed_fallback(upgrade_required)
        .layer(middleware::from_fn_with_state(state.clone(), joins))
        .with_state(state)
}

/// `GET /health`: `ok`, or 503 with the store's reason.
async fn health(State(state): State<AppState>) -> Response {
    match state.settings.store.health().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// A plain request with no meaning here: 426, with how to connect.
pub async fn upgrade_required() -> Response {
    (
        StatusCode::UPGRADE_REQUIRED,
        [(header::UPGRADE, "websocket")],
        "Connect with a WebSocket: ws://HOST/{space}?identity={identity}\n",
    )
        .into_response()
}

/// Takes every WebSocket upgrade, on any path, to [`join`]; passes plain
/// requests on to the routes.
async fn joins(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_websocket_upgrade(&request) {
        join(state, request).await
    } else {
        next.run(request).await
    }
}

/// A WebSocket upgrade: the origin and the connection limit are checked
/// before any WebSocket exists (issue 5), then the socket is served.
async fn join(state: AppState, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let limits = &state.settings.limits;
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if !longhouse_core::origin_allowed(&limits.origins, origin) {
        tracing::warn!(path = %path, origin = ?origin, "upgrade refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "Origin not allowed\n").into_response();
    }
    let permit = match &limits.connections {
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(path = %path, "upgrade refused: MAX_CONNECTIONS reached");
                return (StatusCode::SERVICE_UNAVAILABLE, "Too many connections\n").into_response();
            }
        },
        None => None,
    };
    let (mut parts, _body) = request.into_parts();
    // axum's extractor checks the handshake request (and answers a bad one
    // as it always has); the socket itself is served on tokio-tungstenite
    // directly, so that the welcome goes out before the library's write
    // buffer exists (connection.rs).
    let on_upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
    if let Err(rejection) =
        axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await
    {
        return rejection.into_response();
    }
    let (Some(on_upgrade), Some(key)) = (on_upgrade, parts.headers.get(header::SEC_WEBSOCKET_KEY))
    else {
        return upgrade_required().await;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let conn = state.conn_ids.next();
    // The socket is served by a task of its own, tracked for shutdown. A
    // combinator, not `async move { serving.await }`, which would hold the
    // future twice (captured, then awaited): a future keeps room for
    // everything it captured for its whole life, and every idle socket is
    // one (BENCHMARKS.md, "Per idle socket").
    let serving = connection::serve(on_upgrade, state.settings.clone(), conn, path, query);
    state.sockets.spawn(serving.map(move |()| drop(permit)));
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, "websocket"),
        ],
        [(header::SEC_WEBSOCKET_ACCEPT, accept)],
    )
        .into_response()
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}
