//! The webhook receiver: a real HTTP server on loopback that the harness
//! starts for a case and stops when it is dropped. It records every POST
//! (when, its `Longhouse-Signature`, its body, what it answered), checks
//! each signature with its own HMAC-SHA256 (not the server's code), can be
//! told to fail the next N requests or leave them unanswered, and can go
//! down and come back on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One POST as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub signature: Option<String>,
    pub body: String,
    /// What the receiver answered (0: nothing, it was left hanging).
    pub status: u16,
    /// The signature is `t=<secs>,v1=<hex>` over `t.body` with the secret.
    pub signature_ok: bool,
    /// The signature's `t`, in unix seconds.
    pub signed_at: Option<u64>,
}

impl Request {
    /// The body's `events`.
    pub fn events(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("events").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// The ids of its events, in order.
    pub fn ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    /// Requests still to answer with 500.
    fail_next: Mutex<usize>,
    /// Requests still to leave unanswered (after the failing ones).
    hang_next: Mutex<usize>,
    arrived: Notify,
}

/// A running receiver; dropping it stops it.
pub struct Receiver {
    addr: SocketAddr,
    secret: String,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// Starts on a free loopback port; signatures are checked with `secret`.
    pub async fn start(secret: &str) -> Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let r = Receiver {
            addr,
            secret: secret.to_owned(),
            shared: Arc::new(Shared::default()),
            server: Mutex::new(None),
        };
        r.serve(listener);
        Ok(r)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state((self.shared.clone(), self.secret.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// The URL to give the server as `WEBHOOK_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: usize) {
        *self.shared.fail_next.lock().unwrap() = n;
    }

    /// The next `n` requests (after those [`Receiver::fail_next`] fails)
    /// get no answer at all: the receiver holds them until the sender gives
    /// up and closes the connection.
    pub fn hang_next(&self, n: usize) {
        *self.shared.hang_next.lock().unwrap() = n;
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    pub fn down(&self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).context("rebinding the receiver's port"),
            }
        };
        self.serve(listener);
        Ok(())
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The events of every request answered 2xx, in arrival order, once
    /// each (by `id`, as a receiver dedupes).
    pub fn delivered(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(Request::events)
            .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// Waits until `done` holds for the requests so far, or fails after
    /// `timeout` saying what arrived.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Request]) -> bool,
    ) -> Result<Vec<Request>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let requests = self.requests();
            if done(&requests) {
                return Ok(requests);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let bodies: Vec<String> = requests
                    .iter()
                    .map(|r| format!("{} {}", r.status, r.body))
                    .collect();
                bail!("webhook receiver: no {what} within {timeout:?}; got {bodies:#?}");
            }
        }
    }

    /// Waits until `n` distinct events have been delivered; returns them.
    pub async fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Result<Vec<Value>> {
        let what = format!("{n} delivered events");
        let secret_ok = |rs: &[Request]| rs.iter().all(|r| r.signature_ok);
        self.wait_until(timeout, &what, |_| self.delivered().len() >= n)
            .await?;
        if !secret_ok(&self.requests()) {
            bail!(
                "a webhook request was not signed correctly: {:#?}",
                self.requests()
            );
        }
        Ok(self.delivered())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

async fn hook(
    State((shared, secret)): State<(Arc<Shared>, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let signature = headers
        .get("longhouse-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = String::from_utf8_lossy(&body).into_owned();
    let (signature_ok, signed_at) = match &signature {
        Some(s) => verify(&secret, s, &body),
        None => (false, None),
    };
    let status = {
        let mut fail = shared.fail_next.lock().unwrap();
        let mut hang = shared.hang_next.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        } else if *hang > 0 {
            *hang -= 1;
            None
        } else {
            Some(StatusCode::NO_CONTENT)
        }
    };
    shared.requests.lock().unwrap().push(Request {
        at,
        signature,
        body,
        status: status.map_or(0, |s| s.as_u16()),
        signature_ok,
        signed_at,
    });
    shared.arrived.notify_waiters();
    match status {
        Some(status) => status,
        // Dropped, unanswered, when the sender closes the connection.
        None => std::future::pending().await,
    }
}

/// Checks `t=<secs>,v1=<hex>` the way a receiver's backend would.
fn verify(secret: &str, header: &str, body: &str) -> (bool, Option<u64>) {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return (false, None);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    (mac.verify_slice(&v1).is_ok(), Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_known_signature_and_refuses_others() {
        // Computed with Python: hmac.new(b"whsec_test",
        // b'1700000000.{"events":[]}', sha256).hexdigest()
        let good =
            "t=1700000000,v1=4f6f9b7a41398ad124e52a1320534f978e522923f3f2b2724e31d7a9dbf78a7f";
        assert_eq!(
            verify("whsec_test", good, r#"{"events":[]}"#),
            (true, Some(1_700_000_000))
        );
        assert!(!verify("other", good, r#"{"events":[]}"#).0);
        assert!(!verify("whsec_test", good, r#"{"events":[1]}"#).0);
        assert!(!verify("whsec_test", "t=1700000000", "").0);
    }
}
