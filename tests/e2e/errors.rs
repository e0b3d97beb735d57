//! PROTOCOL.md section 6, Errors: one case per row of the table (the
//! `Invalid id` row is also covered in resume.rs), plus the message-size
//! edge cases.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use longhouse_e2e::{unique, Ctx};

use crate::support::{connect_raw, expect_all_silent, expect_still_open, ping_of_len, AT_ONCE};

/// No space in the path: `Space ID is required`, close 1008.
pub async fn no_space_is_space_id_required_1008(cx: &Ctx) -> Result<()> {
    for path in ["/?identity=alice", "/", "/?identity=alice&id=abc"] {
        let mut c = connect_raw(cx, path).await?;
        c.expect_rejected("Space ID is required", 1008)
            .await
            .with_context(|| format!("path {path}"))?;
    }
    Ok(())
}

/// No `identity`: `No identity parameter was supplied`, close 1008; nobody
/// in the space sees anything.
pub async fn no_identity_is_no_identity_parameter_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    for query in [
        "",
        "?",
        "?id=abc",
        "?identity",
        "?Identity=alice",
        "?identity=",
    ] {
        let mut c = connect_raw(cx, &format!("/{space}{query}")).await?;
        c.expect_rejected("No identity parameter was supplied", 1008)
            .await
            .with_context(|| format!("query {query:?}"))?;
    }
    observer.expect_silence().await
}

/// Space, identity or id out of limits: `Invalid…`, close 1008; nobody in
/// the space sees anything. (The limits themselves: connect.rs.)
pub async fn out_of_limits_is_invalid_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut observer = cx.join(&space, "observer").await?;
    let bad: [(String, Option<String>, Option<String>); 3] = [
        ("s".repeat(129), Some("alice".into()), None),
        (space.clone(), Some("i".repeat(257)), None),
        (space.clone(), Some("alice".into()), Some("x".repeat(65))),
    ];
    for (s, identity, id) in bad {
        let mut c = cx.connect(&s, identity.as_deref(), id.as_deref()).await?;
        c.expect_rejected("Invalid", 1008).await.with_context(|| {
            format!("space {} chars, identity {identity:?}, id {id:?}", s.len())
        })?;
    }
    observer.expect_silence().await
}

/// A text frame that is not valid UTF-8: close 1007, no error message.
pub async fn non_utf8_text_frame_closes_1007(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    for payload in [
        &b"\xff\xfe"[..],
        &b"{\"action\":\"ping\",\"x\":\"\xc3\x28\"}"[..],
        &b"\xed\xa0\x80"[..],
    ] {
        let mut c = cx.join(&space, &unique("sender")).await?;
        c.send_raw_text(payload).await?;
        c.expect_close(1007)
            .await
            .with_context(|| format!("payload {payload:?}"))?;
    }
    Ok(())
}

/// A text frame that is not JSON: `Unparsable message sent`, and the socket
/// stays open (and in the space).
pub async fn not_json_is_unparsable_and_stays_open(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut c = cx.join(&space, "alice").await?;
    for text in [
        "hello",
        "{",
        "",
        "{\"action\":",
        "{'action':'ping'}",
        "ping",
    ] {
        c.send_text(text).await?;
        c.expect_error("Unparsable message sent")
            .await
            .with_context(|| format!("text {text:?}"))?;
    }
    expect_still_open(cx, &space, &mut c).await
}

/// JSON without a known `action`: `Unrecognized action sent`, and the
/// socket stays open.
pub async fn json_without_known_action_is_unrecognized_and_stays_open(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut c = cx.join(&space, "alice").await?;
    for text in [
        "{}",
        r#"{"action":"dance"}"#,
        r#"{"action":5}"#,
        r#"{"action":null}"#,
        r#"{"foo":"ping"}"#,
        r#"{"Action":"ping"}"#,
        r#"{"action":"PING"}"#,
        r#"[1,2]"#,
        r#"["ping"]"#,
        r#""ping""#,
        "42",
        "null",
    ] {
        c.send_text(text).await?;
        c.expect_error("Unrecognized action sent")
            .await
            .with_context(|| format!("text {text}"))?;
    }
    expect_still_open(cx, &space, &mut c).await
}

/// A binary frame: `Binary messages are not supported`, and the socket
/// stays open.
pub async fn binary_frame_is_not_supported_and_stays_open(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut c = cx.join(&space, "alice").await?;
    for bytes in [&b"\x00\x01\x02"[..], br#"{"action":"ping"}"#, b""] {
        c.send_binary(bytes).await?;
        c.expect_error("Binary messages are not supported")
            .await
            .with_context(|| format!("binary {bytes:?}"))?;
    }
    expect_still_open(cx, &space, &mut c).await
}

/// A message one byte over `MAX_MESSAGE_BYTES`: `Message too large`, close
/// 1009, and the others see the leave at once.
pub async fn message_over_max_bytes_is_too_large_1009(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let max = cx.dep().options().max_message_bytes;
    let mut observer = cx.join(&space, "observer").await?;
    let mut c = cx.join(&space, "alice").await?;
    observer.expect_join(&c.member()).await?;
    let sent = Instant::now();
    c.send_text(&ping_of_len(max + 1)).await?;
    c.expect_rejected("Message too large", 1009).await?;
    let at = observer.expect_leave_within(&c.member(), AT_ONCE).await?;
    ensure!(at - sent < AT_ONCE, "leave after {:?}", at - sent);
    Ok(())
}

/// The limit applies after reassembly: small fragments adding up to more
/// than `MAX_MESSAGE_BYTES` are too large too.
pub async fn fragmented_message_over_max_bytes_is_too_large_1009(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let max = cx.dep().options().max_message_bytes;
    let mut observer = cx.join(&space, "observer").await?;
    let mut c = cx.join(&space, "alice").await?;
    observer.expect_join(&c.member()).await?;
    let text = ping_of_len(max + 1);
    let chunk = (max / 8).max(1);
    let parts: Vec<&[u8]> = text.as_bytes().chunks(chunk).collect();
    ensure!(parts.iter().all(|p| p.len() < max) && parts.len() > 2);
    let sent = Instant::now();
    c.send_fragmented_text(&parts).await?;
    c.expect_rejected("Message too large", 1009).await?;
    let at = observer.expect_leave_within(&c.member(), AT_ONCE).await?;
    ensure!(at - sent < AT_ONCE, "leave after {:?}", at - sent);
    Ok(())
}

/// Exactly `MAX_MESSAGE_BYTES` is accepted, whole or in fragments.
pub async fn message_of_exactly_max_bytes_is_accepted(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let max = cx.dep().options().max_message_bytes;
    let mut observer = cx.join(&space, "observer").await?;
    let mut c = cx.join(&space, "alice").await?;
    observer.expect_join(&c.member()).await?;
    let text = ping_of_len(max);
    assert_eq!(text.len(), max);
    c.send_text(&text).await?;
    c.expect_silence()
        .await
        .context("a whole message of MAX_MESSAGE_BYTES")?;
    let parts: Vec<&[u8]> = text.as_bytes().chunks(max / 4).collect();
    c.send_fragmented_text(&parts).await?;
    c.expect_silence()
        .await
        .context("a fragmented message of MAX_MESSAGE_BYTES")?;
    observer.expect_silence().await?;
    expect_still_open(cx, &space, &mut c).await
}

/// Fragments are reassembled before anything else: a message split in the
/// middle of a UTF-8 character is fine, and it is judged as a whole.
pub async fn fragmented_message_is_reassembled(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut c = cx.join(&space, "alice").await?;
    // `é` is C3 A9: split between the two bytes.
    c.send_fragmented_text(&[b"{\"action\":\"d\xc3", b"\xa9\"}"])
        .await?;
    c.expect_error("Unrecognized action sent").await?;
    c.send_fragmented_text(&[b"not ", b"json", b" at all"])
        .await?;
    c.expect_error("Unparsable message sent").await?;
    c.send_fragmented_text(&[b"{\"act", b"ion\":\"pi", b"ng\"}"])
        .await?;
    c.expect_silence().await?;
    expect_still_open(cx, &space, &mut c).await
}

/// `MAX_MESSAGE_BYTES` is the configured value, not a constant (here 1024).
pub async fn max_message_bytes_setting_is_honoured(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let max = cx.dep().options().max_message_bytes;
    ensure!(max == 1024, "registered with MAX_MESSAGE_BYTES=1024");
    let mut observer = cx.join(&space, "observer").await?;
    let mut c = cx.join(&space, "alice").await?;
    observer.expect_join(&c.member()).await?;
    c.send_text(&ping_of_len(max)).await?;
    c.expect_silence().await?;
    c.send_text(&ping_of_len(max + 1)).await?;
    c.expect_rejected("Message too large", 1009).await?;
    observer.expect_leave(&c.member()).await?;
    Ok(())
}

/// An id held by another identity: `Invalid id`, close 1008.
pub async fn id_held_by_another_identity_is_invalid_id_1008(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut holder = cx.join(&space, "alice").await?;
    for identity in ["bob", "Alice", "alice ", "alicé"] {
        let mut c = cx.connect(&space, Some(identity), Some(&holder.id)).await?;
        c.expect_rejected("Invalid id", 1008)
            .await
            .with_context(|| format!("identity {identity:?}"))?;
    }
    expect_all_silent(&mut [&mut holder]).await
}
