//! Closes finish (RFC 6455 section 7.1.1): after the close handshake the
//! server ends the TCP connection at once, so a client's `close` event is
//! not held up by its own timeout (browsers wait about 2 s, some clients
//! 10). Each case measures the time from the server's close frame to the
//! end of the connection and prints it.
//!
//! On the edge, workerd keeps the connection of a hibernatable socket that
//! the Durable Object closed from outside that socket's own events (the
//! alarm's 4000, a resume's 4001) open until the object hibernates, about
//! 10 s after it goes idle: the runtime's doing, shown by the minimal
//! Worker in `tests/fixtures/close-hang` (README, "Closes on the edge").
//! Those cases check that bound there instead; the event and the close
//! frame still come at once.

use std::time::Duration;

use anyhow::{ensure, Result};
use longhouse_e2e::{Capability, Client, Ctx};

use crate::support::{ping_of_len, AT_ONCE};

/// Workerd's: a Durable Object hibernates 10 s after it last did anything;
/// the connection ends with it (plus slack for a loaded machine).
const UNTIL_HIBERNATION: Duration = Duration::from_secs(15);

/// Waits for close `code` on `client`, then for the end of its connection
/// within `bound`; prints the time between them.
async fn measure(cx: &Ctx, client: &mut Client, code: u16, bound: Duration) -> Result<Duration> {
    let took = client.expect_close_then_end(code, bound).await?;
    eprintln!(
        "[{}] {}: close {code} -> end of connection in {} ms",
        cx.target().name(),
        cx.name,
        took.as_millis()
    );
    Ok(took)
}

/// The bound for a close the Durable Object makes outside the closed
/// socket's own events: at once, but on the edge until hibernation.
fn bound_outside_own_events(cx: &Ctx) -> Duration {
    if cx.target().has(Capability::PromptServerCloses) {
        AT_ONCE
    } else {
        UNTIL_HIBERNATION
    }
}

/// A join refused before any space is involved (no identity: 1008).
pub async fn refused_join_ends_the_connection_at_once(cx: &Ctx) -> Result<()> {
    let mut c = cx.connect(&cx.space(), None, None).await?;
    c.expect_error("No identity parameter was supplied").await?;
    measure(cx, &mut c, 1008, AT_ONCE).await?;
    Ok(())
}

/// A join refused by the space itself: its id is held by another identity
/// (1008). On the edge the Durable Object answers it on a socket of the
/// standard API, whose close completes at once.
pub async fn id_held_by_another_ends_the_connection_at_once(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let holder = cx.join(&space, "alice").await?;
    let mut thief = cx
        .connect(&space, Some("mallory"), Some(&holder.id))
        .await?;
    thief.expect_error("Invalid id").await?;
    measure(cx, &mut thief, 1008, AT_ONCE).await?;
    Ok(())
}

/// A close for the socket's own message (1009, too large).
pub async fn message_too_large_ends_the_connection_at_once(cx: &Ctx) -> Result<()> {
    let max = cx.dep().options().max_message_bytes;
    let mut c = cx.join(&cx.space(), "alice").await?;
    c.send_text(&ping_of_len(max + 1)).await?;
    c.expect_error("Message too large").await?;
    measure(cx, &mut c, 1009, AT_ONCE).await?;
    Ok(())
}

/// A clean close by the client: the server answers and ends the connection.
pub async fn client_close_ends_the_connection_at_once(cx: &Ctx) -> Result<()> {
    let mut c = cx.join(&cx.space(), "alice").await?;
    c.send(tokio_tungstenite::tungstenite::Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        },
    )))
    .await?;
    measure(cx, &mut c, 1000, AT_ONCE).await?;
    Ok(())
}

/// A connection replaced by a resume of its id (4001), closed while the
/// new one joins. Others see nothing; the old client gets its close at once.
pub async fn replaced_connection_ends(cx: &Ctx) -> Result<()> {
    let space = cx.space();
    let mut old = cx.join(&space, "alice").await?;
    let new = cx.join_with_id(&space, "alice", &old.id).await?;
    ensure!(new.id == old.id, "the resume got {} for {}", new.id, old.id);
    measure(cx, &mut old, 4001, bound_outside_own_events(cx)).await?;
    Ok(())
}

/// A connection whose lease ran out (4000, from the sweep).
pub async fn expired_connection_ends(cx: &Ctx) -> Result<()> {
    let ttl = cx.ttl();
    let mut c = cx.join(&cx.space(), "alice").await?;
    let (v, _) = c.recv_json_timed(ttl + Duration::from_secs(2)).await?;
    ensure!(v == serde_json::json!({"event": "expired"}), "got {v}");
    measure(cx, &mut c, 4000, bound_outside_own_events(cx)).await?;
    Ok(())
}
