//! What every scenario shares: opening and closing many clients with a
//! bound on how many are in flight, waiting for quiet, percentiles, the
//! server's RSS and CPU time, Redis command counts, the file limit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

use crate::client::{Client, Counters, Spec, Target};

/// Opens one client per spec with at most `in_flight` connects pending, and
/// returns when every one is welcomed or has failed. Client numbers (which
/// pick the source address) start at `first`.
pub async fn open_all(
    target: &Target,
    specs: Vec<Spec>,
    in_flight: usize,
    counters: &Arc<Counters>,
    first: u64,
) -> Vec<Client> {
    let in_flight = in_flight.max(1);
    let gate = Arc::new(Semaphore::new(in_flight));
    let mut clients = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let permit = gate.clone().acquire_owned().await.expect("gate open");
        let (tx, rx) = oneshot::channel();
        clients.push(Client::spawn(
            target,
            first + i as u64,
            spec,
            counters.clone(),
            Some(tx),
        ));
        tokio::spawn(async move {
            let _ = rx.await;
            drop(permit);
        });
    }
    let _all = gate
        .acquire_many(in_flight as u32)
        .await
        .expect("gate open");
    clients
}

/// Closes clients cleanly, `in_flight` at a time, each waiting for the
/// server's close reply.
pub async fn close_all(clients: &[&Client], in_flight: usize) {
    futures_util::stream::iter(clients.iter())
        .for_each_concurrent(in_flight.max(1), |c| c.close_and_wait())
        .await;
}

/// Waits until `value()` reaches `expected` (then `grace` more, to catch
/// late duplicates), or until it stops moving for `quiet`. True if reached.
pub async fn settle(
    value: impl Fn() -> u64,
    expected: u64,
    quiet: Duration,
    grace: Duration,
) -> bool {
    settle_with(&value, expected, &value, quiet, grace).await
}

/// [`settle`], with quiet judged on `progress` (which moves while `value`
/// may not, as when the last updates queue behind a backlog).
pub async fn settle_with(
    value: impl Fn() -> u64,
    expected: u64,
    progress: impl Fn() -> u64,
    quiet: Duration,
    grace: Duration,
) -> bool {
    let mut last = progress();
    let mut moved = Instant::now();
    loop {
        if value() >= expected {
            tokio::time::sleep(grace).await;
            return true;
        }
        let v = progress();
        if v != last {
            last = v;
            moved = Instant::now();
        } else if moved.elapsed() >= quiet {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads one shared counter.
pub fn load(c: &AtomicU64) -> u64 {
    Counters::get(c)
}

/// p50 / p99 / max / mean of samples in milliseconds.
pub fn percentiles(samples: &[f64]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0});
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({
        "n": v.len(),
        "p50": round3(at(0.5)),
        "p99": round3(at(0.99)),
        "max": round3(v[v.len() - 1]),
        "mean": round3(mean),
    })
}

/// Rounds to three decimals for readable JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A percentile summary as `p50 … ms, p99 … ms, max … ms`.
pub fn show(p: &Value) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms (n={})",
        p["p50"], p["p99"], p["max"], p["n"]
    )
}

/// Resident set size of a process, KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Microseconds since this process first asked: one clock for every
/// client's send and receive times, compact enough to keep millions.
pub fn micros() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// CPU time (user + system) of a process so far, ms, from /proc.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis start at field 3;
    // utime and stime are fields 14 and 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((utime + stime) * 1000 / hz)
}

/// This process's own CPU time (user + system) so far, ms.
pub fn own_cpu_ms() -> u64 {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// CPU spent by the server (if its pid is known) and by the load generator
/// over one phase of a run, so that a figure can be read against what it
/// cost on the shared cores.
pub struct CpuMeter {
    pid: Option<u32>,
    server: Option<u64>,
    own: u64,
    started: Instant,
}

impl CpuMeter {
    /// Starts measuring.
    pub fn start(pid: Option<u32>) -> Self {
        CpuMeter {
            pid,
            server: pid.and_then(cpu_ms),
            own: own_cpu_ms(),
            started: Instant::now(),
        }
    }

    /// CPU ms and cores (CPU time over wall time) of both since the start.
    pub fn finish(&self) -> Value {
        let wall = self.started.elapsed().as_secs_f64() * 1000.0;
        let server = match (self.server, self.pid.and_then(cpu_ms)) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let own = own_cpu_ms().saturating_sub(self.own);
        let cores = |ms: u64| round3(ms as f64 / wall.max(1.0));
        json!({
            "wall_ms": wall.round(),
            "server_cpu_ms": server,
            "server_cores": server.map(cores),
            "loadgen_cpu_ms": own,
            "loadgen_cores": cores(own),
        })
    }
}

/// A [`CpuMeter::finish`] report as one line.
pub fn show_cpu(c: &Value) -> String {
    let server = match c["server_cpu_ms"].as_u64() {
        Some(ms) => format!("server {ms} ms ({} cores)", c["server_cores"]),
        None => "server not measured (no --server-pid)".to_owned(),
    };
    format!(
        "{server}; load generator {} ms ({} cores) over {} ms",
        c["loadgen_cpu_ms"], c["loadgen_cores"], c["wall_ms"]
    )
}

/// Whether a process exists.
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

/// Raises this process's open-files soft limit to its hard limit; returns
/// (soft, hard) after.
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid out-pointer to an rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// `INFO commandstats` of a Redis server, as command → calls.
pub fn redis_commandstats(addr: &str) -> std::io::Result<BTreeMap<String, u64>> {
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.write_all(b"INFO commandstats\r\n")?;
    let mut reader = BufReader::new(conn);
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let len: usize = header
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("unexpected reply {header:?}")))?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let mut stats = BTreeMap::new();
    for line in String::from_utf8_lossy(&body).lines() {
        // cmdstat_evalsha:calls=12,usec=…
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let calls = fields
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        stats.insert(name.to_owned(), calls);
    }
    Ok(stats)
}

/// Calls per command between two snapshots, only the commands that moved.
pub fn redis_delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0);
        if d > 0 {
            out.insert(k.clone(), json!(d));
        }
    }
    Value::Object(out)
}

/// A short run tag, so that concurrent or repeated runs use fresh spaces.
pub fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}",
        (nanos as u64) ^ (u64::from(std::process::id()) << 40)
    )
}

/// A small deterministic generator (xorshift), enough to pick spaces and
/// victims.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % n as u64) as usize
    }
}
