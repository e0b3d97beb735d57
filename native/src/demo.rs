//! The demo page at `/` and the client library it loads at `/client.js`,
//! both embedded in the binary: nothing is fetched from anywhere else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `clients/demo/index.html`.
pub const INDEX_HTML: &str = include_str!("../../clients/demo/index.html");

/// `clients/js/dist/index.js`, the ESM build of the client library
/// (committed; `scripts/test.sh` checks it matches a fresh `tsc` build).
pub const CLIENT_JS: &str = include_str!("../../clients/js/dist/index.js");

/// The page or the script for `path`, if it is one of theirs.
pub fn serve(path: &str) -> Option<Response> {
    let (content_type, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/client.js" => ("text/javascript; charset=utf-8", CLIENT_JS),
        _ => return None,
    };
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
    )
}
