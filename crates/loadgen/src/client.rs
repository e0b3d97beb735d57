//! One simulated client: connects from one of the loopback source addresses,
//! records its welcome and every presence event with the instant it
//! arrived, pings if asked, and closes when told.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How a `remote join` starts, up to the client id.
const JOIN_PREFIX: &str = r#"{"event":"remote join","client":{"id":""#;
/// How a `remote leave` starts, up to the client id.
const LEAVE_PREFIX: &str = r#"{"event":"remote leave","client":{"id":""#;

/// How long a client waits for the server's reply to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The server and how sockets are spread over source addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub server: SocketAddr,
    /// Sockets use 127.0.0.1 to 127.0.0.N as their source, N this.
    pub sources: u8,
}

impl Target {
    fn source(&self, n: u64) -> IpAddr {
        let k = (n % u64::from(self.sources.max(1))) as u8;
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + k))
    }
}

/// A presence event as a client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `remote join`.
    Join,
    /// `remote leave`.
    Leave,
}

/// One received presence event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Join or leave.
    pub kind: Kind,
    /// The subject's client id.
    pub id: String,
    /// When it arrived here.
    pub at: Instant,
}

/// How a client's socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// We closed it (cleanly or by dropping it) when told to.
    Requested,
    /// The server closed it with this code.
    ServerClosed(u16),
    /// The connection broke without a close handshake.
    Dropped(String),
    /// It never connected.
    ConnectFailed(String),
}

/// Everything one client saw.
#[derive(Debug, Default)]
pub struct Log {
    /// When the TCP connect began.
    pub started: Option<Instant>,
    /// When the welcome arrived.
    pub welcomed: Option<Instant>,
    /// The id the welcome gave.
    pub id: String,
    /// The welcome's roster (ids, itself included).
    pub roster: Vec<String>,
    /// Presence events in arrival order.
    pub events: Vec<Event>,
    /// `{"event":"expired"}` messages.
    pub expired: u32,
    /// How the socket ended, once it has.
    pub end: Option<End>,
}

/// Counters shared by every client of a run, for progress and quiet checks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Welcomes received.
    pub welcomes: AtomicU64,
    /// `remote join` events received.
    pub joins: AtomicU64,
    /// `remote leave` events received.
    pub leaves: AtomicU64,
    /// Sockets that ended without being asked to (server close or drop).
    pub dropped: AtomicU64,
    /// Sockets that failed to connect or to complete the handshake.
    pub failed: AtomicU64,
}

impl Counters {
    /// Loads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

enum Cmd {
    Close,
    Abort,
}

/// What a client connects as.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Space name (plain `[a-z0-9-]`, so it needs no encoding).
    pub space: String,
    /// Identity (plain too).
    pub identity: String,
    /// Send `{"action":"ping"}` this often, if set.
    pub ping: Option<Duration>,
}

impl Spec {
    /// `count` clients `member0`, `member1`… of `space` that do not ping.
    pub fn members(space: &str, count: usize) -> Vec<Spec> {
        (0..count)
            .map(|i| Spec {
                space: space.to_owned(),
                identity: format!("member{i}"),
                ping: None,
            })
            .collect()
    }
}

/// A running client.
pub struct Client {
    /// Its space.
    pub space: String,
    /// What it saw so far.
    pub log: Arc<Mutex<Log>>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Starts client number `n`; `welcomed` fires with `true` on its welcome,
    /// or `false` if the socket ends first.
    pub fn spawn(
        target: &Target,
        n: u64,
        spec: Spec,
        counters: Arc<Counters>,
        welcomed: Option<oneshot::Sender<bool>>,
    ) -> Client {
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        let space = spec.space.clone();
        let task = tokio::spawn(run(
            target.clone(),
            n,
            spec,
            log.clone(),
            counters,
            rx,
            welcomed,
        ));
        Client {
            space,
            log,
            cmd: tx,
            task: Mutex::new(Some(task)),
        }
    }

    /// Asks for a clean close (close frame, then the server's reply).
    pub fn close(&self) {
        let _ = self.cmd.send(Cmd::Close);
    }

    /// Asks for the socket to be dropped without a close frame.
    pub fn abort(&self) {
        let _ = self.cmd.send(Cmd::Abort);
    }

    /// Waits for the client's task to end.
    pub async fn wait(&self) {
        let task = self.task.lock().expect("task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Closes cleanly and waits for the end.
    pub async fn close_and_wait(&self) {
        self.close();
        self.wait().await;
    }

    /// The welcome's id, empty before the welcome.
    pub fn id(&self) -> String {
        self.log.lock().expect("log lock").id.clone()
    }

    /// Welcomed and not ended.
    pub fn is_live(&self) -> bool {
        let log = self.log.lock().expect("log lock");
        log.welcomed.is_some() && log.end.is_none()
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn connect(target: &Target, n: u64, spec: &Spec) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    // Let connect() pick the port per destination, so each source address
    // serves a whole ephemeral range.
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    socket
        .bind(SocketAddr::new(target.source(n), 0))
        .map_err(|e| format!("bind: {e}"))?;
    let stream = socket
        .connect(target.server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let url = format!(
        "ws://{}/{}?identity={}",
        target.server, spec.space, spec.identity
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

fn end(log: &Mutex<Log>, counters: &Counters, how: End) {
    match &how {
        End::Requested => {}
        End::ConnectFailed(_) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        End::ServerClosed(_) | End::Dropped(_) => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut log = log.lock().expect("log lock");
    if log.end.is_none() {
        log.end = Some(how);
    }
}

async fn run(
    target: Target,
    n: u64,
    spec: Spec,
    log: Arc<Mutex<Log>>,
    counters: Arc<Counters>,
    mut commands: mpsc::UnboundedReceiver<Cmd>,
    mut welcomed: Option<oneshot::Sender<bool>>,
) {
    log.lock().expect("log lock").started = Some(Instant::now());
    let ws = match connect(&target, n, &spec).await {
        Ok(ws) => ws,
        Err(e) => {
            end(&log, &counters, End::ConnectFailed(e));
            if let Some(w) = welcomed.take() {
                let _ = w.send(false);
            }
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let mut ping = spec.ping.map(|period| {
        // Spread the first pings over one period.
        let offset = period.mul_f64((n % 1000) as f64 / 1000.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => record(text.as_str(), &log, &counters, &mut welcomed),
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    end(&log, &counters, End::ServerClosed(code));
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    end(&log, &counters, End::Dropped(e.to_string()));
                    break;
                }
                None => {
                    end(&log, &counters, End::Dropped("end of stream".into()));
                    break;
                }
            },
            command = commands.recv() => match command {
                Some(Cmd::Close) => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(Ok(m)) = stream.next().await {
                            match m {
                                Message::Text(text) => record(text.as_str(), &log, &counters, &mut welcomed),
                                Message::Close(_) => break,
                                _ => {}
                            }
                        }
                    })
                    .await;
                    end(&log, &counters, End::Requested);
                    break;
                }
                Some(Cmd::Abort) | None => {
                    end(&log, &counters, End::Requested);
                    break;
                }
            },
            () = tick(&mut ping) => {
                if sink.send(Message::Text(r#"{"action":"ping"}"#.into())).await.is_err() {
                    end(&log, &counters, End::Dropped("ping failed".into()));
                    break;
                }
            }
        }
    }
    if let Some(w) = welcomed.take() {
        let _ = w.send(false);
    }
}

async fn tick(t: &mut Option<tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn record(
    text: &str,
    log: &Mutex<Log>,
    counters: &Counters,
    welcomed: &mut Option<oneshot::Sender<bool>>,
) {
    let at = Instant::now();
    // Fast path for the events, which are most of the traffic: the server
    // writes them in this exact shape (section 3).
    for (prefix, kind, counter) in [
        (JOIN_PREFIX, Kind::Join, &counters.joins),
        (LEAVE_PREFIX, Kind::Leave, &counters.leaves),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if let Some(end) = rest.find('"') {
                log.lock().expect("log lock").events.push(Event {
                    kind,
                    id: rest[..end].to_owned(),
                    at,
                });
                counter.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let client_id = |v: &serde_json::Value| {
        v.get("client")
            .and_then(|c| c.get("id"))
            .and_then(|i| i.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut log = log.lock().expect("log lock");
    if let (Some(id), Some(clients)) = (
        value.get("id").and_then(|v| v.as_str()),
        value.get("clients").and_then(|v| v.as_array()),
    ) {
        log.welcomed = Some(at);
        log.id = id.to_owned();
        log.roster = clients
            .iter()
            .filter_map(|c| c.get("id").and_then(|i| i.as_str()).map(str::to_owned))
            .collect();
        counters.welcomes.fetch_add(1, Ordering::Relaxed);
        drop(log);
        if let Some(w) = welcomed.take() {
            let _ = w.send(true);
        }
        return;
    }
    match value.get("event").and_then(|v| v.as_str()) {
        Some("remote join") => {
            log.events.push(Event {
                kind: Kind::Join,
                id: client_id(&value),
                at,
            });
            counters.joins.fetch_add(1, Ordering::Relaxed);
        }
        Some("remote leave") => {
            log.events.push(Event {
                kind: Kind::Leave,
                id: client_id(&value),
                at,
            });
            counters.leaves.fetch_add(1, Ordering::Relaxed);
        }
        Some("expired") => log.expired += 1,
        _ => {}
    }
}
