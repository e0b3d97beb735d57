//! The listening socket, with a deadline on the HTTP handshake: a
//! connection that has not sent a complete request head within
//! `HANDSHAKE_TIMEOUT_MS` is dropped, so sockets that open TCP and never
//! finish the upgrade cannot pile up (hyper itself waits for ever).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tracing::debug;

/// The kernel send buffer of every accepted socket. Fixed (no
/// autotuning, which grows it to megabytes): presence messages are small,
/// and a client that stops reading must fill its bounded queue soon, not
/// after megabytes of server memory.
pub const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// A [`TcpListener`] whose connections carry the handshake deadline.
pub struct Guarded {
    inner: TcpListener,
    timeout: Duration,
}

impl Guarded {
    /// Wraps `inner`; each accepted connection has `timeout` to send its
    /// first request head.
    pub fn new(inner: TcpListener, timeout: Duration) -> Self {
        Guarded { inner, timeout }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);
        (GuardedStream::new(stream, self.timeout), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection that fails its reads once the deadline passes before the
/// end of the first request head (`\r\n\r\n`) was read; after that it is a
/// plain stream.
pub struct GuardedStream {
    inner: TcpStream,
    deadline: Option<Pin<Box<Sleep>>>,
    /// How much of `\r\n\r\n` the bytes read so far end with.
    matched: usize,
}

impl GuardedStream {
    fn new(inner: TcpStream, timeout: Duration) -> Self {
        GuardedStream {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep_until(Instant::now() + timeout))),
            matched: 0,
        }
    }

    /// Advances the head-end matcher over `bytes`; true once it is found.
    fn scan(&mut self, bytes: &[u8]) -> bool {
        const END: &[u8] = b"\r\n\r\n";
        for &b in bytes {
            self.matched = if b == END[self.matched] {
                self.matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.matched == END.len() {
                return true;
            }
        }
        false
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.deadline.is_none() {
            return polled;
        }
        if let Poll::Ready(Ok(())) = &polled {
            let new = buf.filled()[before..].to_vec();
            if this.scan(&new) {
                this.deadline = None;
                return polled;
            }
            if new.is_empty() {
                return polled; // end of stream
            }
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                debug!("handshake timed out: dropping the connection");
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "handshake not completed in time",
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn head_end_is_found_across_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut g = GuardedStream::new(server, Duration::from_secs(1));
        assert!(!g.scan(b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!g.scan(b"\n\r"));
        assert!(g.scan(b"\n"));
        g.matched = 0;
        assert!(!g.scan(b"\r\r\n\r"));
        assert!(g.scan(b"\n"));
    }

    #[tokio::test]
    async fn a_silent_connection_is_dropped_at_the_deadline() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut g = GuardedStream::new(server, Duration::from_millis(100));
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
