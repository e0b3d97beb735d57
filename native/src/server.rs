//! The HTTP server: hyper's HTTP/1.1 connection builder (with upgrades)
//! over a tokio listener, with hyper's `header_read_timeout` as the
//! handshake deadline, so sockets that open TCP and never finish a request
//! head are dropped after `HANDSHAKE_TIMEOUT_MS`. `axum::serve` sets no
//! timer, and without one hyper waits for ever; hyper-util's `auto`
//! builder first sniffs the protocol with no timer at all (hyperium/hyper
//! issues 3756 and 3962), so a silent socket would never reach hyper's
//! deadline: hyper's own `http1::Builder` starts it at accept.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// The kernel send buffer of every accepted socket. Fixed (no
/// autotuning, which grows it to megabytes): presence messages are small,
/// and a client that stops reading must fill its bounded queue soon, not
/// after megabytes of server memory.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets each HTTP connection finish the request it is on, and
/// returns once they have. Upgraded sockets are no longer HTTP
/// connections: their tasks are the caller's to wait for.
pub async fn serve(
    mut listener: TcpListener,
    router: Router,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Counts from the moment hyper waits for a request head: at accept,
        // and again between requests on a kept-alive connection.
        .header_read_timeout(handshake_timeout);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _addr) = tokio::select! {
            // axum's accept retries (and backs off on) failed accepts.
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        tune(&stream);
        let conn = builder
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            )
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                // A handshake timeout, a reset, a malformed request.
                debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    async fn started(timeout: Duration) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let router = Router::new().fallback(|| async { "hello" });
        let done = stop.clone();
        tokio::spawn(async move { serve(listener, router, timeout, done.cancelled_owned()).await });
        (addr, stop)
    }

    #[tokio::test]
    async fn a_silent_or_unfinished_handshake_is_dropped_at_the_deadline() {
        let (addr, stop) = started(Duration::from_millis(200)).await;
        for partial in [&b""[..], b"GET / HTTP/1.1\r\nHost: x\r\n"] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(partial).await.unwrap();
            let began = Instant::now();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("dropped")
                .unwrap_or(0);
            assert_eq!(n, 0, "nothing written: {:?}", &buf[..n]);
            assert!(began.elapsed() >= Duration::from_millis(150));
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn a_request_sent_in_pieces_within_the_deadline_is_served() {
        let (addr, stop) = started(Duration::from_millis(500)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        client
            .write_all(b"st: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hello"), "{text}");
        stop.cancel();
    }
}
