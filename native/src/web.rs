//! Plain HTTP requests about the server and its spaces: `GET /metrics`,
//! and a space's roster as JSON (`GET /{space}` with `Accept:
//! application/json`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use longhouse_core::api::{
    admit_roster, authorize, parse_broadcast, removed_json, request_space, Access, ApiError,
    KickTarget, Method,
};
use longhouse_core::{roster_json, ServerMessage};
use tracing::{info, warn};

use crate::app::AppState;
use crate::clock::now;

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::render(state.settings.store.space_count());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /{space}`: the roster as JSON when asked for with `Accept:
/// application/json`; otherwise there is nothing to see without a
/// WebSocket (426).
pub async fn space(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if !wants_json(&headers) {
        return crate::app::upgrade_required().await;
    }
    let access = match authorize(&state.admin, Method::Get, authorization(&headers)) {
        Ok(access) => access,
        Err(e) => return api_error(&e),
    };
    roster(&state, uri.path(), uri.query(), access).await
}

/// The `Authorization` header's value; one that is not text is still a
/// header (and so a wrong token).
fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""))
}

fn api_error(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    json(status, e.body())
}

/// `POST /{space}` (server API): `{"data":…}` to every client of the
/// space, `from: null`; 202.
pub async fn broadcast(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorize(&state.admin, Method::Post, authorization(&headers)) {
        return api_error(&e);
    }
    let space = match request_space(uri.path()) {
        Ok(s) => s,
        Err(e) => return api_error(&e),
    };
    let data = match parse_broadcast(&body, state.settings.limits.max_message_bytes) {
        Ok(data) => data,
        Err(e) => return api_error(&e),
    };
    state.settings.store.broadcast(&space, &data).await;
    info!(
        space = space.as_str(),
        bytes = data.len(),
        "server broadcast"
    );
    json(StatusCode::ACCEPTED, "{}".to_owned())
}

/// `DELETE /{space}?id=…` or `?identity=…` (server API): those leases end
/// now; `{"removed":N}`.
pub async fn kick(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state.admin, Method::Delete, authorization(&headers)) {
        return api_error(&e);
    }
    let space = match request_space(uri.path()) {
        Ok(s) => s,
        Err(e) => return api_error(&e),
    };
    let target = match KickTarget::parse(uri.query()) {
        Ok(t) => t,
        Err(e) => return api_error(&e),
    };
    match state.settings.store.kick(&space, &target).await {
        Ok(removed) => {
            info!(space = space.as_str(), removed, "kick");
            json(StatusCode::OK, removed_json(removed))
        }
        Err(why) => {
            warn!(space = space.as_str(), error = %why, "kick failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &why)
        }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// `GET /{space}` as JSON: with the admin token, any space; else the same
/// space and token rules as a join.
async fn roster(state: &AppState, path: &str, query: Option<&str>, access: Access) -> Response {
    let auth = &state.settings.limits.auth;
    let admitted = request_space(path).and_then(|space| {
        admit_roster(access, auth, &space, query, now())?;
        Ok(space)
    });
    let space = match admitted {
        Ok(s) => s,
        Err(e) => return api_error(&e),
    };
    match state.settings.store.roster(&space).await {
        Ok(clients) => json(StatusCode::OK, roster_json(&space, clients)),
        Err(why) => {
            warn!(space = space.as_str(), error = %why, "roster request failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &why)
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = ServerMessage::Error(message.to_owned()).encode();
    json(status, body.to_string())
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
