//! PROTOCOL.md section 2, The welcome.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, ensure, Result};
use longhouse_e2e::client::{is_lowercase_uuid_v4, parse_joined_at, Incoming};
use longhouse_e2e::{Client, Ctx};
use serde_json::Value;

/// The first message is the roster of the space, the client itself
/// included; later joiners see earlier ones exactly as they saw themselves.
pub async fn first_message_is_the_roster_including_self(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let a = cx.join(&space, "a@example.com").await?;
    ensure!(
        matches!(a.log.first(), Some(r) if r.what.json().is_some_and(|v| v.get("clients").is_some())),
        "the very first message is not the welcome: {}",
        a.transcript()
    );
    ensure!(a.roster == vec![a.member()], "roster {:?}", a.roster);
    let b = cx.join(&space, "b@example.com").await?;
    ensure!(
        matches!(b.log.first(), Some(r) if r.what.json().is_some_and(|v| v.get("clients").is_some())),
        "the very first message is not the welcome: {}",
        b.transcript()
    );
    ensure!(a.id != b.id, "two clients got the same id {}", a.id);
    let mut expected = vec![a.member(), b.member()];
    let mut got = b.roster.clone();
    expected.sort();
    got.sort();
    ensure!(got == expected, "roster {got:?}, expected {expected:?}");
    Ok(())
}

/// A fresh id is a lowercase UUID v4, different for every client.
pub async fn fresh_id_is_lowercase_uuid_v4(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut seen = HashSet::new();
    for i in 0..8 {
        let c = cx.join(&space, &format!("user{i}")).await?;
        ensure!(
            is_lowercase_uuid_v4(&c.id),
            "id {:?} is not a lowercase UUID v4",
            c.id
        );
        ensure!(seen.insert(c.id.clone()), "id {} handed out twice", c.id);
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `joinedAt` is RFC 3339, UTC, millisecond precision, `Z` suffix, and the
/// time of the join.
pub async fn joined_at_is_rfc3339_utc_milliseconds(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let before = now_ms();
    let a = cx.join(&space, "a").await?;
    let b = cx.join(&space, "b").await?;
    let after = now_ms();
    let ta = parse_joined_at(&a.joined_at)?;
    let tb = parse_joined_at(&b.joined_at)?;
    for (who, t) in [("a", ta), ("b", tb)] {
        ensure!(
            t >= before - 2_000 && t <= after + 2_000,
            "{who}'s joinedAt is {t} ms, the join happened between {before} and {after}"
        );
    }
    ensure!(tb >= ta, "b joined after a but its joinedAt {tb} < {ta}");
    for m in &b.roster {
        parse_joined_at(&m.joined_at)?;
    }
    Ok(())
}

fn check_member_shape(v: &Value) -> Result<()> {
    let o = v
        .as_object()
        .ok_or_else(|| anyhow!("client entry is not an object: {v}"))?;
    for key in ["id", "identity", "joinedAt"] {
        ensure!(
            o.get(key).is_some_and(Value::is_string),
            "client entry lacks string {key:?}: {v}"
        );
    }
    Ok(())
}

fn raw_messages(c: &Client) -> Vec<Value> {
    c.log
        .iter()
        .filter(|r| !r.what.is_keepalive())
        .filter_map(|r| match &r.what {
            Incoming::Text(_) => r.what.json(),
            _ => None,
        })
        .collect()
}

/// `{"id":…,"clients":[{"id","identity","joinedAt"}]}` and
/// `{"event":…,"client":{"id","identity","joinedAt"}}`, each one JSON
/// object in one text frame.
pub async fn messages_have_the_spec_shape(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;

    let messages = raw_messages(&a);
    ensure!(messages.len() == 3, "a received {:?}", messages);
    let welcome = &messages[0];
    ensure!(
        welcome.get("id").is_some_and(Value::is_string),
        "welcome lacks string \"id\": {welcome}"
    );
    let clients = welcome
        .get("clients")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("welcome lacks array \"clients\": {welcome}"))?;
    for m in clients {
        check_member_shape(m)?;
    }
    for (event, kind) in [
        (&messages[1], "remote join"),
        (&messages[2], "remote leave"),
    ] {
        ensure!(
            event.get("event").and_then(Value::as_str) == Some(kind),
            "expected {{\"event\":\"{kind}\",…}}, got {event}"
        );
        check_member_shape(
            event
                .get("client")
                .ok_or_else(|| anyhow!("event lacks \"client\": {event}"))?,
        )?;
    }
    ensure!(
        a.log.iter().all(|r| !matches!(r.what, Incoming::Binary(_))),
        "a received binary frames: {}",
        a.transcript()
    );
    Ok(())
}
