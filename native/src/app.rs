//! The HTTP surface: `/health`, and a WebSocket upgrade on any other path.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio_util::task::TaskTracker;

use crate::connection::{self, Settings};
use crate::ids::ConnIds;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    /// What each socket needs.
    pub settings: Settings,
    /// Largest accepted message, for the WebSocket layer's limits.
    pub max_message_bytes: usize,
    /// Connection ids.
    pub conn_ids: Arc<ConnIds>,
    /// Every socket task, so shutdown can wait for their close frames.
    pub sockets: TaskTracker,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    if !is_websocket_upgrade(&request) {
        let (method, uri, headers) = (request.method(), request.uri(), request.headers());
        if let Some(response) = crate::web::plain(&state, method, uri, headers).await {
            return response;
        }
        return plain(&state, &path).await;
    }
    // Issue 5: the origin and the connection limit are checked before any
    // WebSocket exists.
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
    let upgrade =
        match axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(u) => u,
            Err(rejection) => return rejection.into_response(),
        };
    let conn = state.conn_ids.next();
    let token = state.sockets.token();
    upgrade
        // A presence client sends pings of a few dozen bytes: small buffers
        // keep idle sockets cheap (the library reserves 128 KiB by default).
        .read_buffer_size(1024)
        // Frames are fed in bursts and flushed once per burst (see
        // connection.rs), so a small write buffer batches them into one write.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1 << 20)
        // The library's own limit is a hard cap well above the protocol's:
        // a message over MAX_MESSAGE_BYTES must be read whole so the core can
        // answer it with an error and a clean 1009 close, while a reader
        // error would leave the socket unusable for the close handshake.
        .max_message_size(hard_cap(state.max_message_bytes))
        .max_frame_size(hard_cap(state.max_message_bytes))
        .on_upgrade(move |socket| async move {
            connection::serve(socket, state.settings.clone(), conn, path, query).await;
            drop(token);
            drop(permit);
        })
}

async fn plain(state: &AppState, path: &str) -> Response {
    if path != "/health" {
        return Response::builder()
            .status(StatusCode::UPGRADE_REQUIRED)
            .header(header::UPGRADE, "websocket")
            .body(Body::from(
                "Connect with a WebSocket: ws://HOST/{space}?identity={identity}\n",
            ))
            .expect("valid response");
    }
    match state.settings.store.health().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

fn is_websocket_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The WebSocket layer's size cap: sixteen times the protocol limit, at
/// least 64 KiB. Anything larger is cut off without a close handshake.
fn hard_cap(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(16).max(64 * 1024)
}
