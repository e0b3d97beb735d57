//! PROTOCOL.md section 13: broadcast, and the 2015 cursor relay.

use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use longhouse_e2e::{Client, Ctx};
use serde_json::{json, Value};

use crate::support::expect_all_silent;

/// Every other client, on every instance, gets each broadcast once, in the
/// order sent, `from` the sender; never the sender itself.
pub async fn broadcasts_reach_everyone_else_in_order_never_the_sender(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let (mut a, mut b, mut c) = crate::support::join_three(cx, &space).await?;
    let data = [
        json!(1),
        json!("two"),
        json!([3]),
        json!({"four": 4}),
        Value::Null,
    ];
    for _ in 0..4 {
        for d in &data {
            a.send_json(&json!({"action": "broadcast", "data": d}))
                .await?;
        }
    }
    for other in [&mut b, &mut c] {
        for _ in 0..4 {
            for d in &data {
                let v = other.recv_json().await?;
                ensure!(
                    v == json!({"event": "broadcast", "from": a.id, "data": d}),
                    "{}: expected {d} from {}, got {v}",
                    other.label,
                    a.id
                );
            }
        }
    }
    expect_all_silent(&mut [&mut a, &mut b, &mut c]).await
}

/// Without `data`: `Invalid broadcast`, the socket stays open, nobody gets
/// anything; a client that joins later never sees earlier broadcasts.
pub async fn broadcast_without_data_is_invalid_and_nothing_is_stored(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    a.send_json(&json!({"action": "broadcast", "dat": 1}))
        .await?;
    a.expect_error("Invalid broadcast").await?;
    b.expect_silence().await?;
    a.send_json(&json!({"action": "broadcast", "data": "before"}))
        .await?;
    b.recv_json().await?;
    let mut late = cx.join(&space, "late").await?;
    a.expect_join(&late.member()).await?;
    b.expect_join(&late.member()).await?;
    late.expect_silence().await?;
    a.send_json(&json!({"action": "broadcast", "data": "after"}))
        .await?;
    for c in [&mut b, &mut late] {
        let v = c.recv_json().await?;
        ensure!(v["data"] == "after", "{}: {v}", c.label);
    }
    Ok(())
}

/// The 2015 cursor: `{"action":"cursor",…}` reaches every other client as
/// the same object with `clientId` set to the sender's id (a forged one
/// replaced); the sender gets nothing.
pub async fn cursor_is_relayed_with_the_senders_client_id(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let (mut a, mut b, mut c) = crate::support::join_three(cx, &space).await?;
    a.send_text(r#"{"action":"cursor","x":12,"y":34.5,"clientId":"forged","page":"/doc"}"#)
        .await?;
    for other in [&mut b, &mut c] {
        let v = other.recv_json().await?;
        ensure!(
            v == json!({"action": "cursor", "x": 12, "y": 34.5, "clientId": a.id, "page": "/doc"}),
            "{}: {v}",
            other.label
        );
    }
    expect_all_silent(&mut [&mut a, &mut b, &mut c]).await
}

/// A broadcast and a cursor renew the lease: a client that only sends them
/// outlives two TTLs.
pub async fn broadcast_and_cursor_renew_the_lease(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let ttl = cx.ttl();
    let until = Instant::now() + ttl * 2 + ttl / 2;
    let mut n = 0u32;
    while Instant::now() < until {
        let message = if n.is_multiple_of(2) {
            json!({"action": "broadcast", "data": n})
        } else {
            json!({"action": "cursor", "x": n})
        };
        a.send_json(&message).await?;
        b.ping().await?;
        n += 1;
        let next = Instant::now() + ttl / 3;
        while let Some((v, _)) = b.poll_json(next).await? {
            ensure!(
                v["event"] == "broadcast" || v["action"] == "cursor",
                "b got {v}"
            );
        }
    }
    crate::support::expect_still_open(cx, &space, &mut a).await
}

/// One sender's broadcasts keep their order when clients sit on different
/// instances and the sender races a newcomer's join: the newcomer sees a
/// suffix of them, in order, and only after it was welcomed.
pub async fn broadcasts_keep_order_across_instances_and_joins(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let mut b = cx.join(&space, "b").await?;
    a.expect_join(&b.member()).await?;
    let total = 200u64;
    let base = cx.dep().ws_base();
    let space2 = space.clone();
    let joiner = tokio::spawn(async move {
        // Join while the broadcasts are under way.
        longhouse_e2e::let_time_pass(Duration::from_millis(20)).await;
        Client::join(&base, &space2, "late", None).await
    });
    for n in 0..total {
        a.send_json(&json!({"action": "broadcast", "data": n}))
            .await?;
        if n % 20 == 0 {
            longhouse_e2e::let_time_pass(Duration::from_millis(5)).await;
        }
    }
    let mut late = joiner.await.map_err(|e| anyhow!("{e}"))??;
    let ns = |c: &mut Client| -> Vec<u64> {
        c.log
            .iter()
            .filter_map(|r| r.what.json())
            .filter(|v| v["event"] == "broadcast")
            .map(|v| v["data"].as_u64().unwrap_or(u64::MAX))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns(&mut b).last() != Some(&(total - 1)) {
        let (v, _) = b
            .poll_json(deadline)
            .await?
            .ok_or_else(|| anyhow!("b stopped at {:?}", ns(&mut b).last()))?;
        ensure!(
            v["event"] == "broadcast" || v["event"] == "remote join",
            "{v}"
        );
    }
    ensure!(
        ns(&mut b) == (0..total).collect::<Vec<_>>(),
        "b: {:?}",
        ns(&mut b)
    );
    // The late joiner: what it got after its welcome, a gapless suffix.
    while late
        .poll_json(Instant::now() + longhouse_e2e::SILENCE)
        .await?
        .is_some()
    {}
    let seen = ns(&mut late);
    if let Some(first) = seen.first() {
        ensure!(
            seen == (*first..total).collect::<Vec<_>>(),
            "late: {seen:?}"
        );
    }
    Ok(())
}

/// Broadcasts count towards `MESSAGE_RATE`: a client that broadcasts faster
/// than it allows is closed 1008 (`Rate limit exceeded`) and seen leaving.
pub async fn broadcasts_count_towards_the_message_rate(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut a = cx.join(&space, "a").await?;
    let message = r#"{"action":"broadcast","data":1}"#;
    let reason =
        crate::reasons::flood_until_rate_limited(cx, &space, &mut a, message, "broadcast").await?;
    ensure!(reason == "left", "{reason}");
    Ok(())
}
