//! The plain HTTP requests on `/{space}` (PROTOCOL.md section 14): the
//! Worker checks who may make them (the core's rules) and routes them to
//! the space's Durable Object, which answers from its roster. Every rule is
//! the core's; this file moves requests and answers.

use longhouse_core::api::{admit_roster, authorize, request_space, AdminToken, ApiError, Method};
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

/// A plain `GET` (as JSON), `POST` or `DELETE` on `/{space}`: section
/// 14's token rules, then the space's object answers: the roster, a server
/// broadcast, a kick. `None`: not an API request.
pub async fn route(req: Request, env: &Env, config: &EdgeConfig) -> Option<Result<Response>> {
    let method = match req.method() {
        worker::Method::Get if wants_json(&req) => Method::Get,
        worker::Method::Post => Method::Post,
        worker::Method::Delete => Method::Delete,
        _ => return None,
    };
    Some(answer(req, method, env, config).await)
}

async fn answer(req: Request, method: Method, env: &Env, config: &EdgeConfig) -> Result<Response> {
    let authorization = req.headers().get("Authorization")?;
    let admin = AdminToken::new(config.admin_token.as_deref());
    let access = match authorize(&admin, method, authorization.as_deref()) {
        Ok(access) => access,
        Err(error) => return api_error(&error),
    };
    let url = req.url()?;
    let admitted = request_space(url.path()).and_then(|space| {
        admit_roster(
            access,
            &crate::auth(config),
            &space,
            url.query(),
            crate::now(),
        )?;
        Ok(space)
    });
    let space = match admitted {
        Ok(space) => space,
        Err(error) => return api_error(&error),
    };
    crate::space_stub(env, &space)?
        .fetch_with_request(req)
        .await
}

/// An API refusal: its status and `{"error":…}`.
pub fn api_error(error: &ApiError) -> Result<Response> {
    json(error.status(), &error.body())
}

/// A JSON answer with `status`.
pub fn json(status: u16, body: &str) -> Result<Response> {
    let mut response = Response::ok(body)?.with_status(status);
    let headers = response.headers_mut();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(response)
}
