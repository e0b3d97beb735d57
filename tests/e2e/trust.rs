//! Issue 5, trust and abuse: signed identities (`AUTH_SECRET`), the space
//! size limit, the message rate, allowed origins, and the native-only
//! limits (connections, handshake deadline, bounded send queues).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures_util::future::try_join_all;
use longhouse_e2e::client::{mint_token, unix_now, upgrade_status, Incoming};
use longhouse_e2e::{unique, Client, Ctx, ServerLimits, TargetOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{connect_raw, expect_still_open};

pub const SECRET: &str = "e2e-current-secret";
pub const OLD_SECRET: &str = "e2e-previous-secret";

pub const AUTH: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    auth_secret: Some(SECRET),
    auth_secret_previous: Some(OLD_SECRET),
    ..ServerLimits::NONE
});
pub const FULL: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    max_clients_per_space: Some(3),
    ..ServerLimits::NONE
});
pub const RATE: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    message_rate: Some((5, 10)),
    ..ServerLimits::NONE
});
pub const ORIGINS: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    allowed_origins: Some("https://app.example, http://localhost:3000"),
    ..ServerLimits::NONE
});
pub const MAX_CONNECTIONS: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    max_connections: Some(3),
    ..ServerLimits::NONE
});
pub const HANDSHAKE: TargetOptions = TargetOptions::DEFAULT.with_limits(ServerLimits {
    handshake_timeout_ms: Some(600),
    ..ServerLimits::NONE
});
pub const SMALL_QUEUE: TargetOptions =
    TargetOptions::DEFAULT
        .with_ttl_ms(15_000)
        .with_limits(ServerLimits {
            max_queued_messages: Some(64),
            ..ServerLimits::NONE
        });

/// A token for `sub` valid for a minute, admitting every space.
pub fn token(sub: &str) -> String {
    token_with(sub, unix_now() + 60, "", SECRET)
}

pub fn token_with(sub: &str, exp: u64, extra: &str, secret: &str) -> String {
    let claims = serde_json::json!({ "sub": sub, "exp": exp }).to_string();
    let claims = format!("{}{extra}}}", &claims[..claims.len() - 1]);
    mint_token(&claims, secret)
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Joins `space` with `?token=` only, and waits for the welcome.
pub async fn join_with_token(cx: &Ctx, space: &str, token: &str) -> Result<Client> {
    let mut c = connect_raw(cx, &format!("/{}?token={}", enc(space), enc(token))).await?;
    c.expect_welcome().await?;
    Ok(c)
}

/// The token's `sub` is the identity: a join needs no `identity`, and one
/// that names the same identity is fine too.
pub async fn token_sub_is_the_identity(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = join_with_token(cx, &space, &token("observer@x")).await?;
    ensure!(observer.identity == "observer@x", "{}", observer.identity);
    let alice = join_with_token(cx, &space, &token("alice|*:/ü")).await?;
    ensure!(alice.identity == "alice|*:/ü", "{}", alice.identity);
    observer.expect_join(&alice.member()).await?;
    let mut bob = connect_raw(
        cx,
        &format!("/{space}?identity=bob&token={}", enc(&token("bob"))),
    )
    .await?;
    bob.expect_welcome().await?;
    ensure!(bob.identity == "bob");
    observer.expect_join(&bob.member()).await
}

/// Every refused token: `Unauthorized: …`, close 1008, nobody sees
/// anything, and the server's log never holds the token.
pub async fn refused_tokens_are_unauthorized_1008_and_never_logged(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = join_with_token(cx, &space, &token("observer")).await?;
    let now = unix_now();
    let good = token("mallory");
    let (head, _) = good.rsplit_once('.').expect("three parts");
    let forged = format!("{head}.{}", "A".repeat(43));
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(r#"{"alg":"none"}"#),
            b64.encode(format!(r#"{{"sub":"mallory","exp":{}}}"#, now + 60))
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("no token", "identity=mallory".into()),
        ("garbage", "token=not-a-token".into()),
        ("forged signature", format!("token={}", enc(&forged))),
        ("alg none", format!("token={}", enc(&unsigned))),
        (
            "wrong secret",
            format!("token={}", token_with("m", now + 60, "", "nope")),
        ),
        (
            "expired",
            format!("token={}", token_with("m", now - 120, "", SECRET)),
        ),
        (
            "identity mismatch",
            format!("identity=alice&token={}", enc(&good)),
        ),
        (
            "space not admitted",
            format!(
                "token={}",
                token_with("m", now + 60, r#","spaces":["other","x-*"]"#, SECRET)
            ),
        ),
    ];
    for (what, query) in &cases {
        let mut c = connect_raw(cx, &format!("/{space}?{query}")).await?;
        c.expect_rejected("Unauthorized: ", 1008)
            .await
            .with_context(|| what.to_string())?;
    }
    observer.expect_silence().await?;
    for instance in cx.dep().instances() {
        let log = instance.log();
        for secret_text in [good.as_str(), forged.as_str(), SECRET] {
            ensure!(
                !log.contains(secret_text),
                "{} logged a token or secret",
                instance.label
            );
        }
        ensure!(
            log.contains("Unauthorized"),
            "{} did not log the refusals",
            instance.label
        );
    }
    Ok(())
}

/// `AUTH_SECRET_PREVIOUS` is accepted too, so secrets rotate without
/// dropping anyone; `exp` gets at most 30 s of skew.
pub async fn previous_secret_and_30s_skew(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let now = unix_now();
    join_with_token(cx, &space, &token_with("old", now + 60, "", OLD_SECRET)).await?;
    join_with_token(cx, &space, &token_with("skewed", now - 20, "", SECRET)).await?;
    let mut late = connect_raw(
        cx,
        &format!(
            "/{space}?token={}",
            token_with("late", now - 40, "", SECRET)
        ),
    )
    .await?;
    late.expect_rejected("Unauthorized: token expired", 1008)
        .await?;
    Ok(())
}

/// The `spaces` claim admits exact names and `prefix*` patterns.
pub async fn spaces_claim_admits_exact_names_and_prefixes(cx: &Ctx) -> Result<()> {
    let base = unique("team");
    let claims = format!(r#","spaces":["{base}-exact","{base}/*"]"#);
    let t = token_with("carol", unix_now() + 60, &claims, SECRET);
    join_with_token(cx, &format!("{base}-exact"), &t).await?;
    join_with_token(cx, &format!("{base}/doc-1"), &t).await?;
    for space in [format!("{base}-exact2"), format!("{base}-other")] {
        let mut c = connect_raw(cx, &format!("/{}?token={}", enc(&space), enc(&t))).await?;
        c.expect_rejected("Unauthorized: token does not admit this space", 1008)
            .await
            .with_context(|| space.clone())?;
    }
    Ok(())
}

/// With tokens, only the token's subject may resume its lease.
pub async fn resume_only_by_the_token_subject(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = join_with_token(cx, &space, &token("observer")).await?;
    let mut alice = join_with_token(cx, &space, &token("alice")).await?;
    observer.expect_join(&alice.member()).await?;
    let id = alice.id.clone();
    let mut bob = connect_raw(
        cx,
        &format!("/{space}?id={id}&token={}", enc(&token("bob"))),
    )
    .await?;
    bob.expect_rejected("Invalid id", 1008).await?;
    let mut again = connect_raw(
        cx,
        &format!("/{space}?id={id}&token={}", enc(&token("alice"))),
    )
    .await?;
    again.expect_welcome().await?;
    ensure!(again.id == id && again.joined_at == alice.joined_at);
    alice.expect_close(4001).await?;
    observer.expect_silence().await
}

/// Beyond `MAX_CLIENTS_PER_SPACE`: `Space is full`, close 1013, nobody
/// inside sees anything; a resume of a live lease still gets in; once
/// someone leaves there is room again.
pub async fn full_space_is_1013_and_nobody_inside_is_disturbed(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let mut c = cx.join(&space, "c").await?;
    a.expect_join(&c.member()).await?;
    b.expect_join(&c.member()).await?;
    for i in 0..3 {
        let mut d = cx.connect(&space, Some(&format!("d{i}")), None).await?;
        d.expect_rejected("Space is full", 1013).await?;
    }
    // A lost connection keeps its lease, and may resume it while full.
    let c_id = c.id.clone();
    c.drop_tcp()?;
    let mut c2 = cx.join_with_id(&space, "c", &c_id).await?;
    ensure!(c2.id == c_id);
    crate::support::expect_all_silent(&mut [&mut a, &mut b, &mut c2]).await?;
    // Still full for newcomers; room again after a clean leave.
    let mut e = cx.connect(&space, Some("e"), None).await?;
    e.expect_rejected("Space is full", 1013).await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;
    let f = cx.join(&space, "f").await?;
    a.expect_join(&f.member()).await?;
    Ok(())
}

/// More messages than `MESSAGE_RATE`/`MESSAGE_BURST` allow: an error, close
/// 1008, and the lease ends at once (a protocol violation). A client well
/// under the rate is untouched.
pub async fn message_flood_is_rate_limited_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let mut calm = cx.join(&space, "calm").await?;
    observer.expect_join(&calm.member()).await?;
    for _ in 0..8 {
        calm.ping().await?;
    }
    let mut flood = cx.join(&space, "flood").await?;
    observer.expect_join(&flood.member()).await?;
    calm.expect_join(&flood.member()).await?;
    // A ping with an extra field: still a ping everywhere, but one that the
    // edge's auto-response (which answers only the exact text, without
    // waking the space) does not absorb.
    for _ in 0..40 {
        if flood
            .send_text(r#"{"action":"ping","flood":true}"#)
            .await
            .is_err()
        {
            break;
        }
    }
    flood.expect_rejected("Rate limit exceeded", 1008).await?;
    observer.expect_leave(&flood.member()).await?;
    calm.expect_leave(&flood.member()).await?;
    expect_still_open(cx, &space, &mut calm).await
}

/// With `ALLOWED_ORIGINS` set, an upgrade from an unlisted origin (or with
/// none) is HTTP 403 and no WebSocket is made; listed ones are served.
pub async fn unlisted_origin_is_403_before_upgrade(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let url = format!("{}/{space}?identity=x", cx.dep().ws_base());
    for origin in [
        Some("https://evil.example"),
        Some("https://app.example.evil"),
        Some("null"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("Origin", *o)).collect();
        let status = upgrade_status(&url, &headers).await?;
        ensure!(status == 403, "origin {origin:?}: status {status}");
    }
    for origin in ["https://app.example", "http://localhost:3000"] {
        let mut c = Client::connect_with_headers(&url, &[("Origin", origin)]).await?;
        c.expect_welcome()
            .await
            .with_context(|| origin.to_string())?;
    }
    Ok(())
}

/// Beyond `MAX_CONNECTIONS` WebSockets an upgrade is HTTP 503; a freed
/// slot serves again.
pub async fn max_connections_beyond_is_503(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    // One instance: the limit is per instance.
    let base = cx.dep().ws_base_of(0);
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(Client::join(&base, &space, &format!("c{i}"), None).await?);
    }
    let url = format!("{base}/{space}?identity=extra");
    let status = upgrade_status(&url, &[]).await?;
    ensure!(status == 503, "4th connection got {status}");
    let mut first = held.remove(0);
    first.close().await?;
    // The slot is released when the server's socket task ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = match Client::connect_url(&url).await {
            Ok(c) => c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                held[0]
                    .expect_silence_for(Duration::from_millis(50))
                    .await
                    .ok();
                continue;
            }
            Err(e) => bail!("no slot after a close: {e:#}"),
        };
        c.expect_welcome().await?;
        return Ok(());
    }
}

/// A connection that never completes its HTTP request head is dropped
/// after `HANDSHAKE_TIMEOUT_MS`, not before; a normal one is unaffected.
pub async fn handshake_not_completed_is_dropped(cx: &Ctx) -> Result<()> {
    let addr = cx
        .dep()
        .http_base()
        .trim_start_matches("http://")
        .to_string();
    let started = Instant::now();
    let conns = (0..20).map(|i| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await?;
            if i % 2 == 0 {
                s.write_all(b"GET /x?identity=slow HTTP/1.1\r\nHost: x\r\n")
                    .await?;
            }
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .context("the server never dropped a half-open handshake")?
                .unwrap_or(0);
            anyhow::Ok((n, started.elapsed()))
        }
    });
    for (n, after) in try_join_all(conns).await? {
        ensure!(n == 0, "expected the connection dropped, read {n} bytes");
        ensure!(
            after >= Duration::from_millis(550),
            "dropped after {after:?}, before the 600 ms deadline"
        );
    }
    let space = cx.space();
    cx.join(&space, "normal").await?;
    Ok(())
}

/// A client that stops reading while events pile up is disconnected as a
/// lost connection (no close frame; its lease runs on until expiry) once
/// its bounded send queue fills; everyone else keeps getting every event.
pub async fn client_that_stops_reading_is_dropped_as_lost(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let sleeper = crate::hostile::join_non_reader(cx, &space, "sleeper").await?;
    observer.expect_join(&sleeper.member).await?;
    // Big events (long identities), twenty clients at a time: the kernel's
    // socket buffers take megabytes before the server's queue fills.
    let pad = "🦀".repeat(240);
    let mut view = longhouse_e2e::View::from_roster(&observer.roster)?;
    let mut dropped = false;
    for round in 0..300 {
        churn_round(
            cx,
            &space,
            &format!("{round}-{pad}"),
            &mut observer,
            &mut view,
        )
        .await?;
        observer.ping().await?;
        if crate::hostile::overflow_drops(cx.dep()) > 0 {
            dropped = true;
            break;
        }
    }
    ensure!(dropped, "the non-reading client was never disconnected");
    let mut sleeper = sleeper;
    if let Incoming::Close(frame) = sleeper.drain_until_end().await? {
        bail!("expected a lost connection, got a close frame {frame:?}");
    }
    // Lost, not left: no leave now; it comes with the lease's expiry.
    observer.expect_silence_for(Duration::from_secs(1)).await?;
    observer
        .expect_leave_within(&sleeper.member, cx.ttl() + Duration::from_secs(3))
        .await?;
    Ok(())
}

/// Twenty clients join at once and leave again; `observer` must see each
/// join and leave exactly once (checked by `view`).
pub async fn churn_round(
    cx: &Ctx,
    space: &str,
    prefix: &str,
    observer: &mut Client,
    view: &mut longhouse_e2e::View,
) -> Result<()> {
    let names: Vec<String> = (0..20).map(|i| format!("{i}-{prefix}")).collect();
    let joins = names.iter().map(|n| cx.join(space, n));
    let mut clients = try_join_all(joins).await?;
    try_join_all(clients.iter_mut().map(|c| c.close())).await?;
    for _ in 0..40 {
        let (kind, member) = observe(observer).await?;
        view.apply(&kind, &member)?;
    }
    Ok(())
}

/// The next roster event `observer` gets.
pub async fn observe(observer: &mut Client) -> Result<(String, longhouse_e2e::Member)> {
    loop {
        let v = observer.recv_json().await?;
        if let Some(kind) = v.get("event").and_then(|e| e.as_str()) {
            return Ok((
                kind.to_string(),
                longhouse_e2e::Member::from_json(&v["client"])?,
            ));
        }
    }
}
