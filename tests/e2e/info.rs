//! PROTOCOL.md section 11: the token's signed `info`, and the 2015
//! `username`.

use anyhow::{ensure, Result};
use longhouse_e2e::client::{mint_token, unix_now};
use longhouse_e2e::{Client, Ctx};
use serde_json::json;

use crate::state::{expect_event_json, join_with, url_with, welcome_entry};
use crate::support::expect_all_silent;
use crate::trust::SECRET;

fn token(sub: &str, info: &str) -> String {
    let exp = unix_now() + 600;
    mint_token(&format!(r#"{{"sub":"{sub}","exp":{exp}{info}}}"#), SECRET)
}

/// A token's `info` object appears in the client's objects (welcome,
/// `remote join`); a token without one makes no `info` key.
pub async fn token_info_is_in_client_objects(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let plain = token("ann", "");
    let mut a = join_with(&base, &space, "ann", &[("token", &plain)]).await?;
    ensure!(welcome_entry(&a, &a.id)?.get("info").is_none());
    let signed = token("bob", r#","info":{"name":"Bob B.","role":"admin"}"#);
    let b = join_with(&base, &space, "bob", &[("token", &signed)]).await?;
    let mine = welcome_entry(&b, &b.id)?;
    ensure!(
        mine["info"] == json!({"name": "Bob B.", "role": "admin"}),
        "{mine}"
    );
    let join = expect_event_json(&mut a, "remote join").await?;
    ensure!(join["client"] == mine, "{join}");
    Ok(())
}

/// An `info` claim that is not an object, or over 1024 bytes:
/// `Unauthorized: invalid info`, close 1008.
pub async fn bad_token_info_is_unauthorized_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let big = format!(r#","info":{{"p":"{}"}}"#, "x".repeat(1025 - 8));
    for info in [r#","info":[1]"#, r#","info":"x""#, big.as_str()] {
        let t = token("ann", info);
        let mut c = Client::connect_url(&url_with(&base, &space, "ann", &[("token", &t)])).await?;
        c.expect_rejected("Unauthorized: invalid info", 1008)
            .await?;
    }
    Ok(())
}

/// A resume with a token whose `info` differs: one `remote update` with
/// the new info, no join or leave; the same info: nothing.
pub async fn resume_with_other_info_is_one_update(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut watcher = join_with(&base, &space, "w", &[("token", &token("w", ""))]).await?;
    let first = token("ann", r#","info":{"role":"guest"}"#);
    let a1 = join_with(&base, &space, "ann", &[("token", &first)]).await?;
    watcher.expect_join(&a1.member()).await?;
    let mut a2 = join_with(&base, &space, "ann", &[("token", &first), ("id", &a1.id)]).await?;
    watcher.expect_silence().await?;
    let second = token("ann", r#","info":{"role":"admin"}"#);
    let mut a3 = join_with(&base, &space, "ann", &[("token", &second), ("id", &a1.id)]).await?;
    a2.expect_close(4001).await?;
    // The resumer's own welcome already shows the info it brought.
    let mine = welcome_entry(&a3, &a1.id)?;
    ensure!(
        mine["info"] == json!({"role": "admin"}),
        "resumed with {mine}"
    );
    let v = expect_event_json(&mut watcher, "remote update").await?;
    ensure!(v["client"]["info"] == json!({"role": "admin"}), "{v}");
    ensure!(v["client"]["joinedAt"] == a1.joined_at.as_str(), "{v}");
    expect_all_silent(&mut [&mut watcher, &mut a3]).await
}

/// `username` (2015): echoed in client objects when given, absent when
/// not; out of limits: `Invalid username`, close 1008.
pub async fn username_is_echoed_and_checked(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let base = cx.dep().ws_base();
    let mut a = cx.join(&space, "a").await?;
    ensure!(welcome_entry(&a, &a.id)?.get("username").is_none());
    let b = join_with(&base, &space, "b", &[("username", "Zoë + 🦀")]).await?;
    let mine = welcome_entry(&b, &b.id)?;
    ensure!(mine["username"] == "Zoë + 🦀", "{mine}");
    let join = expect_event_json(&mut a, "remote join").await?;
    ensure!(join["client"] == mine, "{join}");
    let long = "u".repeat(257);
    for bad in [long.as_str(), "a\nb"] {
        let mut c =
            Client::connect_url(&url_with(&base, &space, "c", &[("username", bad)])).await?;
        c.expect_rejected("Invalid username", 1008).await?;
    }
    a.expect_silence().await
}
