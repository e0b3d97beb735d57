//! The Lua scripts against the core's `Roster`, on a real redis-server:
//! random sequences of joins (with states), resumes, renewals, updates,
//! leaves (with a last state), relays and sweeps, from
//! callers whose clocks disagree by up to a second (each call carries its
//! time with `ScriptClock::FixedForTests`), must give the same statuses,
//! the same events (kinds, clients, holders, sequence numbers), the same
//! leases with the same expiries, and the same next expiry. With webhooks
//! on, the member events the scripts add to the space's stream are the
//! ones the core's `MemberCounts` makes of the same roster events.
//!
//! It starts its own `redis-server` on a free loopback port (installed by
//! `scripts/setup.sh`) and fails, loudly, if there is none.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use longhouse_core::api::KickTarget;
use longhouse_core::shared::{
    CallId, Epoch, History, PublishMode, ScriptClock, ScriptKind, ScriptReply, ScriptStatus,
    SpaceScripts, StoreCall, StoreOp,
};
use longhouse_core::webhook::{from_stream_entry, MemberCounts};
use longhouse_core::{
    ClientId, ClientInfo, ConnId, JoinError, Json, Roster, Sequenced, SpaceName, UnixMillis,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const TTL: u64 = 1_000;
const START: u64 = 1_764_000_000_000;
const IDENTITIES: [&str; 3] = ["ann", "bob", "cy|é \"q\""];

/// A redis-server of our own, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the differential test needs it; \
                     scripts/setup.sh installs it from Debian's packages"
                )
            });
        let redis = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.connection().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut c =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A join of a fresh id, or of one used before (a resume, or another
    /// identity's attempt).
    Join {
        identity: usize,
        id: Option<usize>,
        holder: u8,
    },
    Renew {
        id: usize,
        holder: u8,
    },
    Leave {
        id: usize,
        holder: u8,
        /// A held update flushed into the leave.
        last: Option<usize>,
    },
    /// A (coalesced) update; `None` clears the state. `if_changed`: a
    /// record settled again, an event only if it changes the stored one.
    Update {
        id: usize,
        holder: u8,
        state: Option<usize>,
        if_changed: bool,
    },
    /// A broadcast (`id: None`: the server API's).
    Relay {
        id: Option<usize>,
        holder: u8,
    },
    /// The server API's kick of one lease, or of every lease of an
    /// identity.
    Remove {
        id: usize,
        identity: Option<usize>,
    },
    Sweep,
    /// Time moves on.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..IDENTITIES.len(), prop::option::weighted(0.5, any::<usize>()), 1..5u8)
            .prop_map(|(identity, id, holder)| Op::Join { identity, id, holder }),
        4 => (any::<usize>(), 1..5u8).prop_map(|(id, holder)| Op::Renew { id, holder }),
        1 => (any::<usize>(), prop::option::of(0..IDENTITIES.len()))
            .prop_map(|(id, identity)| Op::Remove { id, identity }),
        2 => (any::<usize>(), 1..5u8, prop::option::of(any::<usize>()))
            .prop_map(|(id, holder, last)| Op::Leave { id, holder, last }),
        4 => (
            any::<usize>(),
            1..5u8,
            prop::option::weighted(0.8, any::<usize>()),
            any::<bool>()
        )
            .prop_map(|(id, holder, state, if_changed)| Op::Update {
                id,
                holder,
                state,
                if_changed
            }),
        1 => (prop::option::weighted(0.8, any::<usize>()), 1..5u8)
            .prop_map(|(id, holder)| Op::Relay { id, holder }),
        1 => Just(Op::Sweep),
        3 => (0..2 * TTL).prop_map(Op::Advance),
    ]
}

/// One run: a space of its own in the shared Redis, a Roster beside it.
struct Run<'a> {
    redis: &'a mut redis::Connection,
    scripts: SpaceScripts,
    loaded: BTreeMap<&'static str, redis::Script>,
    roster: Roster,
    max_clients: Option<usize>,
    ids: Vec<ClientId>,
    history: History,
    now: u64,
    calls: u64,
    /// The core's member counts, fed the Roster's events.
    members: MemberCounts,
    /// The last stream entry compared.
    last_entry: String,
}

/// States that Lua must store and publish untouched: numbers cjson would
/// round, escapes, non-ASCII, nesting.
fn state(n: usize) -> Json {
    const STATES: [&str; 4] = [
        r#"{"x":1764000000123.5,"big":12345678901234567890}"#,
        r#"{"name":"Zoë \"q\" 🦀","s":"a\\b\u0000"}"#,
        r#"{"cursor":{"x":0.1,"y":-2e-7},"sel":[1,[2,{}]]}"#,
        "{}",
    ];
    Json::object(STATES[n % STATES.len()]).expect("a JSON object")
}

fn holder(n: u8) -> ConnId {
    // High bits set: holders must round-trip exactly through Lua.
    ConnId(0xfeed_0000_0000_0000 | u64::from(n))
}

impl Run<'_> {
    fn call(&mut self, op: StoreOp, at: u64) -> Result<ScriptReply, TestCaseError> {
        self.calls += 1;
        let call = StoreCall {
            id: CallId(self.calls),
            history: self.history.clone(),
            op,
        };
        let script = self.scripts.script(
            &call,
            ScriptClock::FixedForTests(UnixMillis(at)),
            &Epoch::from_random(self.calls),
        );
        let lua = self
            .loaded
            .entry(script.kind.name())
            .or_insert_with(|| redis::Script::new(script.kind.source()));
        let mut invocation = lua.prepare_invoke();
        for k in &script.keys {
            invocation.key(k);
        }
        for a in &script.args {
            invocation.arg(a);
        }
        let text: String = invocation
            .invoke(self.redis)
            .map_err(|e| TestCaseError::fail(format!("{:?}: {e}", script.kind)))?;
        let reply =
            ScriptReply::decode(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        self.history = History {
            epoch: reply.epoch.clone(),
            seen: reply.seq,
        };
        Ok(reply)
    }

    fn pick(&self, n: usize) -> Option<ClientId> {
        (!self.ids.is_empty()).then(|| self.ids[n % self.ids.len()].clone())
    }

    fn step(&mut self, op: &Op, jitter: i64) -> Result<(), TestCaseError> {
        // Each caller's clock is off by up to a second.
        let at = (self.now as i64 + jitter) as u64;
        let t = UnixMillis(at);
        let (status, expected): (ScriptStatus, Vec<Sequenced>) = match op {
            Op::Advance(ms) => {
                self.now += ms;
                return Ok(());
            }
            Op::Join {
                identity,
                id,
                holder: h,
            } => {
                let id = match id.and_then(|n| self.pick(n)) {
                    Some(id) => id,
                    None => {
                        let id = ClientId::parse(&format!("c{}", self.ids.len())).unwrap();
                        self.ids.push(id.clone());
                        id
                    }
                };
                let identity = IDENTITIES[*identity];
                let mut client = ClientInfo::new(id.clone(), identity, t);
                if (at / 7).is_multiple_of(2) {
                    client.state = Some(state(at as usize));
                    client.username = Some(format!("user {identity}"));
                }
                let mut events = self.roster.sweep(t);
                let status =
                    match self
                        .roster
                        .admit(client.clone(), holder(*h), t, TTL, self.max_clients)
                    {
                        Ok(e) => {
                            events.extend(e);
                            ScriptStatus::Ok
                        }
                        Err(JoinError::IdHeldByAnother) => ScriptStatus::Refused,
                        Err(JoinError::SpaceFull) => ScriptStatus::Full,
                        Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
                    };
                let reply = self.call(
                    StoreOp::Join {
                        client,
                        holder: holder(*h),
                        snapshot: false,
                    },
                    at,
                )?;
                self.compare(&reply, status, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Renew { id, holder: h } => {
                let Some(id) = self.pick(*id) else {
                    return Ok(());
                };
                let events = self.roster.sweep(t);
                let ok = self.roster.renew(&id, holder(*h), t, TTL);
                let reply = self.call(
                    StoreOp::Renew {
                        id,
                        holder: holder(*h),
                    },
                    at,
                )?;
                let status = if ok {
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                self.compare(&reply, status, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Update {
                id,
                holder: h,
                state: n,
                if_changed,
            } => {
                let Some(id) = self.pick(*id) else {
                    return Ok(());
                };
                let mut events = self.roster.sweep(t);
                let client = match self.roster.get(&id) {
                    Some(l) => l.client.with_state(n.map(state)),
                    None => ClientInfo::new(id.clone(), "nobody", t),
                };
                let same = self.roster.get(&id).is_some_and(|l| l.client == client);
                let status = if *if_changed && same {
                    // Settled again, the same: a renewal, no event.
                    self.roster.renew(&id, holder(*h), t, TTL)
                } else {
                    let updated = self.roster.update(client.clone(), holder(*h), t, TTL);
                    let stored = updated.is_some();
                    events.extend(updated);
                    stored
                };
                let status = if status {
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                let reply = self.call(
                    StoreOp::Update {
                        client,
                        holder: holder(*h),
                        if_changed: *if_changed,
                    },
                    at,
                )?;
                self.compare(&reply, status, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Relay { id, holder: h } => {
                let from = match id {
                    Some(n) => match self.pick(*n) {
                        Some(id) => Some((id, holder(*h))),
                        None => return Ok(()),
                    },
                    None => None,
                };
                let events = self.roster.sweep(t);
                let ok = match &from {
                    Some((id, conn)) => self.roster.renew(id, *conn, t, TTL),
                    None => true,
                };
                let reply = self.call(
                    StoreOp::Relay {
                        from,
                        text: r#"{"event":"broadcast","from":null,"data":[1.5e300]}"#.into(),
                    },
                    at,
                )?;
                let status = if ok {
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                self.compare(&reply, status, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Leave {
                id,
                holder: h,
                last: n,
            } => {
                let Some(id) = self.pick(*id) else {
                    return Ok(());
                };
                let mut events = self.roster.sweep(t);
                let last = n.and_then(|n| {
                    let lease = self.roster.get(&id)?;
                    Some(lease.client.with_state(Some(state(n))))
                });
                let left = self.roster.leave_with(&id, holder(*h), last.clone());
                let status = if left.is_some() {
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                events.extend(left);
                let reply = self.call(
                    StoreOp::Leave {
                        id,
                        holder: holder(*h),
                        last,
                    },
                    at,
                )?;
                self.compare(&reply, status, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Remove { id, identity } => {
                let target = match identity {
                    Some(i) => KickTarget::Identity(IDENTITIES[*i].to_owned()),
                    None => match self.pick(*id) {
                        Some(id) => KickTarget::Client(id),
                        None => return Ok(()),
                    },
                };
                let mut events = self.roster.sweep(t);
                match &target {
                    KickTarget::Identity(identity) => {
                        events.extend(self.roster.remove_identity(identity))
                    }
                    KickTarget::Client(id) => events.extend(self.roster.remove_client(id)),
                }
                let reply = self.call(StoreOp::Remove { target }, at)?;
                self.compare(&reply, ScriptStatus::Ok, &events)?;
                return self.compare_leases(&reply);
            }
            Op::Sweep => (ScriptStatus::Ok, self.roster.sweep(t)),
        };
        let reply = self.call(StoreOp::Sweep, at)?;
        self.compare(&reply, status, &expected)?;
        self.compare_leases(&reply)
    }

    fn compare(
        &mut self,
        reply: &ScriptReply,
        status: ScriptStatus,
        events: &[Sequenced],
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(reply.status, status);
        prop_assert_eq!(&reply.events, events, "events");
        prop_assert_eq!(reply.seq, self.roster.seq(), "sequence");
        prop_assert_eq!(reply.next_expiry, self.roster.next_expiry(), "next expiry");
        self.compare_member_events(events)
    }

    /// The stream's new entries are the member events `MemberCounts`
    /// makes of `events` (type, identity, reason, in order).
    fn compare_member_events(&mut self, events: &[Sequenced]) -> Result<(), TestCaseError> {
        let space = "differential";
        let mut expected = Vec::new();
        for e in events {
            for m in self
                .members
                .observe(space, &e.event, UnixMillis(0), String::new)
            {
                expected.push((m.kind, m.identity, m.reason));
            }
        }
        let key = self.scripts.keys().webhooks.clone();
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({}", self.last_entry))
            .arg("+")
            .query(self.redis)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut got = Vec::new();
        for entry in entries.ids {
            self.last_entry = entry.id.clone();
            let fields: Vec<(String, String)> = entry
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect();
            let m = from_stream_entry(space, &entry.id, &fields)
                .ok_or_else(|| TestCaseError::fail(format!("unreadable entry {fields:?}")))?;
            got.push((m.kind, m.identity, m.reason));
        }
        prop_assert_eq!(got, expected, "member events");
        Ok(())
    }

    /// The stored leases and expiries, read straight from Redis, are the
    /// Roster's.
    fn compare_leases(&mut self, reply: &ScriptReply) -> Result<(), TestCaseError> {
        let keys = self.scripts.keys().clone();
        let hash: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&keys.leases)
            .query(self.redis)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let scores: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&keys.expiries)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(self.redis)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut stored = BTreeMap::new();
        for (id, score) in scores {
            let meta = &hash[&format!("h:{id}")];
            let (h, identity) = meta.split_once(' ').expect("holder and identity");
            let client: ClientInfo = serde_json::from_str(&hash[&format!("c:{id}")]).unwrap();
            prop_assert_eq!(&client.identity, identity);
            stored.insert(id, (client, ConnId(h.parse().unwrap()), score as u64));
        }
        let expected: BTreeMap<String, (ClientInfo, ConnId, u64)> = self
            .roster
            .leases()
            .map(|l| {
                (
                    l.client.id.to_string(),
                    (l.client.clone(), l.holder, l.expires_at.0),
                )
            })
            .collect();
        prop_assert_eq!(stored, expected, "leases");
        if reply.epoch.is_some() {
            prop_assert_eq!(hash.get("@seq"), Some(&reply.seq.to_string()));
        }
        Ok(())
    }
}

#[test]
fn scripts_agree_with_the_roster() {
    let redis = Redis::start();
    let conn = std::cell::RefCell::new(redis.connection().expect("connected"));
    let space = std::cell::Cell::new(0u64);
    let strategy = (
        prop::collection::vec((op(), -1_000i64..1_000), 1..60),
        prop::option::of(1..4usize),
    );
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(ops, max_clients)| {
        space.set(space.get() + 1);
        let name = SpaceName::parse(&format!("differential-{}", space.get())).unwrap();
        let mut conn = conn.borrow_mut();
        let mut run = Run {
            redis: &mut conn,
            scripts: SpaceScripts::new(&name, PublishMode::Sharded, TTL)
                .with_max_clients(max_clients)
                .with_webhooks(true),
            loaded: BTreeMap::new(),
            roster: Roster::new(),
            max_clients,
            ids: Vec::new(),
            history: History::default(),
            now: START,
            calls: 0,
            members: MemberCounts::new(),
            last_entry: "0-0".to_owned(),
        };
        for (op, jitter) in &ops {
            run.step(op, *jitter)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn every_script_loads() {
    let redis = Redis::start();
    let mut conn = redis.connection().expect("connected");
    for kind in ScriptKind::ALL {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(kind.source())
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("{kind:?} does not load: {e}"));
        assert_eq!(sha.len(), 40);
    }
}
