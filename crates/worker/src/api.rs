//! The plain HTTP requests on `/{space}` (PROTOCOL.md section 14): the
//! Worker checks who may make them and routes them to the space's Durable
//! Object, which answers from its roster. Every rule is the core's; this
//! file moves requests and answers.

use longhouse_core::{roster_token, ServerMessage, SpaceName};
use worker::{Env, Request, Response, Result};

use crate::config::EdgeConfig;

/// Whether the request asks for JSON (`Accept: application/json`, among
/// others or with parameters).
pub fn wants_json(req: &Request) -> bool {
    req.headers()
        .get("Accept")
        .ok()
        .flatten()
        .is_some_and(|accept| {
            accept.split(',').any(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            })
        })
}

/// `GET /{space}` as JSON: the same space and token rules as a join, then
/// the space's object answers with its roster.
pub async fn roster(req: Request, env: &Env, config: &EdgeConfig) -> Result<Response> {
    let url = req.url()?;
    let space = match SpaceName::from_path(url.path()) {
        Ok(space) => space,
        Err(error) => return json_error(400, &error.to_string()),
    };
    let token = roster_token(url.query());
    if let Err(error) = crate::auth(config).authorize(&space, None, token.as_deref(), crate::now())
    {
        return json_error(401, &format!("Unauthorized: {error}"));
    }
    crate::space_stub(env, &space)?
        .fetch_with_request(req)
        .await
}

/// A JSON answer with `status`.
pub fn json(status: u16, body: &str) -> Result<Response> {
    let mut response = Response::ok(body)?.with_status(status);
    let headers = response.headers_mut();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(response)
}

/// `{"error":…}` with `status`.
pub fn json_error(status: u16, message: &str) -> Result<Response> {
    json(status, &ServerMessage::Error(message.to_owned()).encode())
}
