//! PROTOCOL.md section 1, plain HTTP: `/health` and everything else.

use anyhow::{ensure, Result};
use longhouse_e2e::{http, Ctx};

use crate::support::join_raw;

/// A plain `GET /health` answers `200` with body `ok`.
pub async fn plain_get_health_is_200_ok(cx: &Ctx) -> Result<()> {
    let r = http::get(&cx.dep().http_base(), "/health").await?;
    ensure!(r.status == 200, "GET /health: status {}", r.status);
    ensure!(
        r.body == b"ok",
        "GET /health: body {:?}, expected \"ok\"",
        r.body_text()
    );
    Ok(())
}

/// A WebSocket upgrade to `/health` is just the space `health`.
pub async fn websocket_upgrade_to_health_is_a_space(cx: &Ctx) -> Result<()> {
    let identity = longhouse_e2e::unique("h");
    let mut a = join_raw(cx, &format!("/health?identity={identity}a")).await?;
    let b = cx.join("health", &format!("{identity}b")).await?;
    ensure!(
        b.roster.contains(&a.member()),
        "/health and the space named health should be one space: {:?}",
        b.roster
    );
    a.expect_join(&b.member()).await
}

/// Other plain HTTP requests get 404 or 426.
pub async fn other_plain_get_is_404_or_426(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    for path in [
        format!("/{space}"),
        format!("/{space}?identity=a"),
        "/health/x".to_string(),
        "/healthz".to_string(),
    ] {
        let r = http::get(&cx.dep().http_base(), &path).await?;
        ensure!(
            r.status == 404 || r.status == 426,
            "plain GET {path}: status {}, expected 404 or 426",
            r.status
        );
    }
    Ok(())
}
