//! Issue 5, hostile clients: the server stays up, keeps its memory bounded
//! and keeps serving a well-behaved observer in the same space, with no
//! lost or extra events, while bad joins, garbage frames, floods, clients
//! that never read and half-open handshakes arrive.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::future::join_all;
use futures_util::StreamExt;
use longhouse_e2e::client::{mint_token, unix_now, Incoming};
use longhouse_e2e::{Client, Ctx, Deployment, Member, ServerLimits, TargetOptions, View};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::trust::{token, SECRET};

type RawWs = WebSocketStream<tokio::net::TcpStream>;

/// A joined client that stops reading after its welcome (tiny receive
/// buffer, so the server's queue is what fills).
pub struct NonReader {
    pub member: Member,
    ws: RawWs,
}

/// Joins `space` as `identity` on a socket with a 4 KiB receive buffer,
/// reads the welcome, and never reads again until asked.
pub async fn join_non_reader(cx: &Ctx, space: &str, identity: &str) -> Result<NonReader> {
    let base = cx.dep().ws_base();
    let url = longhouse_e2e::client::join_url(&base, space, Some(identity), None);
    join_non_reader_url(&url).await
}

async fn join_non_reader_url(url: &str) -> Result<NonReader> {
    let authority = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .ok_or_else(|| anyhow!("bad url {url}"))?;
    let addr: std::net::SocketAddr = authority.parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await?;
    let welcome = loop {
        let msg = tokio::time::timeout(longhouse_e2e::RECV_TIMEOUT, ws.next())
            .await
            .context("no welcome")?
            .ok_or_else(|| anyhow!("ended before the welcome"))??;
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v.get("id").is_some() {
                break v;
            }
        }
    };
    let id = welcome["id"].as_str().unwrap_or_default().to_string();
    let me = welcome["clients"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id.as_str()))
        .ok_or_else(|| anyhow!("welcome without self"))?;
    Ok(NonReader {
        member: Member::from_json(me)?,
        ws,
    })
}

impl NonReader {
    /// Reads everything the server still delivers, to the end; returns how
    /// it ended (a close frame, or the connection ending without one).
    pub async fn drain_until_end(&mut self) -> Result<Incoming> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => bail!("{}: still connected after draining", self.member),
                Ok(None) => return Ok(Incoming::Ended("ended".into())),
                Ok(Some(Err(e))) => return Ok(Incoming::Ended(e.to_string())),
                Ok(Some(Ok(Message::Close(f)))) => {
                    return Ok(Incoming::Close(
                        f.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// How many "send queue full" drops the deployment's servers logged.
pub fn overflow_drops(dep: &Deployment) -> usize {
    dep.instances()
        .iter()
        .map(|p| p.log().matches("send queue full").count())
        .sum()
}

/// Resident memory of every server process of `dep`, KiB.
fn rss_kib(dep: &Deployment) -> Result<u64> {
    let mut total = 0;
    for p in dep.instances() {
        let status = std::fs::read_to_string(format!("/proc/{}/status", p.pid()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .ok_or_else(|| anyhow!("no VmRSS"))?;
        total += line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("bad VmRSS line {line}"))?;
    }
    Ok(total)
}

/// The observer: welcome + events, checked by [`View`] (no doubled join,
/// no leave of someone never seen).
struct Observer {
    client: Client,
    view: View,
}

impl Observer {
    /// Applies events until `probe` is seen joining: everything the server
    /// sent before that join has then been applied.
    async fn sync_on(&mut self, probe: &Member) -> Result<()> {
        loop {
            let (v, _) = self
                .client
                .recv_json_timed(Duration::from_secs(10))
                .await
                .context("observer waiting for the probe's join")?;
            let Some(kind) = v.get("event").and_then(|e| e.as_str()) else {
                continue; // {"pong":true} and the like
            };
            let member = Member::from_json(&v["client"])?;
            self.view.apply(kind, &member)?;
            if kind == "remote join" && &member == probe {
                return Ok(());
            }
        }
    }

    /// Joins a probe and compares: the probe's welcome is the true roster;
    /// the observer's view must equal it (minus the probe). Returns the
    /// number of differences (lost or extra events).
    async fn differences(&mut self, dep: &Deployment, space: &str) -> Result<usize> {
        let url = format!(
            "{}/{space}?token={}",
            dep.ws_base(),
            enc(&token(&longhouse_e2e::unique("probe")))
        );
        let mut probe = Client::connect_url(&url).await?;
        probe.expect_welcome().await?;
        self.sync_on(&probe.member()).await?;
        let truth: Vec<Member> = probe
            .roster
            .iter()
            .filter(|m| m.id != probe.id)
            .cloned()
            .collect();
        let mut seen = self.view.members();
        seen.retain(|m| m.id != probe.id);
        let lost = truth.iter().filter(|m| !seen.contains(m)).count();
        let extra = seen.iter().filter(|m| !truth.contains(m)).count();
        probe.close().await?;
        // Apply the probe's leave so the view stays exact.
        let m = self.client.expect_event("remote leave").await?;
        self.view.apply("remote leave", &m)?;
        Ok(lost + extra)
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const HOSTILE: TargetOptions =
    TargetOptions::DEFAULT
        .with_ttl_ms(60_000)
        .with_limits(ServerLimits {
            auth_secret: Some(SECRET),
            message_rate: Some((20, 40)),
            handshake_timeout_ms: Some(1_000),
            max_queued_messages: Some(128),
            ..ServerLimits::NONE
        });

/// The whole hostile suite against one dedicated deployment, reporting the
/// server's memory before and after and the observer's lost events.
pub async fn server_survives_hostile_clients_and_observer_loses_nothing(cx: &Ctx) -> Result<()> {
    let dep = cx.start_own(HOSTILE).await?;
    let space = longhouse_e2e::unique("hostile");
    let base = dep.ws_base_of(0);
    let url = |q: &str| format!("{base}/{space}?{q}");
    let mut client =
        Client::connect_url(&url(&format!("token={}", enc(&token("observer"))))).await?;
    client.expect_welcome().await?;
    let view = View::from_roster(&client.roster)?;
    let mut observer = Observer { client, view };
    // Warm up: one round of everything, so allocator pools exist "before".
    let rss_before = rss_kib(&dep)?;
    let started = Instant::now();

    // 1. Thousands of bad joins: bad tokens, bad ids, oversized identity.
    let now = unix_now();
    let good = token("someone");
    let bad_queries: Vec<String> = vec![
        "token=garbage".into(),
        format!("token={}", enc(&format!("{good}x"))),
        format!(
            "token={}",
            mint_token(&format!(r#"{{"sub":"x","exp":{}}}"#, now - 999), SECRET)
        ),
        format!(
            "token={}",
            mint_token(r#"{"sub":"x","exp":99999999999}"#, "wrong")
        ),
        format!("token={}&id=bad.id", enc(&good)),
        format!("token={}&id={}", enc(&good), "x".repeat(65)),
        format!("identity={}&token={}", "i".repeat(300), enc(&good)),
        format!("identity={}", "i".repeat(6000)),
        format!("token={}", "A".repeat(5000)),
        "identity=nobody".into(),
    ];
    let mut refused = 0usize;
    for batch in 0..40 {
        let attempts = (0..50).map(|i| {
            let q = bad_queries[(batch * 50 + i) % bad_queries.len()].clone();
            let u = url(&q);
            async move {
                match Client::connect_url(&u).await {
                    Ok(mut c) => c.recv().await.map(
                        |r| !matches!(r.what, Incoming::Text(ref t) if t.starts_with("{\"id\"")),
                    ),
                    // Oversized request lines are refused at the HTTP level.
                    Err(_) => Ok(true),
                }
            }
        });
        for r in join_all(attempts).await {
            if r? {
                refused += 1;
            }
        }
    }
    ensure!(
        refused == 2000,
        "only {refused} of 2000 bad joins were refused"
    );
    observer.client.ping().await?;

    // 2. Garbage from joined clients: text, invalid UTF-8, binary,
    // oversized and fragmented frames, floods of pings (data and control).
    let garbage = (0..40).map(|i| {
        let u = url(&format!("token={}", enc(&token(&format!("garbage{i}")))));
        async move {
            let mut c = Client::connect_url(&u).await?;
            c.expect_welcome().await?;
            match i % 6 {
                0 => {
                    for _ in 0..10 {
                        c.send_text("not json {").await?;
                    }
                }
                1 => c.send_raw_text(b"\xff\xfe\xfd").await?,
                2 => {
                    for _ in 0..10 {
                        c.send_binary(&[0u8; 512]).await?;
                    }
                }
                3 => c
                    .send_text(&"x".repeat(200_000))
                    .await
                    .map(|_| ())
                    .or(Ok::<_, anyhow::Error>(()))?,
                4 => {
                    let part = vec![b'a'; 1000];
                    let parts: Vec<&[u8]> = (0..20).map(|_| part.as_slice()).collect();
                    c.send_fragmented_text(&parts).await?;
                }
                _ => {
                    for _ in 0..200 {
                        if c.send(Message::Ping(vec![1, 2, 3].into())).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Each either gets closed by the server or closes itself.
            let _ = c.close().await;
            anyhow::Ok(())
        }
    });
    for r in join_all(garbage).await {
        r?;
    }
    observer.client.ping().await?;

    // 3. Clients that join and never read while events pile up for them.
    let mut sleepers = Vec::new();
    for i in 0..5 {
        let u = url(&format!("token={}", enc(&token(&format!("sleeper{i}")))));
        sleepers.push(join_non_reader_url(&u).await?);
    }
    let pad = "€".repeat(240);
    let mut rounds = 0;
    while overflow_drops(&dep) < sleepers.len() {
        ensure!(rounds < 100, "sleepers never dropped");
        rounds += 1;
        let churn = (0..20).map(|i| {
            let u = url(&format!(
                "token={}",
                enc(&token(&format!("{rounds}-{i}-{pad}")))
            ));
            async move {
                let mut c = Client::connect_url(&u).await?;
                c.expect_welcome().await?;
                c.close().await?;
                anyhow::Ok(())
            }
        });
        for r in join_all(churn).await {
            r?;
        }
        observer.client.ping().await?;
    }
    for s in &mut sleepers {
        if let Incoming::Close(f) = s.drain_until_end().await? {
            bail!("a non-reader got a close frame {f:?}, expected a lost connection");
        }
    }

    // 4. Many sockets that open TCP and never finish the upgrade.
    let authority = base.trim_start_matches("ws://").to_string();
    let half_open = (0..500).map(|i| {
        let authority = authority.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&authority).await?;
            if i % 2 == 0 {
                s.write_all(b"GET /x HTTP/1.1\r\nUpgrade: websocket\r\n")
                    .await?;
            }
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
                .await
                .context("a half-open handshake was never dropped")?
                .unwrap_or(0);
            ensure!(n == 0, "half-open handshake got {n} bytes");
            anyhow::Ok(())
        }
    });
    // A hundred connecting at a time: the point is that the server drops
    // what never finishes, not how fast the kernel accepts a SYN flood.
    let results: Vec<Result<()>> = futures_util::stream::iter(half_open)
        .buffer_unordered(100)
        .collect()
        .await;
    for r in results {
        r?;
    }

    // The observer: nothing lost, nothing extra; the server still serves.
    observer.client.ping().await?;
    let differences = observer.differences(&dep, &space).await?;
    let health = longhouse_e2e::http::get(&dep.http_base(), "/health").await?;
    ensure!(health.status == 200, "health {}", health.status);
    let rss_after = rss_kib(&dep)?;
    let report = format!(
        "hostile suite [{}]: server RSS before {rss_before} KiB, after {rss_after} KiB; \
         bad joins refused {refused}; garbage clients 40; non-readers dropped {} after {rounds} \
         churn rounds; half-open handshakes dropped 500; observer events lost or extra: \
         {differences}; took {:?}",
        cx.target().name(),
        overflow_drops(&dep),
        started.elapsed()
    );
    println!("{report}");
    let _ = std::fs::create_dir_all(longhouse_e2e::target::log_dir());
    let _ = std::fs::write(
        longhouse_e2e::target::log_dir().join(format!("hostile-report-{}.txt", cx.target().name())),
        format!("{report}\n"),
    );
    ensure!(differences == 0, "{report}");
    ensure!(
        rss_after < rss_before + 128 * 1024,
        "server memory grew without bound: {report}"
    );
    Ok(())
}
