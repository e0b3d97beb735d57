//! Targets: the things the suite can run against.
//!
//! A [`Target`] knows how to start a [`Deployment`] (one or more server
//! processes serving the protocol) for given [`TargetOptions`]. Cases only
//! talk to a deployment through its URLs, so adding a target means adding an
//! implementation here, not copying cases. Which target runs is chosen by the
//! `LONGHOUSE_TARGET` environment variable (see [`target_from_env`]).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// The knobs a case may need to turn on the server under test. Deployments
/// are shared between cases with equal options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TargetOptions {
    /// `PRESENCE_TTL`: lease length in milliseconds.
    pub ttl_ms: u64,
    /// `KEEPALIVE_MS`: server keepalive period, 0 = off.
    pub keepalive_ms: u64,
    /// `MAX_MESSAGE_BYTES`: largest accepted message.
    pub max_message_bytes: usize,
    /// The trust-and-abuse knobs (issue 5); unset ones keep the server's
    /// defaults.
    pub limits: ServerLimits,
    /// With several instances, the last one's clock runs this many seconds
    /// ahead (libfaketime; its timers stay on the real monotonic clock).
    pub clock_skew_s: i64,
    /// `LOG_FORMAT=json` (native).
    pub json_logs: bool,
}

/// Issue 5's knobs, each `None` unless a case needs it (Copy and Hash, so
/// deployments stay shared between cases with equal options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServerLimits {
    /// `AUTH_SECRET`.
    pub auth_secret: Option<&'static str>,
    /// `AUTH_SECRET_PREVIOUS`.
    pub auth_secret_previous: Option<&'static str>,
    /// `MAX_CLIENTS_PER_SPACE`.
    pub max_clients_per_space: Option<u32>,
    /// `MESSAGE_RATE` and `MESSAGE_BURST`.
    pub message_rate: Option<(u32, u32)>,
    /// `ALLOWED_ORIGINS`.
    pub allowed_origins: Option<&'static str>,
    /// `MAX_CONNECTIONS` (native).
    pub max_connections: Option<u32>,
    /// `HANDSHAKE_TIMEOUT_MS` (native).
    pub handshake_timeout_ms: Option<u64>,
    /// `MAX_QUEUED_MESSAGES` (native).
    pub max_queued_messages: Option<u32>,
    /// `SUBSCRIPTION_QUEUE` (native, Redis).
    pub subscription_queue: Option<u32>,
    /// `ADMIN_TOKEN` (section 14).
    pub admin_token: Option<&'static str>,
    /// `WEBHOOK_URL` and `WEBHOOK_SECRET` (section 14).
    pub webhook: Option<(&'static str, &'static str)>,
    /// `UPDATE_INTERVAL_MS` (section 10).
    pub update_interval_ms: Option<u64>,
    /// `MAX_STATE_BYTES` (section 10).
    pub max_state_bytes: Option<usize>,
}

impl ServerLimits {
    /// None set: the server's defaults.
    pub const NONE: ServerLimits = ServerLimits {
        auth_secret: None,
        auth_secret_previous: None,
        max_clients_per_space: None,
        message_rate: None,
        allowed_origins: None,
        max_connections: None,
        handshake_timeout_ms: None,
        max_queued_messages: None,
        subscription_queue: None,
        admin_token: None,
        webhook: None,
        update_interval_ms: None,
        max_state_bytes: None,
    };

    /// The knobs that are set, as environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(&str, String)> = Vec::new();
        if let Some(v) = self.auth_secret {
            env.push(("AUTH_SECRET", v.into()));
        }
        if let Some(v) = self.auth_secret_previous {
            env.push(("AUTH_SECRET_PREVIOUS", v.into()));
        }
        if let Some(v) = self.max_clients_per_space {
            env.push(("MAX_CLIENTS_PER_SPACE", v.to_string()));
        }
        if let Some((rate, burst)) = self.message_rate {
            env.push(("MESSAGE_RATE", rate.to_string()));
            env.push(("MESSAGE_BURST", burst.to_string()));
        }
        if let Some(v) = self.allowed_origins {
            env.push(("ALLOWED_ORIGINS", v.into()));
        }
        if let Some(v) = self.max_connections {
            env.push(("MAX_CONNECTIONS", v.to_string()));
        }
        if let Some(v) = self.handshake_timeout_ms {
            env.push(("HANDSHAKE_TIMEOUT_MS", v.to_string()));
        }
        if let Some(v) = self.max_queued_messages {
            env.push(("MAX_QUEUED_MESSAGES", v.to_string()));
        }
        if let Some(v) = self.subscription_queue {
            env.push(("SUBSCRIPTION_QUEUE", v.to_string()));
        }
        if let Some(v) = self.admin_token {
            env.push(("ADMIN_TOKEN", v.into()));
        }
        if let Some((url, secret)) = self.webhook {
            env.push(("WEBHOOK_URL", url.into()));
            env.push(("WEBHOOK_SECRET", secret.into()));
        }
        if let Some(v) = self.update_interval_ms {
            env.push(("UPDATE_INTERVAL_MS", v.to_string()));
        }
        if let Some(v) = self.max_state_bytes {
            env.push(("MAX_STATE_BYTES", v.to_string()));
        }
        env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

impl TargetOptions {
    /// What most cases run with: a lease long enough never to run out during
    /// a case, and keepalives frequent enough that every case also checks
    /// that clients can ignore them.
    pub const DEFAULT: TargetOptions = TargetOptions {
        ttl_ms: 20_000,
        keepalive_ms: 1_000,
        max_message_bytes: 4096,
        limits: ServerLimits::NONE,
        clock_skew_s: 0,
        json_logs: false,
    };

    /// Short leases, for the cases about expiry.
    pub const SHORT_LEASE: TargetOptions = TargetOptions {
        ttl_ms: 1_500,
        ..TargetOptions::DEFAULT
    };

    pub const fn with_ttl_ms(self, ttl_ms: u64) -> Self {
        TargetOptions { ttl_ms, ..self }
    }

    pub const fn with_keepalive_ms(self, keepalive_ms: u64) -> Self {
        TargetOptions {
            keepalive_ms,
            ..self
        }
    }

    pub const fn with_max_message_bytes(self, max_message_bytes: usize) -> Self {
        TargetOptions {
            max_message_bytes,
            ..self
        }
    }

    pub const fn with_limits(self, limits: ServerLimits) -> Self {
        TargetOptions { limits, ..self }
    }

    pub const fn with_clock_skew_s(self, clock_skew_s: i64) -> Self {
        TargetOptions {
            clock_skew_s,
            ..self
        }
    }

    pub const fn with_json_logs(self) -> Self {
        TargetOptions {
            json_logs: true,
            ..self
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// The options as the server's environment variables.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("PRESENCE_TTL".into(), self.ttl_ms.to_string()),
            ("KEEPALIVE_MS".into(), self.keepalive_ms.to_string()),
            (
                "MAX_MESSAGE_BYTES".into(),
                self.max_message_bytes.to_string(),
            ),
        ];
        env.extend(self.limits.env());
        if self.json_logs {
            env.push(("LOG_FORMAT".into(), "json".into()));
        }
        env
    }
}

/// What a target can do beyond the wire protocol. Cases that need a
/// capability the target lacks are reported as ignored, with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Its server processes can be signalled (SIGTERM, SIGINT) and their
    /// exit status observed.
    Signals,
    /// It sends `{"ping":true}` every `KEEPALIVE_MS`.
    Keepalive,
    /// A bad configuration value stops it at start with a message naming
    /// the variable.
    StartupConfig,
    /// The roster lives in the server process (in-memory store): after a
    /// restart, clients come back with their ids as ordinary joins.
    MemoryStore,
    /// Leases outlive a server process (Redis store): after a restart,
    /// clients resume silently instead of joining again.
    DurableStore,
    /// The deployment runs its own Redis (one server, or a Cluster's
    /// masters), which cases may restart, flush or poke with `redis-cli`
    /// ([`Deployment::redis_nodes`]).
    Redis,
    /// The deployment has at least two instances sharing one store.
    ManyInstances,
    /// Native-only limits (issue 5): `MAX_CONNECTIONS`, the handshake
    /// timeout, bounded send queues; and local processes whose memory the
    /// hostile suite can read.
    NativeLimits,
    /// The Cloudflare Worker under `wrangler dev`: hibernation, storage and
    /// alarms of Durable Objects.
    Edge,
    /// `GET /` serves the demo page and `GET /client.js` the client
    /// library it loads (issue 7).
    DemoPage,
    /// Every close the server makes ends the TCP connection at once. The
    /// edge lacks it: workerd keeps a hibernatable socket's connection open
    /// until the Durable Object hibernates when the object closed it outside
    /// that socket's own events (README, "Closes on the edge").
    PromptServerCloses,
    /// The native server's operations surface (issue 7): `GET /metrics`,
    /// `LOG_FORMAT=json`; a binary the suite can run. (`GET /{space}` as
    /// JSON is served by every target.)
    NativeOps,
    /// Member events are POSTed to `WEBHOOK_URL` (section 14).
    Webhooks,
    /// The server API (section 14): its token rules and `POST` (a server
    /// broadcast).
    ServerApi,
    /// The server API's `DELETE` (a kick).
    ServerKick,
    /// Protocol v2, sections 10 to 13 (issue 11): presence state, signed
    /// info, username, leave reasons, broadcast and the cursor relay.
    PresenceState,
}

/// A kind of Longhouse deployment the suite can run against.
pub trait Target: Send + Sync {
    /// The `LONGHOUSE_TARGET` name.
    fn name(&self) -> &str;

    fn capabilities(&self) -> &[Capability];

    fn has(&self, capability: Capability) -> bool {
        self.capabilities().contains(&capability)
    }

    /// Starts a deployment and returns once it serves (`GET /health` is
    /// `200 ok`). `label` names its log files.
    fn start(&self, options: TargetOptions, label: &str) -> Result<Deployment>;

    /// Starts a server with `overrides` added to its environment and waits
    /// (at most `timeout`) for it to exit on its own; returns its exit status
    /// and everything it printed. Needs [`Capability::StartupConfig`].
    fn start_expecting_exit(
        &self,
        options: TargetOptions,
        overrides: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(ExitStatus, String)> {
        let _ = (options, overrides, timeout);
        bail!("target {} cannot run a server to its exit", self.name())
    }
}

/// The target named by `LONGHOUSE_TARGET` (default `native-memory`).
pub fn target_from_env() -> Result<Arc<dyn Target>> {
    let name = std::env::var("LONGHOUSE_TARGET").unwrap_or_else(|_| "native-memory".into());
    match name.as_str() {
        "native-memory" => Ok(Arc::new(NativeTarget::memory(native_bin()))),
        "native-redis" => Ok(Arc::new(NativeTarget::redis(native_bin(), 1))),
        "native-redis-pair" => Ok(Arc::new(NativeTarget::redis(native_bin(), 2))),
        "native-redis-cluster" => Ok(Arc::new(NativeTarget::redis_cluster(native_bin()))),
        "worker" => Ok(Arc::new(crate::worker_target::WorkerTarget::new())),
        other => bail!(
            "unknown LONGHOUSE_TARGET={other:?}; known: native-memory, native-redis, \
             native-redis-pair, native-redis-cluster, worker"
        ),
    }
}

/// The workspace root (the parent of this package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e package lives inside the workspace")
        .to_path_buf()
}

/// `LONGHOUSE_BIN`, default `<workspace>/target/debug/longhouse`.
pub fn native_bin() -> PathBuf {
    match std::env::var_os("LONGHOUSE_BIN") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/debug/longhouse"),
    }
}

/// Where server logs go: `<workspace>/target/e2e-logs/`.
pub fn log_dir() -> PathBuf {
    workspace_root().join("target/e2e-logs")
}

/// A running deployment: one or more server instances behind which one
/// protocol is served. Cases connect through [`Deployment::ws_base`], which
/// hands out the instances in turn (two instances on one store get clients
/// alternately).
pub struct Deployment {
    options: TargetOptions,
    instances: Vec<Arc<ServerProcess>>,
    /// Processes the deployment needs that are not Longhouse servers;
    /// stopped after the instances.
    auxiliary: Vec<Arc<ServerProcess>>,
    /// The deployment's own Redis servers (one, or a Cluster's masters),
    /// with the arguments that start each again; replaced by
    /// [`Deployment::restart_redis_node`].
    redis: Mutex<Vec<(Arc<ServerProcess>, Vec<String>)>>,
    cluster: bool,
    next: AtomicUsize,
}

impl Deployment {
    pub fn new(
        options: TargetOptions,
        instances: Vec<Arc<ServerProcess>>,
        auxiliary: Vec<Arc<ServerProcess>>,
    ) -> Self {
        assert!(!instances.is_empty(), "a deployment has an instance");
        Deployment {
            options,
            instances,
            auxiliary,
            redis: Mutex::new(Vec::new()),
            cluster: false,
            next: AtomicUsize::new(0),
        }
    }

    /// A deployment whose instances share `redis`, one server or a
    /// Cluster's masters (stopped after them).
    pub fn with_redis(
        options: TargetOptions,
        instances: Vec<Arc<ServerProcess>>,
        redis: Vec<(Arc<ServerProcess>, Vec<String>)>,
        cluster: bool,
    ) -> Self {
        let mut d = Deployment::new(options, instances, vec![]);
        *d.redis.lock().unwrap() = redis;
        d.cluster = cluster;
        d
    }

    /// The deployment's (first) Redis server, if it has any.
    pub fn redis(&self) -> Option<Arc<ServerProcess>> {
        self.redis_nodes().into_iter().next()
    }

    /// Every Redis server of the deployment.
    pub fn redis_nodes(&self) -> Vec<Arc<ServerProcess>> {
        self.redis
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether the Redis is a Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Which Redis server holds `key` (a Cluster's master of its slot).
    pub fn redis_node_for(&self, key: &str) -> Result<usize> {
        let nodes = self.redis_nodes();
        let first = nodes.first().context("this deployment has no Redis")?;
        if !self.cluster {
            return Ok(0);
        }
        let slot: u16 = redis_cli(first.port, &["CLUSTER", "KEYSLOT", key])?
            .trim()
            .parse()
            .context("CLUSTER KEYSLOT")?;
        let table = redis_cli(first.port, &["CLUSTER", "NODES"])?;
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(port) = fields
                .get(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            let owns = fields.iter().skip(8).any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            if owns {
                return nodes
                    .iter()
                    .position(|n| n.port == port)
                    .context("the slot's master is not one of ours");
            }
        }
        bail!("no master owns slot {slot}: {table}")
    }

    /// SIGKILLs Redis server `i` (nothing is persisted, so it comes back
    /// empty with [`Deployment::restart_redis_node`]).
    pub fn kill_redis_node(&self, i: usize) -> Result<()> {
        let node = self
            .redis_nodes()
            .get(i)
            .cloned()
            .context("no such Redis")?;
        node.kill();
        Ok(())
    }

    /// Starts Redis server `i` again, empty, on its port (a Cluster master
    /// with its node file, so it takes back its slots), and waits until it
    /// serves (the Cluster's state is ok).
    pub fn restart_redis_node(&self, i: usize) -> Result<Arc<ServerProcess>> {
        let (old, args) = self
            .redis
            .lock()
            .unwrap()
            .get(i)
            .cloned()
            .context("no such Redis")?;
        let fresh = spawn_redis(old.port, args.clone(), &format!("{}-again", old.label))?;
        self.redis.lock().unwrap()[i] = (fresh.clone(), args);
        if self.cluster {
            wait_cluster_ok(&self.redis_nodes(), Duration::from_secs(20))?;
        }
        Ok(fresh)
    }

    /// Runs `redis-cli ARGS…` against every Redis server.
    pub fn redis_cli_all(&self, args: &[&str]) -> Result<Vec<String>> {
        self.redis_nodes()
            .iter()
            .map(|n| redis_cli(n.port, args))
            .collect()
    }

    /// `ws://127.0.0.1:PORT` of instance `i`.
    pub fn ws_base_of(&self, i: usize) -> String {
        self.instances[i].ws_base()
    }

    pub fn options(&self) -> TargetOptions {
        self.options
    }

    /// The lease length the deployment was started with.
    pub fn ttl(&self) -> Duration {
        self.options.ttl()
    }

    /// `ws://127.0.0.1:PORT` of the next instance in turn.
    pub fn ws_base(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        self.instances[i].ws_base()
    }

    /// `http://127.0.0.1:PORT` of the first instance.
    pub fn http_base(&self) -> String {
        self.instances[0].http_base()
    }

    /// The server processes serving the protocol.
    pub fn instances(&self) -> &[Arc<ServerProcess>] {
        &self.instances
    }

    /// Stops every process (instances first). Idempotent.
    pub fn stop(&self) {
        for p in self.instances.iter().chain(&self.auxiliary) {
            p.kill();
        }
        for redis in self.redis_nodes() {
            redis.kill();
        }
    }

    /// Where to look when something went wrong.
    pub fn describe(&self) -> String {
        let logs: Vec<String> = self
            .instances
            .iter()
            .chain(&self.auxiliary)
            .chain(&self.redis_nodes())
            .map(|p| p.log_path.display().to_string())
            .collect();
        format!("{:?}, logs: {}", self.options, logs.join(", "))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// What to run; built into a `Command` on the spawner thread.
pub(crate) struct SpawnSpec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) env_remove: Vec<String>,
    pub(crate) log: PathBuf,
}

type SpawnRequest = (SpawnSpec, mpsc::Sender<io::Result<Child>>);

/// Spawns on one long-lived thread. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child ends, not the process; test threads come
/// and go, so every child is forked from a thread that lives as long as the
/// test process does.
fn spawn(spec: SpawnSpec) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("e2e-spawner".into())
                .spawn(move || {
                    for (spec, reply) in rx {
                        let _ = reply.send(spawn_here(spec));
                    }
                })
                .expect("spawn the spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap()
        .clone();
    let (tx, rx) = mpsc::channel();
    sender
        .send((spec, tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

fn spawn_here(spec: SpawnSpec) -> io::Result<Child> {
    if let Some(dir) = spec.log.parent() {
        fs::create_dir_all(dir)?;
    }
    let log = File::create(&spec.log)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for name in &spec.env_remove {
        cmd.env_remove(name);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (prctl, getppid, _exit).
    let parent = unsafe { libc::getpid() };
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// A process the suite started. Killed when dropped.
pub struct ServerProcess {
    pub label: String,
    pub port: u16,
    pub log_path: PathBuf,
    pid: i32,
    child: Mutex<Child>,
    status: Mutex<Option<ExitStatus>>,
}

impl ServerProcess {
    /// Spawns `spec` (through the spawner thread) as the process `label`
    /// listening on `port`.
    pub(crate) fn spawn(spec: SpawnSpec, label: String, port: u16) -> io::Result<ServerProcess> {
        let log_path = spec.log.clone();
        let child = spawn(spec)?;
        Ok(ServerProcess {
            label,
            port,
            log_path,
            pid: child.id() as i32,
            child: Mutex::new(child),
            status: Mutex::new(None),
        })
    }

    /// Waits until the process answers `GET /health` with `200 ok`, at
    /// most `timeout`; an exit or the deadline is an error (killing it at
    /// the deadline). `Ok(false)`: it exited, worth another try.
    pub(crate) fn await_health(&self, timeout: Duration) -> Result<bool> {
        self.await_health_answer(timeout, "with 200 ok", |r| {
            r.status == 200 && r.body == b"ok"
        })
    }

    /// Like [`ServerProcess::await_health`], but any HTTP answer will do
    /// (a Worker refusing a bad var answers 500).
    pub(crate) fn await_http(&self, timeout: Duration) -> Result<bool> {
        self.await_health_answer(timeout, "at all", |_| true)
    }

    fn await_health_answer(
        &self,
        timeout: Duration,
        what: &str,
        good: impl Fn(&crate::http::Response) -> bool,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.try_status().is_some() {
                return Ok(false);
            }
            if health_answer(self.port).is_some_and(|r| good(&r)) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "{} did not answer GET /health {what} within {timeout:?}; log {}:\n{}",
                    self.label,
                    self.log_path.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Why a process that exited at start did: its status and log.
    pub(crate) fn exited_at_start(&self) -> anyhow::Error {
        let status = self.try_status().map(describe_status).unwrap_or_default();
        anyhow!(
            "{} exited at start ({status}); log {}:\n{}",
            self.label,
            self.log_path.display(),
            self.log_tail()
        )
    }

    pub fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn http_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The exit status, if the process has ended (reaps it).
    pub fn try_status(&self) -> Option<ExitStatus> {
        let mut status = self.status.lock().unwrap();
        if status.is_none() {
            if let Ok(Some(s)) = self.child.lock().unwrap().try_wait() {
                *status = Some(s);
            }
        }
        *status
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) -> Result<()> {
        if let Some(s) = self.try_status() {
            bail!("{} already exited ({s})", self.label);
        }
        // SAFETY: plain syscall; the pid is our unreaped child, so it cannot
        // have been recycled.
        if unsafe { libc::kill(self.pid, signal) } != 0 {
            return Err(io::Error::last_os_error()).context("kill");
        }
        Ok(())
    }

    /// Waits (polling) for the process to exit, at most `timeout`.
    pub async fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}; log {}",
                    self.label,
                    self.log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn wait_exit_blocking(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap. Idempotent. A process that leads its own process
    /// group (`wrangler dev`, started under `setsid`) takes its group with
    /// it: wrangler's workerd children would otherwise keep the port.
    pub fn kill(&self) {
        // SAFETY: plain syscalls on our own unreaped child's pid.
        unsafe {
            if libc::getpgid(self.pid) == self.pid {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
        if self.try_status().is_some() {
            return;
        }
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        if let Ok(s) = child.wait() {
            *self.status.lock().unwrap() = Some(s);
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on right now (the kernel's choice).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

/// Ports this process has handed out.
fn used_ports() -> &'static Mutex<HashSet<u16>> {
    static USED: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    USED.get_or_init(Default::default)
}

/// Ports handed out by this process, so that two instances starting at once
/// never get the same one.
pub fn fresh_port() -> Result<u16> {
    for _ in 0..50 {
        let port = free_port()?;
        if used_ports().lock().unwrap().insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh port")
}

/// How far a Redis Cluster node's bus port is from its client port (fixed
/// by Redis).
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// A port for a Redis Cluster node: free, with its bus port (port + 10000)
/// free too, both reserved in this process. Both lie below the kernel's
/// ephemeral range (32768 and up on Linux), so that neither a
/// [`fresh_port`] nor the local end of some outgoing connection can take
/// the bus port between this check and the node's start, which is how a
/// node once failed to start with "Address already in use" on its bus.
fn fresh_cluster_port() -> Result<u16> {
    const FIRST: u16 = 12_000;
    const SPAN: u16 = 10_000; // bus ports stay below 32000
    static NEXT: OnceLock<Mutex<u16>> = OnceLock::new();
    // Processes running side by side start at different places.
    let next = NEXT.get_or_init(|| Mutex::new((std::process::id() % u32::from(SPAN)) as u16));
    for _ in 0..SPAN {
        let port = {
            let mut n = next.lock().unwrap();
            *n = (*n + 7) % SPAN;
            FIRST + *n
        };
        let bus = port + CLUSTER_BUS_OFFSET;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        let mut used = used_ports().lock().unwrap();
        if !used.contains(&port) && !used.contains(&bus) && free(port) && free(bus) {
            used.insert(port);
            used.insert(bus);
            return Ok(port);
        }
    }
    bail!("no free port pair for a Redis Cluster node")
}

pub(crate) fn log_path(label: &str, port: u16) -> PathBuf {
    let safe: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    log_dir().join(format!("{safe}-{port}.log"))
}

/// `GET /health` answered `200` with body `ok` (blocking, short timeouts).
pub fn health_ok(port: u16) -> bool {
    health_answer(port).is_some_and(|r| r.status == 200 && r.body == b"ok")
}

/// The answer to `GET /health`, if a complete one came (blocking, short
/// timeouts).
fn health_answer(port: u16) -> Option<crate::http::Response> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let req =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    // Read until the answer is complete, not until the server closes:
    // workerd keeps the connection open for seconds despite `close`.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Ok(r) = crate::http::parse_response(&buf) {
            return Some(r);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------
// The native server
// ---------------------------------------------------------------------------

/// The native `longhouse` binary.
pub struct NativeTarget {
    name: String,
    bin: PathBuf,
    capabilities: Vec<Capability>,
    /// With a Redis store: how many instances share it. `None`: in memory.
    redis_instances: Option<usize>,
    /// The Redis is a three-master Redis Cluster.
    cluster: bool,
}

impl NativeTarget {
    /// `native-memory`: one instance, in-memory store.
    pub fn memory(bin: PathBuf) -> Self {
        NativeTarget {
            name: "native-memory".into(),
            bin,
            capabilities: vec![
                Capability::Signals,
                Capability::Keepalive,
                Capability::StartupConfig,
                Capability::MemoryStore,
                Capability::NativeLimits,
                Capability::DemoPage,
                Capability::NativeOps,
                Capability::PromptServerCloses,
                Capability::Webhooks,
                Capability::ServerApi,
                Capability::ServerKick,
                Capability::PresenceState,
            ],
            redis_instances: None,
            cluster: false,
        }
    }

    /// `native-redis-cluster`: two instances on a Redis Cluster of three
    /// masters on loopback ports, started (and stopped) per deployment.
    pub fn redis_cluster(bin: PathBuf) -> Self {
        NativeTarget {
            name: "native-redis-cluster".into(),
            bin,
            capabilities: vec![
                Capability::Signals,
                Capability::Keepalive,
                Capability::StartupConfig,
                Capability::DurableStore,
                Capability::Redis,
                Capability::ManyInstances,
                Capability::NativeLimits,
                Capability::DemoPage,
                Capability::NativeOps,
                Capability::PromptServerCloses,
                Capability::ServerApi,
                Capability::ServerKick,
                Capability::Webhooks,
                Capability::PresenceState,
            ],
            redis_instances: Some(2),
            cluster: true,
        }
    }

    /// `native-redis` (one instance) or `native-redis-pair` (two): each
    /// deployment starts its own `redis-server` on a free loopback port,
    /// without persistence, and its instances share it.
    pub fn redis(bin: PathBuf, instances: usize) -> Self {
        let mut capabilities = vec![
            Capability::Signals,
            Capability::Keepalive,
            Capability::StartupConfig,
            Capability::DurableStore,
            Capability::Redis,
            Capability::NativeLimits,
            Capability::DemoPage,
            Capability::NativeOps,
            Capability::PromptServerCloses,
            Capability::ServerApi,
            Capability::ServerKick,
            Capability::Webhooks,
            Capability::PresenceState,
        ];
        if instances > 1 {
            capabilities.push(Capability::ManyInstances);
        }
        NativeTarget {
            name: if instances > 1 {
                "native-redis-pair".into()
            } else {
                "native-redis".into()
            },
            bin,
            capabilities,
            redis_instances: Some(instances),
            cluster: false,
        }
    }

    fn check_bin(&self) -> Result<()> {
        if !self.bin.is_file() {
            bail!(
                "server binary {} not found: build it with `cargo build -p longhouse-native` \
                 or point LONGHOUSE_BIN at it",
                self.bin.display()
            );
        }
        Ok(())
    }

    fn spec(&self, port: u16, env: Vec<(String, String)>, label: &str) -> SpawnSpec {
        let mut all = vec![
            ("HOST".to_string(), "127.0.0.1".to_string()),
            ("PORT".to_string(), port.to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        all.extend(env);
        SpawnSpec {
            program: self.bin.clone(),
            args: vec![],
            env: all,
            // The in-memory store: whatever the caller's shell has set.
            env_remove: vec!["REDIS_URL".into(), "REDISCLOUD_URL".into()],
            log: log_path(label, port),
        }
    }

    /// Starts one server and waits until it is healthy.
    fn start_instance(
        &self,
        options: TargetOptions,
        label: &str,
        extra_env: &[(String, String)],
    ) -> Result<Arc<ServerProcess>> {
        self.check_bin()?;
        let mut last_error = anyhow!("not started");
        // A port can be taken between our probe and the server's bind: retry.
        for _attempt in 0..3 {
            let port = fresh_port()?;
            let mut env = options.env();
            env.extend(extra_env.iter().cloned());
            let spec = self.spec(port, env, label);
            let process =
                ServerProcess::spawn(spec, format!("{}[{label}]:{port}", self.name), port)
                    .with_context(|| format!("spawn {}", self.bin.display()))?;
            let process = Arc::new(process);
            if process.await_health(Duration::from_secs(20))? {
                return Ok(process);
            }
            last_error = process.exited_at_start();
        }
        Err(last_error)
    }
}

impl Target for NativeTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    fn start(&self, options: TargetOptions, label: &str) -> Result<Deployment> {
        let Some(count) = self.redis_instances else {
            let instance = self.start_instance(options, label, &[])?;
            return Ok(Deployment::new(options, vec![instance], vec![]));
        };
        let nodes = if self.cluster {
            start_redis_cluster(&format!("{label}-cluster"))?
        } else {
            vec![start_redis_node(&format!("{label}-redis"))?]
        };
        let env = vec![(
            "REDIS_URL".to_string(),
            format!("redis://127.0.0.1:{}", nodes[0].0.port),
        )];
        let mut instances = Vec::new();
        for i in 0..count {
            let mut env = env.clone();
            if i + 1 == count && count > 1 && options.clock_skew_s != 0 {
                env.extend(skewed_clock(options.clock_skew_s)?);
            }
            match self.start_instance(options, &format!("{label}-{i}"), &env) {
                Ok(p) => instances.push(p),
                Err(e) => {
                    for (n, _) in &nodes {
                        n.kill();
                    }
                    return Err(e);
                }
            }
        }
        Ok(Deployment::with_redis(
            options,
            instances,
            nodes,
            self.cluster,
        ))
    }

    fn start_expecting_exit(
        &self,
        options: TargetOptions,
        overrides: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(ExitStatus, String)> {
        self.check_bin()?;
        let port = fresh_port()?;
        let mut env = options.env();
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let label = format!("expect-exit-{}", overrides.first().map_or("", |(k, _)| k));
        let mut spec = self.spec(port, env, &label);
        if self.redis_instances.is_some() {
            // Nothing listens there: the server must stop on the bad value
            // before it ever needs Redis.
            spec.env
                .push(("REDIS_URL".into(), "redis://127.0.0.1:9".into()));
        }
        let process = ServerProcess::spawn(spec, format!("{}[{label}]:{port}", self.name), port)?;
        match process.wait_exit_blocking(timeout) {
            Some(status) => Ok((status, process.log())),
            None => {
                let serving = health_ok(port);
                process.kill();
                bail!(
                    "server with {overrides:?} still running after {timeout:?} \
                     (serving /health: {serving}); log:\n{}",
                    process.log_tail()
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// The environment that runs a process with its wall clock `skew_s`
/// seconds ahead (libfaketime, from Debian's `faketime` package), its
/// monotonic clock, and so its timers, left alone.
fn skewed_clock(skew_s: i64) -> Result<Vec<(String, String)>> {
    let lib = fs::read_dir("/usr/lib")
        .context("read /usr/lib")?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.is_file())
        .context("libfaketime not found: scripts/setup.sh installs Debian's faketime package")?;
    Ok(vec![
        ("LD_PRELOAD".into(), lib.display().to_string()),
        ("FAKETIME".into(), format!("{skew_s:+}s")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ])
}

/// Starts `redis-server` on a free loopback port with no persistence and
/// waits until it answers `PING`.
pub fn start_redis(label: &str) -> Result<Arc<ServerProcess>> {
    start_redis_node(label).map(|(p, _)| p)
}

/// As [`start_redis`], with the arguments that start it again.
fn start_redis_node(label: &str) -> Result<(Arc<ServerProcess>, Vec<String>)> {
    let mut last = anyhow!("not started");
    for _attempt in 0..3 {
        let port = fresh_port()?;
        let args = redis_args(port);
        match spawn_redis(port, args.clone(), label) {
            Ok(p) => return Ok((p, args)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A `redis-server` on loopback `port` with no persistence.
fn redis_args(port: u16) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Starts `redis-server` on `port` (retrying for a while if the port is
/// still held by a process that is going away).
pub fn start_redis_on(port: u16, label: &str) -> Result<Arc<ServerProcess>> {
    spawn_redis(port, redis_args(port), label)
}

/// Starts `redis-server ARGS…` listening on `port` and waits until it
/// answers `PING`, retrying while the port is still held by a process that
/// is going away.
fn spawn_redis(port: u16, args: Vec<String>, label: &str) -> Result<Arc<ServerProcess>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let spec = SpawnSpec {
            program: PathBuf::from("redis-server"),
            args: args.clone(),
            env: vec![],
            env_remove: vec![],
            log: log_path(label, port),
        };
        let process = Arc::new(
            ServerProcess::spawn(spec, format!("redis[{label}]:{port}"), port).context(
                "spawn redis-server (scripts/setup.sh installs it from Debian's packages)",
            )?,
        );
        loop {
            if redis_ping(port) {
                return Ok(process);
            }
            if process.try_status().is_some() {
                break;
            }
            if Instant::now() >= deadline {
                process.kill();
                bail!("{} did not answer PING within 10 s", process.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if Instant::now() >= deadline {
            bail!(
                "{} exited at start; log {}:\n{}",
                process.label,
                process.log_path.display(),
                process.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts three Redis Cluster masters on free loopback ports (no
/// persistence, node files under the log directory) and joins them with
/// `redis-cli --cluster create`; returns once the cluster state is ok, with
/// each node's arguments.
fn start_redis_cluster(label: &str) -> Result<Vec<(Arc<ServerProcess>, Vec<String>)>> {
    let mut nodes: Vec<(Arc<ServerProcess>, Vec<String>)> = Vec::new();
    for i in 0..3 {
        nodes.push(start_cluster_node(&format!("{label}-node{i}"))?);
    }
    let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
    args.extend(nodes.iter().map(|(n, _)| format!("127.0.0.1:{}", n.port)));
    args.extend([
        "--cluster-replicas".into(),
        "0".into(),
        "--cluster-yes".into(),
    ]);
    let out = Command::new("redis-cli")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .context("run redis-cli --cluster create")?;
    ensure_ok(out.status.success(), || {
        format!(
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let processes: Vec<Arc<ServerProcess>> = nodes.iter().map(|(n, _)| n.clone()).collect();
    wait_cluster_ok(&processes, Duration::from_secs(20))?;
    Ok(nodes)
}

/// Starts one Redis Cluster node on a fresh port pair; on a failed start
/// (a port taken by another program since the check) it tries a new pair.
fn start_cluster_node(label: &str) -> Result<(Arc<ServerProcess>, Vec<String>)> {
    let mut last = anyhow!("not started");
    for _attempt in 0..3 {
        let port = fresh_cluster_port()?;
        let conf = log_dir().join(format!("{label}-nodes-{port}.conf"));
        let _ = fs::remove_file(&conf);
        let args: Vec<String> = redis_args(port)
            .into_iter()
            .chain([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                conf.display().to_string(),
            ])
            .collect();
        match spawn_redis(port, args.clone(), label) {
            Ok(node) => return Ok((node, args)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Waits until every node says `cluster_state:ok`.
fn wait_cluster_ok(nodes: &[Arc<ServerProcess>], within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    for n in nodes {
        loop {
            let info = redis_cli(n.port, &["CLUSTER", "INFO"]).unwrap_or_default();
            if info.contains("cluster_state:ok") {
                break;
            }
            if Instant::now() >= deadline {
                bail!("{} never reached cluster_state:ok: {info}", n.label);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn ensure_ok(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(anyhow!(message()))
    }
}

/// Redis on `port` answers `PING` with `+PONG`.
pub fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Runs `redis-cli -p PORT ARGS…` and returns what it printed.
pub fn redis_cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .context("run redis-cli")?;
    if !out.status.success() {
        bail!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `"exit status: 1"` / `"signal 9"`, for messages.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
