//! One simulated client: connects from one of the loopback source addresses,
//! records its welcome and every presence event with the instant it
//! arrived, pings if asked, sends a storm of state updates if told, and
//! closes when told. What goes on the wire is the codec's (`wire`); what is
//! recorded is the same for every protocol.

use std::collections::HashMap;
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

use crate::common::micros;
use crate::cursor;
use crate::wire::{Codec, Protocol, Seen};

/// How long a client waits for the server's reply to its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The server and how sockets are spread over source addresses.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub server: SocketAddr,
    /// Sockets use 127.0.0.1 to 127.0.0.N as their source, N this.
    pub sources: u8,
    /// What the server speaks.
    pub protocol: Protocol,
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
    /// What this client knows of everyone present but itself, by id.
    pub views: HashMap<String, View>,
    /// Every storm state received (`remote update`s carrying a
    /// [`cursor::state`]), in arrival order.
    pub deliveries: Vec<Delivery>,
    /// Updates about someone this client had not seen join.
    pub before_join: u64,
    /// Storm states older than one already received from the same sender.
    pub out_of_order: u64,
    /// The storm's last sequence number: receiving it from a sender counts
    /// once towards [`Counters::finals`].
    pub final_seq: Option<u32>,
    /// When each of this client's own states was sent, by sequence number
    /// (µs on the [`micros`] clock; 0 is the connect, which carries the
    /// state it joins with).
    pub sent_at: Vec<u64>,
    /// This client's own latest state, as sent.
    pub own_state: Option<String>,
    /// Errors the server sent (the first few).
    pub errors: Vec<String>,
}

/// One client's view of another.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Its state as last received (JSON text), if it has one.
    pub state: Option<String>,
    /// The storm sequence number of that state, if it is a storm state.
    pub seq: Option<u32>,
}

/// One storm state received.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The sender's number.
    pub n: u32,
    /// Its sequence number.
    pub seq: u32,
    /// When it arrived, µs on the [`micros`] clock.
    pub at: u64,
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
    /// State updates received.
    pub updates: AtomicU64,
    /// Storm states sent.
    pub sent: AtomicU64,
    /// Final storm states received (see [`Log::final_seq`]).
    pub finals: AtomicU64,
    /// Error messages received.
    pub errors: AtomicU64,
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
    Storm(Storm),
}

/// A storm of state updates: `count` of them, one every `period`, the first
/// at `start`; each a [`cursor::state`] of sender number `n`.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    /// When the first update is sent.
    pub start: tokio::time::Instant,
    /// Time between updates.
    pub period: Duration,
    /// Updates to send.
    pub count: u32,
    /// The sender's number, written in each state.
    pub n: u64,
}

/// What a client connects as.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Space name (plain `[a-z0-9-]`, so it needs no encoding).
    pub space: String,
    /// Identity (plain too).
    pub identity: String,
    /// Send the protocol's ping this often, if set.
    pub ping: Option<Duration>,
    /// The state to join with (JSON object text), if any.
    pub state: Option<String>,
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

    /// Starts a storm of state updates.
    pub fn storm(&self, storm: Storm) {
        let _ = self.cmd.send(Cmd::Storm(storm));
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

async fn connect(target: &Target, n: u64, path: &str) -> Result<Ws, String> {
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
    let url = format!("ws://{}{path}", target.server);
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
    let mut codec = Codec::new(target.protocol, n, spec.state.clone());
    {
        let mut log = log.lock().expect("log lock");
        log.started = Some(Instant::now());
        log.sent_at.push(micros());
        log.own_state = spec.state.clone();
    }
    let path = codec.path(&spec.space, &spec.identity);
    let ws = match connect(&target, n, &path).await {
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
    let mut failed = false;
    for frame in codec.opening() {
        failed |= sink.send(frame).await.is_err();
    }
    if failed {
        end(&log, &counters, End::Dropped("opening failed".into()));
    }
    let ping_frame = codec.ping();
    let mut ping = spec.ping.filter(|_| ping_frame.is_some()).map(|period| {
        // Spread the first pings over one period.
        let offset = period.mul_f64((n % 1000) as f64 / 1000.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut renew = codec.renew_check().map(|period| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut storm: Option<(Storm, tokio::time::Interval, u32)> = None;
    while !failed {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let read = codec.read(&m);
                    record(read.seen, &log, &counters, &mut welcomed);
                    for reply in read.replies {
                        if sink.send(reply).await.is_err() {
                            end(&log, &counters, End::Dropped("reply failed".into()));
                            failed = true;
                        }
                    }
                }
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
                                Message::Close(_) => break,
                                m => {
                                    let read = codec.read(&m);
                                    record(read.seen, &log, &counters, &mut welcomed);
                                }
                            }
                        }
                    })
                    .await;
                    end(&log, &counters, End::Requested);
                    break;
                }
                Some(Cmd::Storm(s)) => {
                    let mut t = tokio::time::interval_at(s.start, s.period);
                    // Keep the rate: a late tick is sent at once, then on time.
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    storm = (s.count > 0).then_some((s, t, 0));
                }
                Some(Cmd::Abort) | None => {
                    end(&log, &counters, End::Requested);
                    break;
                }
            },
            () = tick(ping.as_mut()) => {
                if let Some(frame) = ping_frame.clone() {
                    if sink.send(frame).await.is_err() {
                        end(&log, &counters, End::Dropped("ping failed".into()));
                        break;
                    }
                }
            }
            () = tick(renew.as_mut()) => {
                if let Some(frame) = codec.renew() {
                    if sink.send(frame).await.is_err() {
                        end(&log, &counters, End::Dropped("renew failed".into()));
                        break;
                    }
                }
            }
            () = tick(storm.as_mut().map(|(_, t, _)| t)) => {
                let Some((s, _, seq)) = storm.as_mut() else { continue };
                *seq += 1;
                let (seq, last) = (*seq, *seq >= s.count);
                let state = cursor::state(s.n, seq);
                let frame = codec.update(&state);
                {
                    let mut log = log.lock().expect("log lock");
                    log.sent_at.push(micros());
                    log.own_state = Some(state);
                }
                if last {
                    storm = None;
                }
                if sink.send(frame).await.is_err() {
                    end(&log, &counters, End::Dropped("update failed".into()));
                    break;
                }
                counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(w) = welcomed.take() {
        let _ = w.send(false);
    }
}

async fn tick(t: Option<&mut tokio::time::Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// How many server errors a log keeps the text of.
const ERRORS_KEPT: usize = 5;

fn record(
    seen: Vec<Seen>,
    log: &Mutex<Log>,
    counters: &Counters,
    welcomed: &mut Option<oneshot::Sender<bool>>,
) {
    if seen.is_empty() {
        return;
    }
    let at = Instant::now();
    let at_us = micros();
    let mut log = log.lock().expect("log lock");
    for s in seen {
        match s {
            Seen::Welcome { id, roster } => {
                log.welcomed = Some(at);
                log.roster = roster.iter().map(|(id, _)| id.clone()).collect();
                for (other, state) in roster {
                    if other != id {
                        log.views.insert(other, view(state));
                    }
                }
                log.id = id;
                counters.welcomes.fetch_add(1, Ordering::Relaxed);
                if let Some(w) = welcomed.take() {
                    let _ = w.send(true);
                }
            }
            Seen::Join { id, state } => {
                log.views.insert(id.clone(), view(state));
                log.events.push(Event {
                    kind: Kind::Join,
                    id,
                    at,
                });
                counters.joins.fetch_add(1, Ordering::Relaxed);
            }
            Seen::Update { id, state } => {
                counters.updates.fetch_add(1, Ordering::Relaxed);
                let probe = state.as_deref().and_then(cursor::probe);
                let final_seq = log.final_seq;
                let Some(v) = log.views.get_mut(&id) else {
                    log.before_join += 1;
                    continue;
                };
                let older = matches!((v.seq, probe), (Some(had), Some((_, seq))) if seq < had);
                // A final state counts once per sender (a renewal repeats it).
                let had_final = final_seq.is_some() && v.seq == final_seq;
                v.seq = probe.map(|(_, seq)| seq);
                v.state = state;
                if older {
                    log.out_of_order += 1;
                }
                if let Some((n, seq)) = probe {
                    log.deliveries.push(Delivery { n, seq, at: at_us });
                    if Some(seq) == final_seq && !had_final {
                        counters.finals.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Seen::Leave { id } => {
                log.views.remove(&id);
                log.events.push(Event {
                    kind: Kind::Leave,
                    id,
                    at,
                });
                counters.leaves.fetch_add(1, Ordering::Relaxed);
            }
            Seen::Expired => log.expired += 1,
            Seen::Error(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if log.errors.len() < ERRORS_KEPT {
                    log.errors.push(e);
                }
            }
        }
    }
}

fn view(state: Option<String>) -> View {
    View {
        seq: state.as_deref().and_then(cursor::probe).map(|(_, seq)| seq),
        state,
    }
}
