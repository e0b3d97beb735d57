//! `longhouse --health-check`: asks a running server for `GET /health` and
//! exits 0 on `200`, 1 otherwise. For container health checks: the image
//! is `FROM scratch`, with no curl or shell, so the binary asks itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::Config;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Where the server of `config` answers from inside its own host or
/// container: its address, or loopback when it listens on every address.
fn target(config: &Config) -> SocketAddr {
    let host = match config.host {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(host, config.port)
}

/// `Ok` when the server answered `GET /health` with 200, else why not.
pub async fn check(config: &Config) -> Result<(), String> {
    let addr = target(config);
    let attempt = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = Request::get("/health")
            .header(header::HOST, addr.to_string())
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        match response.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("GET /health answered {status}")),
        }
    };
    match tokio::time::timeout(TIMEOUT, attempt).await {
        Ok(result) => result.map_err(|why| format!("{addr}: {why}")),
        Err(_) => Err(format!("{addr}: no answer within {TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["longhouse"];
        all.extend_from_slice(args);
        Config::from_args(all).unwrap()
    }

    #[test]
    fn an_unspecified_host_is_asked_on_loopback() {
        assert_eq!(target(&config(&[])).to_string(), "127.0.0.1:5003");
        assert_eq!(
            target(&config(&["--host", "::", "--port", "80"])).to_string(),
            "[::1]:80"
        );
        assert_eq!(
            target(&config(&["--host", "10.1.2.3"])).to_string(),
            "10.1.2.3:5003"
        );
    }

    #[tokio::test]
    async fn answers_ok_only_for_a_200() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let c = config(&["--host", "127.0.0.1", "--port", &port]);
        let router = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        assert_eq!(check(&c).await, Ok(()));
        server.abort();
        let _ = server.await;
        let down = check(&c).await.unwrap_err();
        assert!(down.contains(&port), "{down}");
    }
}
