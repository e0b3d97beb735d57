//! The demo page at `/` and the client library it loads at `/client.js`,
//! both embedded in the binary: nothing is fetched from anywhere else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `clients/demo/index.html`.
pub const INDEX_HTML: &str = include_str!("../../clients/demo/index.html");

/// `clients/js/dist/index.js`, the ESM build of the client library
/// (committed; `scripts/test.sh` checks it matches a fresh `tsc` build).
pub const CLIENT_JS: &str = include_str!("../../clients/js/dist/index.js");

/// `GET /` (and `/index.html`): the demo page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /client.js`: the client library the page loads.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CLIENT_JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
