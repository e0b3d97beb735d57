//! `messages`: C clients held in one space; one more client sends M
//! messages that the server handles but nobody else hears of (an
//! unrecognized action: an error back to the sender, nothing stored, no
//! lease renewed), and counts the M errors. Messages/s for one sender shows
//! whether a message costs its sender or every socket of the space.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Counters, Spec, Target};
use crate::common::{close_all, load, open_all, round3, run_tag, settle};

/// Flags of `messages`.
#[derive(Debug, Clone, clap::Args)]
pub struct MessagesArgs {
    /// Clients held in the space besides the sender.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Messages the sender sends.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// Connects in flight while filling the space.
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// Give up after this long without the final error, ms.
    #[arg(long, default_value_t = 60_000)]
    pub timeout_ms: u64,
}

/// Draws `Unrecognized action sent` back to the sender only, and changes
/// nothing (a ping would renew the lease, which the edge writes to storage,
/// so the disk would be measured too).
const MESSAGE: &str = r#"{"action":"nothing"}"#;

/// Runs `messages`; returns the report and whether the sender's messages
/// were all handled.
pub async fn run(target: &Target, args: &MessagesArgs) -> (Value, bool) {
    let tag = run_tag();
    let space = format!("messages-{tag}");
    let counters = Arc::new(Counters::default());
    let specs = Spec::members(&space, args.clients);
    let members = open_all(target, specs, args.in_flight, &counters, 0).await;
    let held = members.iter().filter(|c| c.is_live()).count();
    let expected = (held * held.saturating_sub(1) / 2) as u64;
    settle(
        || load(&counters.joins),
        expected,
        Duration::from_secs(5),
        Duration::ZERO,
    )
    .await;
    println!(
        "messages: {held}/{} clients held in one space",
        args.clients
    );

    let outcome = send(target, &space, args).await;
    let (ok, report) = match outcome {
        Ok(elapsed) => {
            let per_s = args.messages as f64 / elapsed.as_secs_f64();
            println!(
                "  {} messages from one sender handled in {:.3} s: {:.0} messages/s ({:.1} µs each)",
                args.messages,
                elapsed.as_secs_f64(),
                per_s,
                elapsed.as_secs_f64() * 1e6 / args.messages as f64
            );
            (
                true,
                json!({ "elapsed_s": round3(elapsed.as_secs_f64()), "messages_per_s": round3(per_s) }),
            )
        }
        Err(e) => {
            println!("  FAILED: {e}");
            (false, json!({ "error": e }))
        }
    };
    // Reported before the space empties (each leave reaches everyone).
    let all: Vec<_> = members.iter().collect();
    close_all(&all, 200).await;
    let dropped = load(&counters.dropped);
    let ok = ok && dropped == 0;
    println!("  dropped {dropped}; {}", if ok { "OK" } else { "FAILED" });
    let mut report = report;
    report["scenario"] = json!("messages");
    report["clients"] = json!(args.clients);
    report["held"] = json!(held);
    report["messages"] = json!(args.messages);
    report["dropped"] = json!(dropped);
    report["ok"] = json!(ok);
    (report, ok)
}

/// Joins as the sender, sends the messages and waits for the final error.
async fn send(target: &Target, space: &str, args: &MessagesArgs) -> Result<Duration, String> {
    let url = format!("ws://{}/{space}?identity=sender", target.server);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("sender connect: {e}"))?;
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    // The welcome first, so the sender is in the space.
    loop {
        if let Message::Text(t) = next_message(&mut ws, deadline).await? {
            if t.starts_with(r#"{"id""#) {
                break;
            }
        }
    }
    let started = Instant::now();
    for _ in 0..args.messages {
        ws.feed(Message::text(MESSAGE))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    ws.flush().await.map_err(|e| format!("send: {e}"))?;
    let mut answered = 0;
    while answered < args.messages {
        match next_message(&mut ws, deadline).await? {
            Message::Text(t) if t.contains("Unrecognized action") => answered += 1,
            Message::Text(t) if t.contains("\"error\"") => {
                return Err(format!("the sender was refused: {t}"))
            }
            Message::Close(f) => return Err(format!("the sender was closed: {f:?}")),
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    let _ = ws.close(None).await;
    Ok(elapsed)
}

/// The sender's next message, by `deadline`.
async fn next_message<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    deadline: Instant,
) -> Result<Message, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout_at(deadline.into(), ws.next()).await {
        Err(_) => Err("timed out".to_owned()),
        Ok(None) => Err("the sender's connection ended".to_owned()),
        Ok(Some(Err(e))) => Err(format!("sender: {e}")),
        Ok(Some(Ok(m))) => Ok(m),
    }
}
