//! One WebSocket from upgrade to close: parse the join, hand frames to the
//! store, write what the store queues, and report how the socket ended.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use longhouse_core::{
    refuse_join, Auth, CloseCode, ConnId, Disconnect, Frame, JoinRequest, Output, TokenBucket,
    KEEPALIVE_TEXT,
};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, field, warn, Instrument, Span};
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame as WireFrame};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::Message;

use crate::clock::now;
use crate::keepalive::Keepalive;
use crate::outbox::{outbox, Inbox, Next, Outbound};
use crate::store::Store;

/// How long a socket we closed waits for the client's close reply, so the
/// close frame is read before the TCP connection goes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How long a socket whose reader failed (a frame that was not UTF-8) stays
/// open after its close frame. The library will not read from it any more,
/// and closing a socket with unread input resets the connection, which can
/// destroy the close frame before the client reads it.
const FAILED_READ_LINGER: Duration = Duration::from_millis(500);

/// What the socket task needs besides its socket.
#[derive(Clone)]
pub struct Settings {
    /// The store.
    pub store: Store,
    /// The process's keepalive wheel, `None` for off.
    pub keepalive: Option<Keepalive>,
    /// Abuse limits (issue 5).
    pub limits: std::sync::Arc<Limits>,
}

/// The per-connection limits and the join policy, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Join tokens (`AUTH_SECRET`, `AUTH_SECRET_PREVIOUS`).
    pub auth: Auth,
    /// Largest `state=` or token `info`, bytes (`MAX_STATE_BYTES`).
    pub max_state_bytes: usize,
    /// Messages per second, sustained (`MESSAGE_RATE`, 0: no limit).
    pub message_rate: u32,
    /// Messages at once (`MESSAGE_BURST`).
    pub message_burst: u32,
    /// Messages queued for one socket (`MAX_QUEUED_MESSAGES`).
    pub max_queued: usize,
    /// Largest accepted message (`MAX_MESSAGE_BYTES`); also bounds a
    /// server broadcast's body.
    pub max_message_bytes: usize,
    /// The WebSocket library's settings, from `MAX_MESSAGE_BYTES`. Kept
    /// here (behind the one `Arc`) rather than in each socket's future.
    pub socket: WebSocketConfig,
    /// Page origins allowed to upgrade (`ALLOWED_ORIGINS`); empty: any.
    pub origins: Vec<String>,
    /// One permit per open WebSocket (`MAX_CONNECTIONS`); `None`: no limit.
    pub connections: Option<std::sync::Arc<tokio::sync::Semaphore>>,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Limits {
            auth: config.auth(),
            max_state_bytes: config.max_state_bytes,
            message_rate: config.message_rate,
            message_burst: config.message_burst,
            max_queued: config.max_queued_messages,
            max_message_bytes: config.max_message_bytes,
            socket: socket_config(config.max_message_bytes),
            origins: config.origins(),
            connections: (config.max_connections > 0)
                .then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_connections))),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            auth: Auth::off(),
            max_state_bytes: longhouse_core::DEFAULT_MAX_STATE_BYTES,
            message_rate: longhouse_core::DEFAULT_MESSAGE_RATE,
            message_burst: longhouse_core::DEFAULT_MESSAGE_BURST,
            max_queued: longhouse_core::defaults::DEFAULT_MAX_QUEUED_MESSAGES,
            max_message_bytes: longhouse_core::DEFAULT_MAX_MESSAGE_BYTES,
            socket: socket_config(longhouse_core::DEFAULT_MAX_MESSAGE_BYTES),
            origins: Vec::new(),
            connections: None,
        }
    }
}

/// The WebSocket library's settings for messages up to `max_message_bytes`.
fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    // The library's own limit is a hard cap well above the protocol's: a
    // message over MAX_MESSAGE_BYTES must be read whole so the core can
    // answer it with an error and a clean 1009 close, while a reader error
    // would leave the socket unusable for the close handshake. Anything
    // larger than sixteen times the limit (at least 64 KiB) is cut off.
    let hard_cap = max_message_bytes.saturating_mul(16).max(64 * 1024);
    WebSocketConfig::default()
        // A presence client sends pings and states of a few dozen to a few
        // hundred bytes: a small read buffer keeps idle sockets cheap (the
        // library reserves 128 KiB by default; 1 KiB cost ~930 B per idle
        // socket, BENCHMARKS.md "Round two"). A larger message still
        // arrives whole: the library grows the buffer to the frame's length
        // (and reads at most this much per call: more reads for a large
        // message, which is rare).
        .read_buffer_size(64)
        // Frames are fed in bursts and flushed once per burst (see `pump`),
        // so a small write buffer batches them into one write.
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1 << 20)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap))
}

/// Serves one socket from its upgrade to its end, inside the connection's
/// span: every line logged on its behalf (by this task or the store it
/// calls) carries the connection id, and the space and client id once
/// known.
///
/// The join is parsed before the returned future exists, so that future
/// holds only what the socket needs: a future keeps room for everything it
/// captured for its whole life, and every idle socket's task is that
/// future (BENCHMARKS.md, "Per idle socket").
pub fn serve(
    upgrade: OnUpgrade,
    settings: Settings,
    conn: ConnId,
    path: String,
    query: Option<String>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!(
        "connection",
        conn = %conn,
        space = field::Empty,
        client = field::Empty
    );
    let parsed = {
        let _in = span.enter();
        // The query is never logged: it may carry a token.
        let limits = &settings.limits;
        let parsed = JoinRequest::parse_limited(
            &path,
            query.as_deref(),
            &limits.auth,
            now(),
            limits.max_state_bytes,
        );
        match parsed {
            Ok(request) => {
                span.record("space", request.space.as_str());
                Ok(request)
            }
            Err(error) => {
                warn!(path = %path, error = %error, "join refused");
                crate::metrics::error(error.kind());
                let (tx, rx) = outbox(4);
                for output in refuse_join(conn, &error) {
                    let _ = tx.send(match output {
                        Output::Send { text, .. } => Outbound::Text(text),
                        Output::Close { code, .. } => Outbound::Close(code),
                    });
                }
                Err(rx)
            }
        }
    };
    async move {
        let mut io = match upgrade.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => {
                debug!(error = %error, "upgrade failed");
                return;
            }
        };
        let _open = crate::metrics::OpenConnection::open();
        // Borrowed, not moved out: a moved copy would be kept as well.
        let request = match parsed {
            Ok(ref request) => request,
            Err(refusal) => {
                // Boxed, as every path an idle socket is not on: the task
                // of every socket is as large as its largest state.
                Box::pin(async move {
                    let socket = WebSocketStream::from_raw_socket(
                        io,
                        Role::Server,
                        Some(settings.limits.socket),
                    );
                    let (sink, stream) = socket.await.split();
                    drain(sink, stream, refusal).await;
                })
                .await;
                return;
            }
        };
        let (tx, mut rx) = outbox(settings.limits.max_queued);
        settings.store.join(conn, request, tx).await;
        // A welcome already queued (the in-memory store answers at once)
        // is written before the library's buffers exist: its write buffer
        // keeps the room of the largest burst it ever wrote, and the
        // welcome, which lists the whole space, is nearly always that.
        let mut welcomed = false;
        if let Some(first) = rx.try_recv() {
            match first {
                Outbound::Text(text) => {
                    welcomed = true;
                    record_client(&text);
                    crate::metrics::sent();
                    if Box::pin(write_raw(&mut io, &text)).await.is_err() {
                        settings
                            .store
                            .closed(&request.space, conn, Disconnect::Lost)
                            .await;
                        return;
                    }
                }
                other => rx.unread(other),
            }
        }
        let socket =
            WebSocketStream::from_raw_socket(io, Role::Server, Some(settings.limits.socket)).await;
        let (sink, stream) = socket.split();
        let how = pump(sink, stream, rx, &settings, request, conn, welcomed).await;
        if let Some(how) = how {
            debug!(?how, "socket ended");
            settings.store.closed(&request.space, conn, how).await;
        }
    }
    .instrument(span)
}

/// Writes one text frame straight to the connection (a server's frames
/// are not masked), framed by the library's own frame type.
async fn write_raw(io: &mut TokioIo<Upgraded>, text: &str) -> std::io::Result<()> {
    let frame = WireFrame::message(text.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
    let mut bytes = Vec::with_capacity(frame.len());
    frame.format(&mut bytes).map_err(std::io::Error::other)?;
    io.write_all(&bytes).await?;
    io.flush().await
}

/// Puts the client id of a welcome on the span, if the span is on: the
/// parse reads the whole welcome (callgrind: 9% of a fan-out run's
/// instructions when it ran with the span off).
fn record_client(text: &str) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    if let Some(id) = welcomed_id(text) {
        span.record("client", id.as_str());
    }
}

/// The client id a welcome gives, so the span can carry it from then on;
/// `None` for any other message (a refused join's error).
fn welcomed_id(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Welcome {
        id: String,
        #[allow(dead_code)]
        clients: serde::de::IgnoredAny,
    }
    serde_json::from_str::<Welcome>(text).ok().map(|w| w.id)
}

type WebSocket = WebSocketStream<TokioIo<Upgraded>>;
type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;

/// Moves frames both ways until the socket ends. Returns how the client
/// ended it, or `None` when the server closed it.
async fn pump(
    mut sink: Sink,
    mut stream: Stream,
    mut inbox: Inbox,
    settings: &Settings,
    request: &JoinRequest,
    conn: ConnId,
    mut welcomed: bool,
) -> Option<Disconnect> {
    // The keepalive comes through the inbox (`Next::Keepalive`).
    let _keepalive = settings
        .keepalive
        .as_ref()
        .map(|k| k.register(conn, inbox.bell()));
    let space = &request.space;
    let started = tokio::time::Instant::now();
    let elapsed_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut bucket = TokenBucket::new(
        settings.limits.message_rate,
        settings.limits.message_burst,
        0,
    );
    let overflow = inbox.overflow();
    loop {
        tokio::select! {
            out = inbox.next() => match out {
                // A client that stopped reading: its queue overflowed. Dropped
                // without a close frame, as a lost connection (lease kept).
                Next::Overflowed => {
                    warn!("send queue full: connection dropped as lost");
                    return Some(Disconnect::Lost);
                }
                Next::Message(Outbound::Text(text)) => {
                    if !welcomed {
                        // The first message of a join is its welcome (or its refusal).
                        welcomed = true;
                        record_client(&text);
                    }
                    // Everything already queued goes out with one flush (one
                    // write to the kernel), up to a close.
                    let mut close_after = None;
                    let burst = Box::pin(async {
                        crate::metrics::sent();
                        sink.feed(Message::Text(text.as_ref().into())).await?;
                        while let Some(next) = inbox.try_recv() {
                            match next {
                                Outbound::Text(text) => {
                                    crate::metrics::sent();
                                    sink.feed(Message::Text(text.as_ref().into())).await?;
                                }
                                Outbound::Close(code) => {
                                    close_after = Some(code);
                                    break;
                                }
                            }
                        }
                        sink.flush().await
                    });
                    // A write blocked by a client that does not read must
                    // not outlive the overflow that gives up on it.
                    tokio::select! {
                        sent = burst => {
                            if sent.is_err() {
                                return Some(Disconnect::Lost);
                            }
                        }
                        () = overflow.wait() => {
                            warn!("send queue full: connection dropped as lost");
                            return Some(Disconnect::Lost);
                        }
                    }
                    if let Some(code) = close_after {
                        Box::pin(close(&mut sink, &mut stream, code)).await;
                        return None;
                    }
                }
                Next::Message(Outbound::Close(code)) => {
                    Box::pin(close(&mut sink, &mut stream, code)).await;
                    return None;
                }
                Next::Keepalive => {
                    if sink.send(Message::Text(KEEPALIVE_TEXT.into())).await.is_err() {
                        return Some(Disconnect::Lost);
                    }
                }
                Next::Closed => return Some(Disconnect::Lost),
            },
            message = stream.next() => {
                // Read into a small value first: the library's error is large,
                // and nothing large may be held across the awaits below.
                let incoming = Incoming::from(message);
                // Every frame from the client costs a token, control
                // frames included (the library answers pings itself).
                if incoming.costs_a_token() && !bucket.take(elapsed_ms()) {
                    settings.store.frame(space, conn, Frame::RateLimited).await;
                    continue;
                }
                let frame = match incoming {
                    Incoming::Text(text) => {
                        crate::metrics::received();
                        settings.store.frame(space, conn, Frame::Text(text.as_bytes())).await;
                        continue;
                    }
                    Incoming::Binary => {
                        crate::metrics::received();
                        Frame::Binary
                    }
                    Incoming::Control => continue,
                    Incoming::Close => {
                        // Completes the close handshake: the reply is queued
                        // by the library and goes out on this flush.
                        let _ = sink.close().await;
                        return Some(Disconnect::Clean);
                    }
                    Incoming::Unreadable(frame) => {
                        settings.store.frame(space, conn, frame).await;
                        return Box::pin(spent_reader(&mut sink, &mut inbox)).await;
                    }
                    Incoming::Gone => return Some(Disconnect::Lost),
                };
                settings.store.frame(space, conn, frame).await;
            }
        }
    }
}

/// What the socket read, in the few words the pump acts on.
enum Incoming {
    Text(tungstenite::Utf8Bytes),
    Binary,
    /// A ping or pong (the library answers pings itself).
    Control,
    Close,
    /// A frame the library could not read, which the protocol answers
    /// (too large, not UTF-8); the reader is spent.
    Unreadable(Frame<'static>),
    /// The connection is gone.
    Gone,
}

impl From<Option<Result<Message, tungstenite::Error>>> for Incoming {
    fn from(read: Option<Result<Message, tungstenite::Error>>) -> Self {
        match read {
            Some(Ok(Message::Text(text))) => Incoming::Text(text),
            Some(Ok(Message::Binary(_))) => Incoming::Binary,
            // (A frame is what a raw write sends; a read never yields one.)
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Control,
            Some(Ok(Message::Close(_))) => Incoming::Close,
            Some(Err(error)) => classify(&error).map_or(Incoming::Gone, Incoming::Unreadable),
            None => Incoming::Gone,
        }
    }
}

impl Incoming {
    fn costs_a_token(&self) -> bool {
        matches!(
            self,
            Incoming::Text(_) | Incoming::Binary | Incoming::Control
        )
    }
}

/// Tells a read error that the protocol answers (too large, not UTF-8) from
/// one that means the connection is gone.
fn classify(error: &tungstenite::Error) -> Option<Frame<'static>> {
    match error {
        tungstenite::Error::Capacity(_) => Some(Frame::Oversized),
        tungstenite::Error::Utf8(_) => Some(Frame::InvalidUtf8),
        _ => None,
    }
}

/// The reader is spent (a frame it could not read): writes what the store
/// queued (the error and the close), then lingers.
async fn spent_reader(sink: &mut Sink, inbox: &mut Inbox) -> Option<Disconnect> {
    while let Some(out) = inbox.recv().await {
        match out {
            Outbound::Text(text) => {
                crate::metrics::sent();
                let _ = sink.send(Message::Text(text.as_ref().into())).await;
            }
            Outbound::Close(code) => {
                let _ = sink.send(Message::Close(Some(close_frame(code)))).await;
                tokio::time::sleep(FAILED_READ_LINGER).await;
                return None;
            }
        }
    }
    Some(Disconnect::Lost)
}

/// Writes everything queued for a socket that is being refused.
async fn drain(mut sink: Sink, mut stream: Stream, mut inbox: Inbox) {
    let (sink, stream) = (&mut sink, &mut stream);
    while let Some(out) = inbox.recv().await {
        match out {
            Outbound::Text(text) => {
                crate::metrics::sent();
                if sink
                    .send(Message::Text(text.as_ref().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Outbound::Close(code) => return close(sink, stream, code).await,
        }
    }
}

/// Sends a close frame and waits a little for the client's reply.
async fn close(sink: &mut Sink, stream: &mut Stream, code: CloseCode) {
    if sink
        .send(Message::Close(Some(close_frame(code))))
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

fn close_frame(code: CloseCode) -> CloseFrame {
    crate::metrics::server_close(code.code());
    CloseFrame {
        code: code.code().into(),
        reason: code.reason().into(),
    }
}

#[cfg(test)]
mod sizes {
    use super::*;

    fn size<A, B, C, D, E, F>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle socket is one of these futures: a change that captures
    /// the socket twice, or holds a rare path's state inline, shows here.
    /// (Debug-build sizes; a release build's are at most these. 920 B
    /// with the keepalive through the outbox, 1,064 B before.)
    #[test]
    fn the_socket_future_stays_small() {
        let serve = size(serve);
        println!(
            "socket future: {serve} B, WebSocket {} B",
            std::mem::size_of::<WebSocket>()
        );
        assert!(serve <= SOCKET_FUTURE_BUDGET, "{serve} B");
    }

    const SOCKET_FUTURE_BUDGET: usize = 1024;
}
