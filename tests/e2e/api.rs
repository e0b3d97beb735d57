//! Section 14, the server API: `GET /{space}` with `count` and the admin
//! token, `POST /{space}` (a server broadcast, `from: null`, 202),
//! `DELETE /{space}?id=` / `?identity=` (a kick: `{"error":"Removed"}`,
//! close 4003, `remote leave` with `"reason":"removed"`, `{"removed":N}`),
//! and every status code of it.

use anyhow::{ensure, Context, Result};
use longhouse_e2e::client::{encode_space, mint_token, unix_now};
use longhouse_e2e::http::{self, Response};
use longhouse_e2e::target::ServerLimits;
use longhouse_e2e::{unique, Client, Ctx, TargetOptions};
use serde_json::{json, Value};

/// The admin token of the API deployments.
pub const TOKEN: &str = "adm1n-t0ken";
const BEARER: &str = "Bearer adm1n-t0ken";

/// A deployment with `ADMIN_TOKEN`.
pub const ADMIN: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    admin_token: Some(TOKEN),
    ..ServerLimits::NONE
});

/// A deployment with `ADMIN_TOKEN` and `AUTH_SECRET`.
pub const ADMIN_AND_AUTH: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    admin_token: Some(TOKEN),
    auth_secret: Some("join-secret"),
    ..ServerLimits::NONE
});

async fn call(
    cx: &Ctx,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> Result<Response> {
    let mut headers = vec![("Accept", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http::request(
        &cx.dep().http_base(),
        method,
        path,
        &headers,
        body.map(str::as_bytes),
    )
    .await
}

fn body(r: &Response) -> Result<Value> {
    serde_json::from_slice(&r.body).with_context(|| format!("body {:?}", r.body_text()))
}

fn expect_status(r: &Response, status: u16, what: &str) -> Result<()> {
    ensure!(
        r.status == status,
        "{what}: status {} (want {status}), body {}",
        r.status,
        r.body_text()
    );
    Ok(())
}

/// Without `ADMIN_TOKEN`, `POST` and `DELETE` answer 404 (with or without
/// an `Authorization` header), and a `GET` follows the join rules.
pub async fn without_admin_token_post_and_delete_are_404(cx: &Ctx) -> Result<()> {
    let path = format!("/{}", cx.space());
    for auth in [None, Some("Bearer anything")] {
        let r = call(cx, "POST", &path, auth, Some(r#"{"data":1}"#)).await?;
        expect_status(&r, 404, "POST without ADMIN_TOKEN")?;
        let r = call(cx, "DELETE", &format!("{path}?identity=ann"), auth, None).await?;
        expect_status(&r, 404, "DELETE without ADMIN_TOKEN")?;
        let r = call(cx, "GET", &path, auth, None).await?;
        expect_status(&r, 200, "GET without ADMIN_TOKEN")?;
    }
    Ok(())
}

/// Every status code: 401 without or with a wrong token (a `GET`
/// included), 400 for a body or a kick that says nothing, 413 for a body
/// over `MAX_MESSAGE_BYTES`, 202 for a broadcast, 200 for a kick and the
/// roster (with `count`).
pub async fn every_status_code_with_an_admin_token(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let path = format!("/{}", encode_space(&space));
    let kick = format!("{path}?identity=nobody");
    let data = Some(r#"{"data":{"saved":true}}"#);
    for (method, p, b) in [("POST", &path, data), ("DELETE", &kick, None)] {
        let r = call(cx, method, p, None, b).await?;
        expect_status(&r, 401, &format!("{method} without a token"))?;
        ensure!(
            body(&r)?["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("Unauthorized")),
            "{method}: {}",
            r.body_text()
        );
        for wrong in [
            "Bearer adm1n-t0ke",
            "Bearer adm1n-t0ken2",
            "Basic adm1n-t0ken",
            TOKEN,
        ] {
            let r = call(cx, method, p, Some(wrong), b).await?;
            expect_status(&r, 401, &format!("{method} with {wrong:?}"))?;
        }
    }
    let r = call(cx, "GET", &path, Some("Bearer wrong"), None).await?;
    expect_status(&r, 401, "GET with a wrong token")?;
    let r = call(cx, "GET", &path, None, None).await?;
    expect_status(&r, 200, "GET without a token (no AUTH_SECRET)")?;

    let _a = cx.join(&space, "ann").await?;
    let r = call(cx, "GET", &path, Some(BEARER), None).await?;
    expect_status(&r, 200, "GET with the token")?;
    let roster = body(&r)?;
    ensure!(
        roster["count"] == 1 && roster["space"] == space.as_str(),
        "roster {roster}"
    );
    ensure!(
        roster["clients"].as_array().map(Vec::len) == Some(1),
        "roster {roster}"
    );

    for bad in ["", "{}", "[1]", "not json", r#"{"date":1}"#] {
        let r = call(cx, "POST", &path, Some(BEARER), Some(bad)).await?;
        expect_status(&r, 400, &format!("POST {bad:?}"))?;
    }
    let big = format!(r#"{{"data":"{}"}}"#, "x".repeat(5_000));
    let r = call(cx, "POST", &path, Some(BEARER), Some(&big)).await?;
    expect_status(&r, 413, "POST over MAX_MESSAGE_BYTES")?;
    let r = call(cx, "POST", &path, Some(BEARER), data).await?;
    expect_status(&r, 202, "POST with the token")?;

    for q in [
        "",
        "?id=",
        "?who=ann",
        "?id=a&identity=b",
        "?id=bad%20id",
        "?identity=a%07b",
    ] {
        let r = call(cx, "DELETE", &format!("{path}{q}"), Some(BEARER), None).await?;
        expect_status(&r, 400, &format!("DELETE {q:?}"))?;
    }
    let r = call(cx, "DELETE", &kick, Some(BEARER), None).await?;
    expect_status(&r, 200, "DELETE of nobody")?;
    ensure!(body(&r)? == json!({"removed": 0}), "{}", r.body_text());
    let r = call(cx, "DELETE", "/bad%zz?identity=x", Some(BEARER), None).await?;
    expect_status(&r, 400, "DELETE of an invalid space")?;
    Ok(())
}

/// `POST /{space}` reaches every client of the space as
/// `{"event":"broadcast","from":null,"data":…}`, data as sent; nobody in
/// another space gets it.
pub async fn server_broadcast_reaches_every_client_from_null(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "ann").await?;
    let mut b = cx.join(&space, "bob").await?;
    a.expect_join(&b.member()).await?;
    let mut other = cx.join(&format!("{space}-other"), "cy").await?;
    let data = json!({"saved": true, "by": "server", "n": [1, 2.5, null]});
    let r = call(
        cx,
        "POST",
        &format!("/{}", encode_space(&space)),
        Some(BEARER),
        Some(&json!({ "data": data }).to_string()),
    )
    .await?;
    expect_status(&r, 202, "POST")?;
    for c in [&mut a, &mut b] {
        let v = c.recv_json().await?;
        ensure!(
            v == json!({"event": "broadcast", "from": null, "data": data}),
            "{} got {v}",
            c.label
        );
    }
    other.expect_silence().await?;
    Ok(())
}

/// `DELETE ?id=`: that socket gets `{"error":"Removed"}` and close 4003,
/// everyone else a `remote leave` with `"reason":"removed"`, the answer
/// is `{"removed":1}`, the roster no longer lists it, and the identity can
/// join again.
pub async fn kick_by_id_closes_4003_others_see_removed_and_it_can_rejoin(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let path = format!("/{}", encode_space(&space));
    let ann = unique("ann");
    let mut a = cx.join(&space, &ann).await?;
    let mut b = cx.join(&space, "bob").await?;
    a.expect_join(&b.member()).await?;
    let r = call(
        cx,
        "DELETE",
        &format!("{path}?id={}", a.id),
        Some(BEARER),
        None,
    )
    .await?;
    expect_status(&r, 200, "DELETE ?id=")?;
    ensure!(body(&r)? == json!({"removed": 1}), "{}", r.body_text());
    let v = a.recv_json().await?;
    ensure!(v == json!({"error": "Removed"}), "kicked socket got {v}");
    a.expect_close(4003).await?;
    expect_removed_leave(&mut b, &a.id).await?;
    let roster = body(&call(cx, "GET", &path, Some(BEARER), None).await?)?;
    ensure!(roster["count"] == 1, "roster after the kick: {roster}");
    let again = cx.join(&space, &ann).await?;
    b.expect_join(&again.member()).await?;
    Ok(())
}

/// `DELETE ?identity=`: every lease of it ends (two tabs: `{"removed":2}`),
/// and the others see each leave with `"reason":"removed"`.
pub async fn kick_by_identity_removes_every_tab(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let ann = unique("ann|x");
    let mut t1 = cx.join(&space, &ann).await?;
    let mut t2 = cx.join(&space, &ann).await?;
    let mut b = cx.join(&space, "bob").await?;
    t1.expect_join(&t2.member()).await?;
    let path = format!("/{}?identity={}", encode_space(&space), encode_space(&ann));
    let r = call(cx, "DELETE", &path, Some(BEARER), None).await?;
    expect_status(&r, 200, "DELETE ?identity=")?;
    ensure!(body(&r)? == json!({"removed": 2}), "{}", r.body_text());
    for t in [&mut t1, &mut t2] {
        // The first tab's leave may reach the second before its own removal.
        loop {
            let v = t.recv_json().await?;
            if v == json!({"error": "Removed"}) {
                break;
            }
            ensure!(
                v["event"] == "remote leave" || v["event"] == "remote join",
                "{} got {v}",
                t.label
            );
        }
        t.expect_close(4003).await?;
    }
    let mut gone = vec![t1.id.clone(), t2.id.clone()];
    gone.sort();
    let mut seen = vec![
        expect_removed_leave(&mut b, "").await?,
        expect_removed_leave(&mut b, "").await?,
    ];
    seen.sort();
    ensure!(seen == gone, "leaves of {seen:?}, kicked {gone:?}");
    Ok(())
}

/// The next message is a `remote leave` with `"reason":"removed"` (of `id`
/// unless empty); returns whose.
async fn expect_removed_leave(c: &mut Client, id: &str) -> Result<String> {
    let v = c.recv_json().await?;
    ensure!(
        v["event"] == "remote leave" && v["reason"] == "removed",
        "{} got {v}",
        c.label
    );
    let who = v["client"]["id"].as_str().context("client id")?.to_owned();
    ensure!(id.is_empty() || who == id, "leave of {who}, want {id}");
    Ok(who)
}

/// With `AUTH_SECRET` set, the roster needs a join token, or the admin
/// token instead; a wrong admin token is 401 even with a good join token.
pub async fn roster_with_the_admin_token_needs_no_join_token(cx: &Ctx) -> Result<()> {
    let path = format!("/{}", cx.space());
    let r = call(cx, "GET", &path, None, None).await?;
    expect_status(&r, 401, "GET without any token")?;
    let r = call(cx, "GET", &path, Some(BEARER), None).await?;
    expect_status(&r, 200, "GET with the admin token")?;
    ensure!(body(&r)?["count"] == 0, "{}", r.body_text());
    let claims = format!(r#"{{"sub":"ann","exp":{}}}"#, unix_now() + 60);
    let token = mint_token(&claims, "join-secret");
    let with_token = format!("{path}?token={token}");
    let r = call(cx, "GET", &with_token, None, None).await?;
    expect_status(&r, 200, "GET with a join token")?;
    let r = call(cx, "GET", &with_token, Some("Bearer wrong"), None).await?;
    expect_status(&r, 401, "GET with a join token and a wrong admin token")?;
    Ok(())
}

/// A kick made through one instance reaches a socket held by another:
/// that socket gets `Removed` and 4003, watchers on both instances see the
/// leave with `"reason":"removed"`, and the identity rejoins on either.
pub async fn kick_reaches_sockets_on_every_instance(cx: &Ctx) -> Result<()> {
    let dep = cx.dep();
    let space = cx.space();
    let ann = unique("ann");
    // ann on the second instance; watchers on both; the API on the first.
    let mut a = Client::join(&dep.ws_base_of(1), &space, &ann, None).await?;
    let mut w0 = Client::join(&dep.ws_base_of(0), &space, "w0", None).await?;
    let mut w1 = Client::join(&dep.ws_base_of(1), &space, "w1", None).await?;
    w0.expect_join(&w1.member()).await?;
    a.expect_join(&w0.member()).await?;
    a.expect_join(&w1.member()).await?;
    let path = format!("/{}?identity={}", encode_space(&space), encode_space(&ann));
    let r = call(cx, "DELETE", &path, Some(BEARER), None).await?;
    expect_status(&r, 200, "DELETE through instance 0")?;
    ensure!(body(&r)? == json!({"removed": 1}), "{}", r.body_text());
    let v = a.recv_json().await?;
    ensure!(v == json!({"error": "Removed"}), "kicked socket got {v}");
    a.expect_close(4003).await?;
    expect_removed_leave(&mut w0, &a.id).await?;
    expect_removed_leave(&mut w1, &a.id).await?;
    let again = Client::join(&dep.ws_base_of(0), &space, &ann, None).await?;
    w0.expect_join(&again.member()).await?;
    w1.expect_join(&again.member()).await?;
    Ok(())
}

/// With Redis down, a kick cannot be done and says so: 503, promptly
/// (within the kick's 5 s wait), not a hanging request.
pub async fn kick_with_the_store_down_is_503(cx: &Ctx) -> Result<()> {
    let dep = cx.start_own(ADMIN).await?;
    let space = cx.space();
    let _a = Client::join(&dep.ws_base(), &space, "ann", None).await?;
    for i in 0..dep.redis_nodes().len() {
        dep.kill_redis_node(i)?;
    }
    let started = std::time::Instant::now();
    let r = http::request(
        &dep.http_base(),
        "DELETE",
        &format!("/{space}?identity=ann"),
        &[("Authorization", BEARER)],
        None,
    )
    .await?;
    expect_status(&r, 503, "DELETE with Redis down")?;
    ensure!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "answered after {:?}",
        started.elapsed()
    );
    Ok(())
}
