//! PROTOCOL.md section 12: why someone left.

use anyhow::{ensure, Result};
use longhouse_e2e::{Client, Ctx};
use serde_json::Value;

use crate::state::expect_event_json;

async fn leave_reason(c: &mut Client, who: &Client) -> Result<Value> {
    let v = expect_event_json(c, "remote leave").await?;
    ensure!(v["client"]["id"] == who.id.as_str(), "{v}");
    Ok(v["reason"].clone())
}

/// A clean close: `reason` `left`.
pub async fn clean_close_is_left(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    b.close().await?;
    let reason = leave_reason(&mut a, &b).await?;
    ensure!(reason == "left", "{reason}");
    Ok(())
}

/// A close for a violation (1009): `left`.
pub async fn violation_close_is_left(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    b.send_text(&format!(
        r#"{{"action":"ping","p":"{}"}}"#,
        "x".repeat(5000)
    ))
    .await?;
    b.expect_rejected("Message too large", 1009).await?;
    let reason = leave_reason(&mut a, &b).await?;
    ensure!(reason == "left", "{reason}");
    Ok(())
}

/// A lease that runs out: `expired`.
pub async fn expiry_is_expired(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    b.drop_tcp()?;
    let deadline = std::time::Instant::now() + cx.ttl() * 3;
    // a keeps its own lease alive while it waits.
    loop {
        a.ping().await?;
        let wait = (std::time::Instant::now() + cx.ttl() / 3).min(deadline);
        if let Some((v, _)) = a.poll_json(wait).await? {
            ensure!(v["event"] == "remote leave", "{v}");
            ensure!(v["client"]["id"] == b.id.as_str(), "{v}");
            ensure!(v["reason"] == "expired", "{v}");
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "no leave for b");
    }
}

/// Floods `space` from a new client with `message` until the server closes
/// it for the rate (`MESSAGE_RATE`, a deployment with a low one): `Rate
/// limit exceeded`, 1008; `observer` sees what got through (events of
/// `relayed` only), then the leave, whose reason is returned.
pub async fn flood_until_rate_limited(
    cx: &Ctx,
    space: &str,
    observer: &mut Client,
    message: &str,
    relayed: &str,
) -> Result<Value> {
    let mut flood = cx.join(space, "flood").await?;
    observer.expect_join(&flood.member()).await?;
    for _ in 0..40 {
        if flood.send_text(message).await.is_err() {
            break;
        }
    }
    flood.expect_rejected("Rate limit exceeded", 1008).await?;
    loop {
        let v = observer.recv_json().await?;
        if v["event"] == "remote leave" {
            ensure!(v["client"]["id"] == flood.id.as_str(), "{v}");
            return Ok(v["reason"].clone());
        }
        ensure!(v["event"] == relayed, "before the leave: {v}");
    }
}

/// A close for a violation (1008, the message rate): `left`.
pub async fn rate_limit_close_is_left(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let ping = r#"{"action":"ping","flood":true}"#;
    let reason = flood_until_rate_limited(cx, &space, &mut a, ping, "none").await?;
    ensure!(reason == "left", "{reason}");
    Ok(())
}
