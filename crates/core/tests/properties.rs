//! Property tests of the presence rules.
//!
//! a) One [`Space`] driven by random joins, resumes, frames, closes and the
//!    passage of time, checked step by step against a small reference model
//!    of sections 2 to 6 and against invariants computed only from what each
//!    socket was told.
//! b) A [`Roster`] feeding two [`Hub`]s over a channel that loses, duplicates
//!    and reorders events, as a store shared by several instances does: every
//!    socket must stay consistent at every point and converge after a resync
//!    (or once everything is delivered).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use longhouse_core::{
    event_kind, ClientId, ClientInfo, CloseCode, Command, ConnId, Disconnect, Frame, Hub,
    JoinRequest, Output, Roster, RosterEvent, Sequenced, Space, SpaceConfig, SpaceName, UnixMillis,
    PING_TEXT,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

type TestResult = Result<(), TestCaseError>;

const TTL: u64 = 1000;
const MAX: usize = 64;
const SLOTS: usize = 6;
const IDENTITIES: [&str; 3] = ["ann@example.com", "bob", "cy|/*:é"];
const START: u64 = 1_700_000_000_000;
const EXPIRED: &str = r#"{"event":"expired"}"#;

/// 256 cases unless `PROPTEST_CASES` says otherwise; failures are reported,
/// not persisted (the regressions below keep the ones found so far).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// What each socket was told, checked message by message
// ---------------------------------------------------------------------------

/// One client as a socket was told about it: (identity, joinedAt).
type Seen = (String, String);

#[derive(Debug, Default)]
struct Told {
    /// The id the socket asked for (or was given as fresh).
    asked: String,
    welcomed: bool,
    /// Welcome roster + joins - leaves.
    view: BTreeMap<String, Seen>,
    /// Got `{"event":"expired"}`; the close 4000 must follow.
    expired: bool,
    closed: Option<u16>,
    messages: usize,
}

fn seen(client: &Value) -> Result<(String, Seen), TestCaseError> {
    let field = |k: &str| client[k].as_str().map(str::to_owned);
    match (field("id"), field("identity"), field("joinedAt")) {
        (Some(id), Some(identity), Some(at)) => Ok((id, (identity, at))),
        _ => Err(TestCaseError::fail(format!("bad client record {client}"))),
    }
}

fn roster_map<'a>(clients: impl IntoIterator<Item = &'a ClientInfo>) -> BTreeMap<String, Seen> {
    clients
        .into_iter()
        .map(|c| {
            (
                c.id.to_string(),
                (c.identity.clone(), c.joined_at.to_rfc3339()),
            )
        })
        .collect()
}

/// Applies one batch of outputs to what each socket was told, checking the
/// rules that hold whatever the inputs: the welcome comes first and once and
/// includes the socket itself; nobody hears about itself; no join for a
/// client already in view, no leave for one not in view (with the same
/// record); `expired` is followed by close 4000, and 4000 is preceded by
/// `expired`; nothing reaches a socket after its close.
fn observe(told: &mut BTreeMap<ConnId, Told>, outputs: &[Output]) -> TestResult {
    for output in outputs {
        match output {
            Output::Send { conn, text } => {
                let t = told.entry(*conn).or_default();
                prop_assert!(t.closed.is_none(), "{} sent {} after close", conn, text);
                prop_assert!(!t.expired, "{} sent {} after expired", conn, text);
                let v: Value = serde_json::from_str(text)
                    .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
                let own = t.asked.clone();
                if let Some(clients) = v.get("clients") {
                    prop_assert!(
                        t.messages == 0,
                        "{} welcomed after {} messages",
                        conn,
                        t.messages
                    );
                    prop_assert_eq!(v["id"].as_str(), Some(own.as_str()), "{}", text);
                    let list = clients.as_array().cloned().unwrap_or_default();
                    for c in &list {
                        let (id, s) = seen(c)?;
                        prop_assert!(t.view.insert(id, s).is_none(), "double in {}", text);
                    }
                    prop_assert!(t.view.contains_key(&own), "welcome without self {}", text);
                    t.welcomed = true;
                } else if v["event"] == "remote join" {
                    prop_assert!(t.welcomed, "{} got {} before its welcome", conn, text);
                    let (id, s) = seen(&v["client"])?;
                    prop_assert_ne!(&id, &own, "{} told about itself: {}", conn, text);
                    prop_assert!(
                        !t.view.contains_key(&id),
                        "{} told twice of {}: {}",
                        conn,
                        id,
                        text
                    );
                    t.view.insert(id, s);
                } else if v["event"] == "remote leave" {
                    prop_assert!(t.welcomed, "{} got {} before its welcome", conn, text);
                    let (id, s) = seen(&v["client"])?;
                    prop_assert_ne!(&id, &own, "{} told about itself: {}", conn, text);
                    prop_assert_eq!(
                        t.view.remove(&id),
                        Some(s),
                        "{} told of a leave it never saw join: {}",
                        conn,
                        text
                    );
                } else if &**text == EXPIRED {
                    prop_assert!(t.welcomed, "{} expired before its welcome", conn);
                    t.expired = true;
                } else {
                    prop_assert!(
                        v.get("error").is_some_and(Value::is_string),
                        "unexpected message {}",
                        text
                    );
                }
                t.messages += 1;
            }
            Output::Close { conn, code } => {
                let t = told.entry(*conn).or_default();
                prop_assert!(t.closed.is_none(), "{} closed twice", conn);
                // A welcomed socket hears `expired` exactly before its 4000.
                if t.welcomed {
                    prop_assert_eq!(
                        t.expired,
                        *code == CloseCode::LeaseExpired,
                        "{} closed {:?}, expired message: {}",
                        conn,
                        code,
                        t.expired
                    );
                }
                t.closed = Some(code.code());
                t.expired = false;
            }
        }
    }
    for (conn, t) in told.iter() {
        prop_assert!(!t.expired, "{} told expired but not closed", conn);
    }
    Ok(())
}

fn info_text(id: &str, identity: &str, at: u64) -> String {
    format!(
        r#"{{"id":"{id}","identity":"{identity}","joinedAt":"{}"}}"#,
        UnixMillis(at).to_rfc3339()
    )
}

fn fresh_id(n: u64) -> ClientId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8] = 0x5a;
    ClientId::from_random_bytes(bytes)
}

fn made_up(n: u8) -> String {
    format!("made-up_{n}")
}

fn holder_of(event: &RosterEvent) -> ConnId {
    match event {
        RosterEvent::Joined { holder, .. }
        | RosterEvent::Resumed { holder, .. }
        | RosterEvent::Updated { holder, .. }
        | RosterEvent::Left { holder, .. } => *holder,
    }
}

// ---------------------------------------------------------------------------
// a) One space against a reference model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum IdChoice {
    Fresh,
    /// An id some slot had (`back` counts from its latest), asked for by its
    /// last identity or by another one.
    Former {
        slot: usize,
        back: usize,
        same_identity: bool,
    },
    MadeUp(u8),
}

#[derive(Debug, Clone)]
enum Garbage {
    NotJson,
    UnknownAction,
    NoAction,
    PingLookalike,
}

#[derive(Debug, Clone)]
enum Op {
    /// A new socket for the slot joins; the slot's previous socket, if still
    /// open, stays open on its own.
    Join {
        slot: usize,
        identity: usize,
        id: IdChoice,
    },
    Ping(usize),
    PingWithExtras(usize),
    Garbage(usize, Garbage),
    Binary(usize),
    Oversized {
        slot: usize,
        reported_by_layer: bool,
    },
    InvalidUtf8 {
        slot: usize,
        reported_by_layer: bool,
    },
    /// A clean close report (for an open socket, or for one the server
    /// already closed).
    Clean(usize),
    Lost(usize),
    /// The clock moves on and the target ticks.
    Advance(u64),
    /// The clock moves on without a tick: the next input must sweep.
    Sleep(u64),
    /// The target closes one socket with 1011 and keeps its lease.
    Evict(usize),
    /// The process restarts: every socket closed with 1012, and a new space
    /// restored from the roster.
    Restart,
    /// The clock moves to the next deadline (-1, 0, +1 ms) and ticks.
    ToDeadline(i8),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    let id = prop_oneof![
        2 => Just(IdChoice::Fresh),
        3 => (0..SLOTS, 0..3usize, any::<bool>()).prop_map(|(slot, back, same_identity)| {
            IdChoice::Former { slot, back, same_identity }
        }),
        1 => (0..3u8).prop_map(IdChoice::MadeUp),
    ];
    let garbage = prop_oneof![
        Just(Garbage::NotJson),
        Just(Garbage::UnknownAction),
        Just(Garbage::NoAction),
        Just(Garbage::PingLookalike),
    ];
    prop_oneof![
        5 => (slot.clone(), 0..IDENTITIES.len(), id)
            .prop_map(|(slot, identity, id)| Op::Join { slot, identity, id }),
        4 => slot.clone().prop_map(Op::Ping),
        1 => slot.clone().prop_map(Op::PingWithExtras),
        1 => (slot.clone(), garbage).prop_map(|(s, g)| Op::Garbage(s, g)),
        1 => slot.clone().prop_map(Op::Binary),
        1 => (slot.clone(), any::<bool>())
            .prop_map(|(slot, reported_by_layer)| Op::Oversized { slot, reported_by_layer }),
        1 => (slot.clone(), any::<bool>())
            .prop_map(|(slot, reported_by_layer)| Op::InvalidUtf8 { slot, reported_by_layer }),
        2 => slot.clone().prop_map(Op::Clean),
        2 => slot.clone().prop_map(Op::Lost),
        3 => (0..=2 * TTL).prop_map(Op::Advance),
        1 => (0..=5u64).prop_map(Op::Advance),
        2 => (0..=2 * TTL).prop_map(Op::Sleep),
        1 => slot.prop_map(Op::Evict),
        1 => Just(Op::Restart),
        2 => (-1..=1i8).prop_map(Op::ToDeadline),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct MLease {
    identity: String,
    joined_at: u64,
    expires_at: u64,
    holder: ConnId,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Welcomed and not closed by anyone.
    Open,
    /// The server closed it; its close report has not come yet.
    ServerClosed,
    /// Its close was reported: the target has forgotten it.
    Reported,
}

#[derive(Debug, Clone)]
struct MConn {
    id: String,
    state: State,
}

#[derive(Debug, Clone, PartialEq)]
enum Exp {
    Text(String),
    Prefix(&'static str),
    Close(u16),
}

#[derive(Debug, Default)]
struct Expect {
    per_conn: BTreeMap<ConnId, Vec<Exp>>,
    events: Vec<(&'static str, String, ConnId)>,
    renewed: Vec<String>,
    /// A resume of a live lease with the same identity: (new, old).
    live_resume: Option<(ConnId, ConnId)>,
}

impl Expect {
    fn push(&mut self, conn: ConnId, e: Exp) {
        self.per_conn.entry(conn).or_default().push(e);
    }
}

struct World {
    space: Space,
    now: u64,
    seq: u64,
    next_conn: u64,
    fresh: u64,
    leases: BTreeMap<String, MLease>,
    conns: BTreeMap<ConnId, MConn>,
    slots: [Option<ConnId>; SLOTS],
    slot_ids: Vec<Vec<String>>,
    identity_of: HashMap<String, usize>,
    told: BTreeMap<ConnId, Told>,
}

impl World {
    fn new() -> Self {
        World {
            space: Space::new(SpaceConfig {
                ttl_ms: TTL,
                max_message_bytes: MAX,
                ..SpaceConfig::default()
            }),
            now: START,
            seq: 0,
            next_conn: 0,
            fresh: 0,
            leases: BTreeMap::new(),
            conns: BTreeMap::new(),
            slots: [None; SLOTS],
            slot_ids: vec![Vec::new(); SLOTS],
            identity_of: HashMap::new(),
            told: BTreeMap::new(),
        }
    }

    fn info(&self, id: &str) -> String {
        let l = &self.leases[id];
        info_text(id, &l.identity, l.joined_at)
    }

    /// Sends `text` to every open socket but the subject's.
    fn broadcast(&self, exp: &mut Expect, subject: &str, text: &str) {
        for (conn, c) in &self.conns {
            if c.state == State::Open && c.id != subject {
                exp.push(*conn, Exp::Text(text.to_owned()));
            }
        }
    }

    /// Every input first ends the leases that ran out, earliest first.
    fn sweep(&mut self, exp: &mut Expect) {
        let mut due: Vec<(u64, String)> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires_at <= self.now)
            .map(|(id, l)| (l.expires_at, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            let leave = format!(
                r#"{{"event":"remote leave","client":{},"reason":"expired"}}"#,
                self.info(&id)
            );
            let lease = self.leases.remove(&id).unwrap();
            exp.events.push(("expire", id.clone(), lease.holder));
            if let Some(c) = self.conns.get_mut(&lease.holder) {
                if c.state == State::Open {
                    c.state = State::ServerClosed;
                    exp.push(lease.holder, Exp::Text(EXPIRED.to_owned()));
                    exp.push(lease.holder, Exp::Close(4000));
                }
            }
            self.broadcast(exp, &id, &leave);
        }
    }

    /// The open socket `conn` ends its lease (a clean close or a violation).
    fn leave(&mut self, conn: ConnId, exp: &mut Expect) {
        let id = self.conns[&conn].id.clone();
        let leave = format!(
            r#"{{"event":"remote leave","client":{},"reason":"left"}}"#,
            self.info(&id)
        );
        let lease = self.leases.remove(&id).unwrap();
        assert_eq!(lease.holder, conn, "model: an open socket holds its lease");
        exp.events.push(("leave", id.clone(), conn));
        self.broadcast(exp, &id, &leave);
    }

    fn welcome(&self, id: &str) -> String {
        let mut all: Vec<(&String, &MLease)> = self.leases.iter().collect();
        all.sort_by_key(|(id, l)| (l.joined_at, (*id).clone()));
        let clients: Vec<String> = all
            .iter()
            .map(|(id, l)| info_text(id, &l.identity, l.joined_at))
            .collect();
        format!(r#"{{"id":"{id}","clients":[{}]}}"#, clients.join(","))
    }

    fn open_conn(&self, slot: usize) -> Option<ConnId> {
        self.slots[slot].filter(|c| self.conns[c].state == State::Open)
    }

    fn run(&mut self, op: &Op) -> TestResult {
        if let Op::Sleep(ms) = op {
            self.now += ms;
            return Ok(());
        }
        let mut exp = Expect::default();
        let before = self.leases.clone();
        let now = UnixMillis(self.now);
        let step = match op {
            Op::Advance(ms) => {
                self.now += ms;
                self.sweep(&mut exp);
                self.space.tick(UnixMillis(self.now))
            }
            Op::ToDeadline(offset) => {
                if let Some(next) = self.leases.values().map(|l| l.expires_at).min() {
                    let target = next.saturating_add_signed(i64::from(*offset));
                    self.now = self.now.max(target);
                }
                self.sweep(&mut exp);
                self.space.tick(UnixMillis(self.now))
            }
            Op::Sleep(_) => unreachable!(),
            Op::Evict(slot) => {
                // Not an input from a socket: no sweep.
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                if let Some(c) = self.open_conn(*slot) {
                    exp.push(c, Exp::Close(1011));
                    self.conns.get_mut(&c).unwrap().state = State::ServerClosed;
                }
                self.space
                    .evict(conn, CloseCode::InternalError, UnixMillis(self.now))
            }
            Op::Restart => {
                for (conn, c) in self.conns.iter_mut() {
                    if c.state == State::Open {
                        c.state = State::ServerClosed;
                        exp.push(*conn, Exp::Close(1012));
                    }
                }
                let step = self.space.shutdown(UnixMillis(self.now));
                let roster = self.space.roster();
                let stored = Roster::restore(roster.leases().cloned(), roster.seq());
                self.space = Space::restore(self.space.config(), stored);
                step
            }
            Op::Join { slot, identity, id } => self.join(*slot, *identity, id, &mut exp),
            Op::Ping(slot) | Op::PingWithExtras(slot) => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                self.sweep(&mut exp);
                if let Some(c) = self.open_conn(*slot) {
                    let id = self.conns[&c].id.clone();
                    self.leases.get_mut(&id).unwrap().expires_at = self.now + TTL;
                    exp.renewed.push(id);
                }
                let text = match op {
                    Op::Ping(_) => PING_TEXT.to_owned(),
                    _ => format!(r#"{{"n":{},"action":"ping","x":[true]}}"#, self.now),
                };
                self.space.frame(conn, Frame::Text(text.as_bytes()), now)
            }
            Op::Garbage(slot, kind) => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                self.sweep(&mut exp);
                let (text, error) = match kind {
                    Garbage::NotJson => ("{action: ping}", "Unparsable message sent"),
                    Garbage::UnknownAction => (r#"{"action":"dance"}"#, "Unrecognized action sent"),
                    Garbage::NoAction => (r#"{"ping":true}"#, "Unrecognized action sent"),
                    Garbage::PingLookalike => (r#"["action","ping"]"#, "Unrecognized action sent"),
                };
                if let Some(c) = self.open_conn(*slot) {
                    exp.push(c, Exp::Text(format!(r#"{{"error":"{error}"}}"#)));
                }
                self.space.frame(conn, Frame::Text(text.as_bytes()), now)
            }
            Op::Binary(slot) => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                self.sweep(&mut exp);
                if let Some(c) = self.open_conn(*slot) {
                    exp.push(
                        c,
                        Exp::Text(r#"{"error":"Binary messages are not supported"}"#.into()),
                    );
                }
                self.space.frame(conn, Frame::Binary, now)
            }
            Op::Oversized {
                slot,
                reported_by_layer,
            } => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                self.sweep(&mut exp);
                if let Some(c) = self.open_conn(*slot) {
                    exp.push(c, Exp::Prefix(r#"{"error":"Message too large"#));
                    exp.push(c, Exp::Close(1009));
                    self.conns.get_mut(&c).unwrap().state = State::ServerClosed;
                    self.leave(c, &mut exp);
                }
                let big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(MAX));
                let frame = if *reported_by_layer {
                    Frame::Oversized
                } else {
                    Frame::Text(big.as_bytes())
                };
                self.space.frame(conn, frame, now)
            }
            Op::InvalidUtf8 {
                slot,
                reported_by_layer,
            } => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                self.sweep(&mut exp);
                if let Some(c) = self.open_conn(*slot) {
                    exp.push(c, Exp::Close(1007));
                    self.conns.get_mut(&c).unwrap().state = State::ServerClosed;
                    self.leave(c, &mut exp);
                }
                let frame = if *reported_by_layer {
                    Frame::InvalidUtf8
                } else {
                    Frame::Text(b"{\"action\":\"p\xc3\x28\"}")
                };
                self.space.frame(conn, frame, now)
            }
            Op::Clean(slot) | Op::Lost(slot) => {
                let conn = self.slots[*slot].unwrap_or(ConnId(u64::MAX));
                let how = match op {
                    Op::Clean(_) => Disconnect::Clean,
                    _ => Disconnect::Lost,
                };
                self.sweep(&mut exp);
                if let Some(c) = self.open_conn(*slot) {
                    if how == Disconnect::Clean {
                        self.leave(c, &mut exp);
                    }
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.state = State::Reported;
                }
                self.space.closed(conn, how, now)
            }
        };
        let swept = !matches!(op, Op::Evict(_) | Op::Restart);
        self.check(step, exp, &before, swept.then_some(self.now))
    }

    fn join(
        &mut self,
        slot: usize,
        identity: usize,
        choice: &IdChoice,
        exp: &mut Expect,
    ) -> longhouse_core::Step {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let (id, identity, requested) = match choice {
            IdChoice::Former {
                slot: of,
                back,
                same_identity,
            } if !self.slot_ids[*of].is_empty() => {
                let ids = &self.slot_ids[*of];
                let id = ids[ids.len() - 1 - back % ids.len()].clone();
                let last = self.identity_of.get(&id).copied().unwrap_or(identity);
                let who = if *same_identity {
                    last
                } else {
                    (last + 1) % IDENTITIES.len()
                };
                (id, who, true)
            }
            IdChoice::Fresh => {
                self.fresh += 1;
                (fresh_id(self.fresh).to_string(), identity, false)
            }
            IdChoice::MadeUp(n) => (made_up(*n), identity, true),
            IdChoice::Former { .. } => (made_up(0), identity, true),
        };
        self.slots[slot] = Some(conn);
        self.slot_ids[slot].push(id.clone());
        self.told.insert(
            conn,
            Told {
                asked: id.clone(),
                ..Told::default()
            },
        );
        let name = IDENTITIES[identity];

        self.sweep(exp);
        match self.leases.get(&id).cloned() {
            Some(lease) if lease.identity == name => {
                // A live lease of the same identity: resume silently.
                let old = lease.holder;
                if let Some(c) = self.conns.get_mut(&old) {
                    if c.state == State::Open {
                        c.state = State::ServerClosed;
                        exp.push(old, Exp::Close(4001));
                    }
                }
                let l = self.leases.get_mut(&id).unwrap();
                l.holder = conn;
                l.expires_at = self.now + TTL;
                exp.events.push(("resume", id.clone(), conn));
                exp.push(conn, Exp::Text(self.welcome(&id)));
                exp.live_resume = Some((conn, old));
                self.conns.insert(
                    conn,
                    MConn {
                        id: id.clone(),
                        state: State::Open,
                    },
                );
            }
            Some(_) => {
                exp.push(
                    conn,
                    Exp::Text(r#"{"error":"Invalid id: it is held by another identity"}"#.into()),
                );
                exp.push(conn, Exp::Close(1008));
                self.conns.insert(
                    conn,
                    MConn {
                        id: id.clone(),
                        state: State::ServerClosed,
                    },
                );
            }
            None => {
                self.leases.insert(
                    id.clone(),
                    MLease {
                        identity: name.to_owned(),
                        joined_at: self.now,
                        expires_at: self.now + TTL,
                        holder: conn,
                    },
                );
                self.identity_of.insert(id.clone(), identity);
                exp.events.push(("join", id.clone(), conn));
                let join = format!(r#"{{"event":"remote join","client":{}}}"#, self.info(&id));
                self.broadcast(exp, &id, &join);
                exp.push(conn, Exp::Text(self.welcome(&id)));
                self.conns.insert(
                    conn,
                    MConn {
                        id: id.clone(),
                        state: State::Open,
                    },
                );
            }
        }

        let request = JoinRequest::new(
            SpaceName::parse("room").unwrap(),
            name,
            requested.then(|| ClientId::parse(&id).unwrap()),
        );
        let fresh = ClientId::parse(&id).unwrap();
        self.space
            .join(conn, &request, move || fresh, UnixMillis(self.now))
    }

    fn check(
        &mut self,
        step: longhouse_core::Step,
        exp: Expect,
        before: &BTreeMap<String, MLease>,
        swept_at: Option<u64>,
    ) -> TestResult {
        // Roster events, in order, with consecutive sequence numbers.
        let events: Vec<(&'static str, String, ConnId)> = step
            .events
            .iter()
            .map(|s| {
                (
                    event_kind(&s.event),
                    s.event.client().id.to_string(),
                    holder_of(&s.event),
                )
            })
            .collect();
        prop_assert_eq!(&events, &exp.events);
        for s in &step.events {
            self.seq += 1;
            prop_assert_eq!(s.seq, self.seq);
        }
        // Never early: every expiry is at or after the lease's end as
        // tracked from its join, resume and renewals.
        for s in &step.events {
            if event_kind(&s.event) == "expire" {
                let id = s.event.client().id.to_string();
                let end = before.get(&id).map(|l| l.expires_at);
                prop_assert!(
                    end.is_some_and(|end| end <= self.now),
                    "{} expired at {} but its lease ran until {:?}",
                    id,
                    self.now,
                    end
                );
            }
        }

        // Exactly the expected effects, per socket, in order.
        let mut got: BTreeMap<ConnId, Vec<String>> = BTreeMap::new();
        for o in &step.outputs {
            match o {
                Output::Send { conn, text } => got.entry(*conn).or_default().push(text.to_string()),
                Output::Close { conn, code } => got
                    .entry(*conn)
                    .or_default()
                    .push(format!("close {}", code.code())),
            }
        }
        let keys: BTreeSet<_> = got.keys().chain(exp.per_conn.keys()).copied().collect();
        for conn in keys {
            let g = got.get(&conn).cloned().unwrap_or_default();
            let e = exp.per_conn.get(&conn).cloned().unwrap_or_default();
            let matches = g.len() == e.len()
                && g.iter().zip(&e).all(|(g, e)| match e {
                    Exp::Text(t) => g == t,
                    Exp::Prefix(p) => g.starts_with(p),
                    Exp::Close(c) => *g == format!("close {c}"),
                });
            prop_assert!(matches, "{}: got {:?}, expected {:?}", conn, g, e);
        }
        let renewed: Vec<String> = step.renewed.iter().map(ToString::to_string).collect();
        prop_assert_eq!(renewed, exp.renewed);

        // A live resume is seen by nobody: the welcome and the 4001 only.
        if let Some((new, old)) = exp.live_resume {
            let swept = events.iter().any(|e| e.0 == "expire");
            if !swept {
                for o in &step.outputs {
                    let ok = match o {
                        Output::Send { conn, text } => {
                            *conn == new && text.starts_with(r#"{"id":"#)
                        }
                        Output::Close { conn, code } => {
                            *conn == old && *code == CloseCode::Replaced
                        }
                    };
                    prop_assert!(ok, "a live resume caused {:?}", o);
                }
            }
        }

        observe(&mut self.told, &step.outputs)?;
        self.invariants(swept_at)
    }

    fn invariants(&self, swept_now: Option<u64>) -> TestResult {
        let roster = self.space.roster();
        // The roster is the model's, lease for lease.
        prop_assert_eq!(roster.len(), self.leases.len());
        let mut ids = HashSet::new();
        for l in roster.leases() {
            let id = l.client.id.to_string();
            prop_assert!(ids.insert(id.clone()), "two leases for {}", id);
            let m = self.leases.get(&id);
            prop_assert!(m.is_some(), "unexpected lease {:?}", l);
            let m = m.unwrap();
            prop_assert_eq!(&l.client.identity, &m.identity);
            prop_assert_eq!(l.client.joined_at, UnixMillis(m.joined_at));
            prop_assert_eq!(l.expires_at, UnixMillis(m.expires_at));
            prop_assert_eq!(l.holder, m.holder);
            // At most one sweep late: every input sweeps.
            prop_assert!(
                swept_now.is_none_or(|now| l.expires_at.0 > now),
                "{} still present at {} though it ran out at {}",
                id,
                self.now,
                l.expires_at.0
            );
        }
        prop_assert_eq!(
            self.space.next_deadline(),
            roster.leases().map(|l| l.expires_at).min()
        );
        let open = self.conns.values().any(|c| c.state == State::Open);
        prop_assert_eq!(self.space.is_idle(), self.leases.is_empty() && !open);

        // Every open socket holds its lease, and what it was told adds up
        // to the roster: ids, identities and joinedAt.
        let truth = roster_map(roster.leases().map(|l| &l.client));
        for (conn, c) in &self.conns {
            let t = &self.told[conn];
            if c.state == State::Open {
                prop_assert_eq!(
                    roster
                        .get(&ClientId::parse(&c.id).unwrap())
                        .map(|l| l.holder),
                    Some(*conn)
                );
                prop_assert!(t.welcomed && t.closed.is_none());
                prop_assert_eq!(&t.view, &truth, "view of {}", conn);
            } else {
                prop_assert!(t.closed.is_some() || c.state == State::Reported);
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn space_follows_the_model_and_views_add_up(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.run(op)?;
        }
        // However it went, time running out empties the space.
        world.run(&Op::Advance(2 * TTL))?;
        for slot in 0..SLOTS {
            world.run(&Op::Lost(slot))?;
        }
        prop_assert!(world.space.roster().is_empty());
        prop_assert!(world.space.is_idle());
    }
}

// ---------------------------------------------------------------------------
// b) Hubs fed over an unreliable channel
// ---------------------------------------------------------------------------

const HUBS: usize = 2;

#[derive(Debug, Clone)]
enum HubIdChoice {
    Fresh,
    /// An id used before (`pick` among all of them).
    Known {
        pick: usize,
        same_identity: bool,
    },
    MadeUp(u8),
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Deliver,
    Duplicate,
    Drop,
}

#[derive(Debug, Clone)]
enum HubOp {
    Join {
        hub: usize,
        identity: usize,
        id: HubIdChoice,
    },
    Ping(usize),
    Clean(usize),
    Lost(usize),
    Violation(usize),
    /// The store's sweep after the clock moved on.
    Sweep(u64),
    /// One in-flight event reaches (or is lost on the way to) a hub.
    Deliver {
        hub: usize,
        pick: usize,
        mode: Mode,
    },
    /// Resync with a snapshot of the roster as it is now.
    Resync {
        hub: usize,
        only_if_gap: bool,
    },
    /// Fetch a snapshot for a hub now...
    Snapshot(usize),
    /// ...and resync with it later, after more events may have arrived.
    ResyncLate(usize),
}

fn hub_op() -> impl Strategy<Value = HubOp> {
    let id = prop_oneof![
        2 => Just(HubIdChoice::Fresh),
        3 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, same_identity)| HubIdChoice::Known { pick, same_identity }),
        1 => (0..3u8).prop_map(HubIdChoice::MadeUp),
    ];
    let mode = prop_oneof![
        6 => Just(Mode::Deliver),
        2 => Just(Mode::Duplicate),
        2 => Just(Mode::Drop),
    ];
    prop_oneof![
        4 => (0..HUBS, 0..IDENTITIES.len(), id)
            .prop_map(|(hub, identity, id)| HubOp::Join { hub, identity, id }),
        2 => any::<usize>().prop_map(HubOp::Ping),
        2 => any::<usize>().prop_map(HubOp::Clean),
        2 => any::<usize>().prop_map(HubOp::Lost),
        1 => any::<usize>().prop_map(HubOp::Violation),
        2 => (0..=2 * TTL).prop_map(HubOp::Sweep),
        12 => (0..HUBS, any::<usize>(), mode)
            .prop_map(|(hub, pick, mode)| HubOp::Deliver { hub, pick, mode }),
        2 => (0..HUBS, any::<bool>())
            .prop_map(|(hub, only_if_gap)| HubOp::Resync { hub, only_if_gap }),
        1 => (0..HUBS).prop_map(HubOp::Snapshot),
        1 => (0..HUBS).prop_map(HubOp::ResyncLate),
    ]
}

/// What the roster did to a socket's lease.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Expired,
    Replaced,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Channel {
    /// Events are duplicated and reordered but all arrive; no resync.
    Lossless,
    /// Events are also lost; resyncs use a snapshot taken just then.
    Lossy,
    /// As lossy, and some resyncs use a snapshot fetched earlier.
    LossyLateSnapshots,
}

type Snapshot = (Vec<(ClientInfo, ConnId)>, u64);

struct Net {
    roster: Roster,
    now: u64,
    hubs: Vec<Hub>,
    /// Events on their way to each hub.
    in_flight: Vec<Vec<Sequenced>>,
    /// Sequence numbers each hub was handed.
    received: Vec<BTreeSet<u64>>,
    /// Snapshots fetched and not yet used.
    fetched: Vec<Option<Snapshot>>,
    /// The roster after each event: `history[seq]`.
    history: Vec<BTreeMap<String, Seen>>,
    /// Every socket ever opened, with its hub.
    conns: Vec<(ConnId, usize)>,
    fates: HashMap<ConnId, Fate>,
    ids: Vec<String>,
    identity_of: HashMap<String, usize>,
    fresh: u64,
    told: BTreeMap<ConnId, Told>,
    channel: Channel,
}

impl Net {
    fn new(channel: Channel) -> Self {
        Net {
            roster: Roster::new(),
            now: START,
            hubs: (0..HUBS).map(|_| Hub::new(MAX, 0)).collect(),
            in_flight: vec![Vec::new(); HUBS],
            received: vec![BTreeSet::new(); HUBS],
            fetched: vec![None; HUBS],
            history: vec![BTreeMap::new()],
            conns: Vec::new(),
            fates: HashMap::new(),
            ids: Vec::new(),
            identity_of: HashMap::new(),
            fresh: 0,
            told: BTreeMap::new(),
            channel,
        }
    }

    fn publish(&mut self, events: Vec<Sequenced>) -> TestResult {
        for e in &events {
            prop_assert_eq!(e.seq as usize, self.history.len());
            let mut state = self.history.last().unwrap().clone();
            match &e.event {
                RosterEvent::Joined { client, .. } => {
                    // A new lease starts now, even under a former id.
                    prop_assert_eq!(client.joined_at, UnixMillis(self.now));
                    state.insert(
                        client.id.to_string(),
                        (client.identity.clone(), client.joined_at.to_rfc3339()),
                    );
                }
                RosterEvent::Resumed {
                    client, replaced, ..
                } => {
                    // A resume keeps the lease's joinedAt and identity.
                    let before = state.get(client.id.as_str()).cloned();
                    prop_assert_eq!(
                        before,
                        Some((client.identity.clone(), client.joined_at.to_rfc3339()))
                    );
                    self.fates.insert(*replaced, Fate::Replaced);
                }
                RosterEvent::Updated { client, .. } => {
                    prop_assert!(state.contains_key(client.id.as_str()));
                }
                RosterEvent::Left {
                    client,
                    holder,
                    cause,
                } => {
                    prop_assert!(state.remove(client.id.as_str()).is_some());
                    if *cause == longhouse_core::LeaveCause::Expired {
                        self.fates.insert(*holder, Fate::Expired);
                    }
                }
            }
            self.history.push(state);
        }
        for q in &mut self.in_flight {
            q.extend(events.iter().cloned());
        }
        Ok(())
    }

    fn execute(&mut self, command: Option<Command>) -> TestResult {
        match command {
            Some(Command::Renew { id, holder }) => {
                self.roster.renew(&id, holder, UnixMillis(self.now), TTL);
            }
            Some(Command::Leave { id, holder, .. }) => {
                let held = self.roster.get(&id).is_some_and(|l| l.holder == holder);
                let events: Vec<Sequenced> = self.roster.leave(&id, holder).into_iter().collect();
                // A replaced socket's close causes no leave.
                prop_assert_eq!(events.len(), usize::from(held));
                self.publish(events)?;
            }
            Some(Command::Update { .. } | Command::Relay { .. }) | None => {}
        }
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let leases = self
            .roster
            .leases()
            .map(|l| (l.client.clone(), l.holder))
            .collect();
        (leases, self.roster.seq())
    }

    fn resync(&mut self, hub: usize, (leases, seq): Snapshot) -> Vec<Output> {
        let mut out = Vec::new();
        self.hubs[hub].resync(leases, seq, &mut out);
        out
    }

    fn apply(&mut self, hub: usize, event: Sequenced, out: &mut Vec<Output>) {
        self.received[hub].insert(event.seq);
        self.hubs[hub].apply(event, out);
    }

    fn run(&mut self, op: &HubOp) -> TestResult {
        // Time moves on with every step, so no two leases share a joinedAt.
        self.now += 1;
        let lossy = self.channel != Channel::Lossless;
        let mut out = Vec::new();
        let pick_conn = |conns: &[(ConnId, usize)], pick: usize| {
            (!conns.is_empty()).then(|| conns[pick % conns.len()])
        };
        match op {
            HubOp::Join { hub, identity, id } => {
                let (id, identity) = match id {
                    HubIdChoice::Known {
                        pick,
                        same_identity,
                    } if !self.ids.is_empty() => {
                        let id = self.ids[pick % self.ids.len()].clone();
                        let last = self.identity_of[&id];
                        let who = if *same_identity {
                            last
                        } else {
                            (last + 1) % IDENTITIES.len()
                        };
                        (id, who)
                    }
                    HubIdChoice::MadeUp(n) => (made_up(*n), *identity),
                    _ => {
                        self.fresh += 1;
                        (fresh_id(self.fresh).to_string(), *identity)
                    }
                };
                let conn = ConnId(self.conns.len() as u64 + 1);
                self.conns.push((conn, *hub));
                if !self.identity_of.contains_key(&id) {
                    self.ids.push(id.clone());
                }
                self.told.insert(
                    conn,
                    Told {
                        asked: id.clone(),
                        ..Told::default()
                    },
                );
                let cid = ClientId::parse(&id).unwrap();
                self.hubs[*hub].open(conn, cid.clone());
                match self
                    .roster
                    .join(IDENTITIES[identity], cid, conn, UnixMillis(self.now), TTL)
                {
                    Ok(events) => {
                        self.identity_of.insert(id, identity);
                        // The store's reply tells the target where its join
                        // landed in the space's history.
                        let seq = events.last().expect("a join has an event").seq;
                        self.hubs[*hub].confirm(conn, seq, &mut out);
                        self.publish(events)?;
                    }
                    Err(error) => {
                        self.identity_of.entry(id).or_insert(identity);
                        self.hubs[*hub].refuse(conn, &error, &mut out);
                    }
                }
            }
            HubOp::Ping(pick) | HubOp::Violation(pick) => {
                if let Some((conn, hub)) = pick_conn(&self.conns, *pick) {
                    let frame = match op {
                        HubOp::Ping(_) => Frame::Text(PING_TEXT.as_bytes()),
                        _ => Frame::Oversized,
                    };
                    let command = self.hubs[hub].frame(conn, frame, UnixMillis(self.now), &mut out);
                    self.execute(command.command)?;
                }
            }
            HubOp::Clean(pick) | HubOp::Lost(pick) => {
                if let Some((conn, hub)) = pick_conn(&self.conns, *pick) {
                    let how = match op {
                        HubOp::Clean(_) => Disconnect::Clean,
                        _ => Disconnect::Lost,
                    };
                    let command = self.hubs[hub].closed(conn, how);
                    self.execute(command)?;
                    // The target forgets the socket: it is no longer open.
                    self.told.get_mut(&conn).unwrap().closed.get_or_insert(0);
                }
            }
            HubOp::Sweep(ms) => {
                self.now += ms;
                let events = self.roster.sweep(UnixMillis(self.now));
                self.publish(events)?;
            }
            HubOp::Deliver { hub, pick, mode } => {
                let q = &mut self.in_flight[*hub];
                if !q.is_empty() {
                    let i = pick % q.len();
                    match (mode, lossy) {
                        (Mode::Deliver, _) | (Mode::Drop, false) => {
                            let event = q.remove(i);
                            self.apply(*hub, event, &mut out);
                        }
                        (Mode::Duplicate, _) => {
                            let event = q[i].clone();
                            self.apply(*hub, event, &mut out);
                        }
                        (Mode::Drop, true) => {
                            q.remove(i);
                        }
                    }
                }
            }
            HubOp::Resync { hub, only_if_gap } => {
                // Without loss, convergence must come from delivery alone.
                if lossy && (!only_if_gap || self.hubs[*hub].has_gap()) {
                    out = self.resync(*hub, self.snapshot());
                }
            }
            HubOp::Snapshot(hub) => {
                if self.channel == Channel::LossyLateSnapshots {
                    self.fetched[*hub] = Some(self.snapshot());
                }
            }
            HubOp::ResyncLate(hub) => {
                if let Some(snapshot) = self.fetched[*hub].take() {
                    out = self.resync(*hub, snapshot);
                }
            }
        }
        self.check(&out)?;
        self.consistent()
    }

    /// Checks one batch of outputs: the message rules, leaves only for
    /// leases that really ended, and close codes that say what happened.
    fn check(&mut self, out: &[Output]) -> TestResult {
        observe(&mut self.told, out)?;
        for o in out {
            match o {
                Output::Send { conn, text } => {
                    let v: Value = serde_json::from_str(text).unwrap();
                    if v["event"] == "remote leave" {
                        let (id, s) = seen(&v["client"])?;
                        let current = self.history.last().unwrap().get(&id);
                        prop_assert!(
                            current != Some(&s),
                            "{} told {} left, but that lease is still in the roster",
                            conn,
                            id
                        );
                    }
                }
                // For a welcomed socket, the close code says what happened
                // to its lease. (A socket never welcomed cannot always be
                // told apart: its lease may have lapsed and been retaken.)
                Output::Close { conn, code } if self.told[conn].welcomed => {
                    let fate = self.fates.get(conn).copied();
                    match code {
                        CloseCode::Replaced => prop_assert_eq!(
                            fate,
                            Some(Fate::Replaced),
                            "{} closed 4001 but its lease was not taken over",
                            conn
                        ),
                        CloseCode::LeaseExpired => prop_assert!(
                            fate.is_some(),
                            "{} closed 4000 but its lease did not end",
                            conn
                        ),
                        _ => {}
                    }
                }
                Output::Close { .. } => {}
            }
        }
        Ok(())
    }

    /// At every point: each hub's view is the roster as of the last event
    /// it applied, every welcomed socket it holds was told exactly that
    /// view, and it reports a gap only when the next event is missing.
    fn consistent(&self) -> TestResult {
        for (h, hub) in self.hubs.iter().enumerate() {
            let view = roster_map(&hub.view());
            let applied = hub.applied() as usize;
            prop_assert!(applied < self.history.len());
            prop_assert_eq!(&view, &self.history[applied], "hub {} at {}", h, applied);
            if hub.has_gap() {
                prop_assert!(
                    !self.received[h].contains(&(hub.applied() + 1)),
                    "hub {} waits for {} which it was given",
                    h,
                    hub.applied() + 1
                );
            }
            for (conn, _) in hub.conns() {
                let t = &self.told[&conn];
                prop_assert!(t.closed.is_none(), "{} closed but still in its hub", conn);
                if t.welcomed {
                    prop_assert_eq!(&t.view, &view, "view of {}", conn);
                }
            }
        }
        Ok(())
    }

    /// Everyone agrees with the roster.
    fn converged(&self) -> TestResult {
        let truth = roster_map(self.roster.leases().map(|l| &l.client));
        for (h, hub) in self.hubs.iter().enumerate() {
            prop_assert_eq!(&roster_map(&hub.view()), &truth, "view of hub {}", h);
            for (conn, _) in hub.conns() {
                let t = &self.told[&conn];
                if t.welcomed {
                    prop_assert_eq!(&t.view, &truth, "view of {}", conn);
                    let lease = self.roster.get(&ClientId::parse(&t.asked).unwrap());
                    prop_assert_eq!(
                        lease.map(|l| l.holder),
                        Some(conn),
                        "{} is open and welcomed but does not hold {}",
                        conn,
                        t.asked
                    );
                }
            }
        }
        // Every lease whose holder is still connected has been welcomed.
        for lease in self.roster.leases() {
            let Some(&(_, h)) = self.conns.iter().find(|(c, _)| *c == lease.holder) else {
                continue;
            };
            if self.hubs[h].client_of(lease.holder).is_some() {
                prop_assert!(
                    self.told[&lease.holder].welcomed,
                    "{} holds {} but was never welcomed",
                    lease.holder,
                    lease.client.id
                );
            }
        }
        Ok(())
    }

    /// Sockets a hub still holds that were never welcomed and hold no lease:
    /// nothing will ever welcome or close them.
    fn stranded(&self) -> Vec<(ConnId, String)> {
        let mut stranded = Vec::new();
        for hub in &self.hubs {
            for (conn, id) in hub.conns() {
                let holds = self.roster.get(id).is_some_and(|l| l.holder == conn);
                if !self.told[&conn].welcomed && !holds {
                    stranded.push((conn, id.to_string()));
                }
            }
        }
        stranded
    }

    /// The end of a lossy run: a resync of every hub with the roster as it
    /// is, after which whatever was still on its way changes nothing.
    fn final_resync(&mut self) -> TestResult {
        for hub in 0..HUBS {
            let out = self.resync(hub, self.snapshot());
            self.check(&out)?;
            self.consistent()?;
        }
        for hub in 0..HUBS {
            let mut out = Vec::new();
            for event in std::mem::take(&mut self.in_flight[hub]) {
                self.apply(hub, event, &mut out);
            }
            prop_assert!(out.is_empty(), "stale events after resync: {:?}", out);
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config())]

    /// Loss, duplication and reordering, with resyncs along the way and at
    /// the end: everyone agrees with the roster.
    #[test]
    fn hubs_converge_after_resync(ops in prop::collection::vec(hub_op(), 1..100)) {
        let mut net = Net::new(Channel::Lossy);
        for op in &ops {
            net.run(op)?;
        }
        net.final_resync()?;
        net.converged()?;
    }

    /// As above, but a snapshot may be fetched well before the resync that
    /// uses it, while events keep arriving (a slow store).
    #[test]
    fn hubs_converge_with_late_snapshots(ops in prop::collection::vec(hub_op(), 1..100)) {
        let mut net = Net::new(Channel::LossyLateSnapshots);
        for op in &ops {
            net.run(op)?;
        }
        net.final_resync()?;
        net.converged()?;
    }

    /// Duplication and reordering only, and no resync: once everything is
    /// delivered, everyone agrees without a final resync, no socket waits
    /// for a welcome, and a resync then changes nothing.
    #[test]
    fn hubs_converge_once_everything_is_delivered(ops in prop::collection::vec(hub_op(), 1..100)) {
        let mut net = Net::new(Channel::Lossless);
        for op in &ops {
            net.run(op)?;
        }
        for hub in 0..HUBS {
            while !net.in_flight[hub].is_empty() {
                net.run(&HubOp::Deliver { hub, pick: 0, mode: Mode::Deliver })?;
            }
            prop_assert!(!net.hubs[hub].has_gap());
        }
        net.converged()?;
        prop_assert!(net.stranded().is_empty(), "stranded sockets {:?}", net.stranded());
        for hub in 0..HUBS {
            let out = net.resync(hub, net.snapshot());
            prop_assert!(out.is_empty(), "resync of an up-to-date hub said {:?}", out);
        }
    }

    /// After a resync, no socket is left waiting forever: every socket a hub
    /// holds is welcomed (and holds its lease) or has been closed.
    #[test]
    fn no_socket_is_stranded_after_resync(ops in prop::collection::vec(hub_op(), 1..100)) {
        let mut net = Net::new(Channel::Lossy);
        for op in &ops {
            net.run(op)?;
        }
        for hub in 0..HUBS {
            let out = net.resync(hub, net.snapshot());
            observe(&mut net.told, &out)?;
        }
        prop_assert!(net.stranded().is_empty(), "stranded sockets {:?}", net.stranded());
    }
}

// ---------------------------------------------------------------------------
// Regressions found by the properties, as plain tests
// ---------------------------------------------------------------------------

fn cid(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

/// A lease ends and a new lease with the same id starts (another identity,
/// a later joinedAt) while a hub hears neither event; the resync must tell
/// the hub's sockets the old client left and the new one joined.
#[test]
fn resync_notices_a_lease_replaced_under_the_same_id() {
    let mut roster = Roster::new();
    let mut hub = Hub::new(MAX, 0);
    let mut told = BTreeMap::new();
    let mut out = Vec::new();
    let t = UnixMillis(START);

    hub.open(ConnId(1), cid("watcher"));
    told.insert(
        ConnId(1),
        Told {
            asked: "watcher".into(),
            ..Told::default()
        },
    );
    for e in roster.join("w", cid("watcher"), ConnId(1), t, TTL).unwrap() {
        hub.apply(e, &mut out);
    }
    // x joins on another instance; this hub hears it.
    for e in roster.join("old", cid("x"), ConnId(2), t, TTL).unwrap() {
        hub.apply(e, &mut out);
    }
    // x leaves and someone else joins as x: this hub hears nothing.
    let _lost = roster.leave(&cid("x"), ConnId(2)).unwrap();
    let _lost = roster
        .join("new", cid("x"), ConnId(3), t.plus(5), TTL)
        .unwrap();
    let snapshot: Vec<_> = roster
        .leases()
        .map(|l| (l.client.clone(), l.holder))
        .collect();
    hub.resync(snapshot, roster.seq(), &mut out);
    observe(&mut told, &out).unwrap();

    let truth = roster_map(roster.leases().map(|l| &l.client));
    assert_eq!(
        roster_map(&hub.view()),
        truth,
        "the hub's own view keeps the old x"
    );
    assert_eq!(told[&ConnId(1)].view, truth, "the watcher was not told");
}

/// A socket's join event and the leave that ends its lease are both lost;
/// the resync shows the lease gone, and the socket is neither welcomed nor
/// closed, ever.
#[test]
fn resync_closes_a_joining_socket_whose_lease_is_gone() {
    let mut roster = Roster::new();
    let mut hub = Hub::new(MAX, 0);
    let mut out = Vec::new();
    let t = UnixMillis(START);

    hub.open(ConnId(1), cid("x"));
    let lost = roster.join("a", cid("x"), ConnId(1), t, TTL).unwrap();
    hub.confirm(ConnId(1), lost[0].seq, &mut Vec::new());
    let _lost = roster.sweep(t.plus(TTL));
    hub.resync(Vec::new(), roster.seq(), &mut out);
    assert!(
        hub.client_of(ConnId(1)).is_none(),
        "the socket is still held, waiting for a welcome that cannot come; outputs: {out:?}"
    );
    assert!(
        out.contains(&Output::Close {
            conn: ConnId(1),
            code: CloseCode::LeaseExpired
        }),
        "the socket was never closed 4000: {out:?}"
    );
}

/// A hub applies an event, then resyncs with a snapshot fetched before that
/// event: it must not roll its view back (telling sockets that a present
/// client left) nor forget the events it already had.
#[test]
fn resync_with_a_snapshot_older_than_the_hub_changes_nothing() {
    let mut roster = Roster::new();
    let mut hub = Hub::new(MAX, 0);
    let mut told = BTreeMap::new();
    let mut out = Vec::new();
    let t = UnixMillis(START);

    hub.open(ConnId(1), cid("watcher"));
    told.insert(
        ConnId(1),
        Told {
            asked: "watcher".into(),
            ..Told::default()
        },
    );
    for e in roster.join("w", cid("watcher"), ConnId(1), t, TTL).unwrap() {
        hub.apply(e, &mut out);
    }
    let old: Vec<_> = roster
        .leases()
        .map(|l| (l.client.clone(), l.holder))
        .collect();
    let old_seq = roster.seq();
    for e in roster
        .join("x", cid("x"), ConnId(2), t.plus(1), TTL)
        .unwrap()
    {
        hub.apply(e, &mut out);
    }
    observe(&mut told, &out).unwrap();
    out.clear();

    hub.resync(old, old_seq, &mut out);
    assert_eq!(out, vec![], "x never left, yet the watcher is told so");
    assert_eq!(
        hub.applied(),
        roster.seq(),
        "the hub forgot an applied event"
    );
    // The next event applies at once rather than waiting behind a gap.
    for e in roster
        .join("y", cid("y"), ConnId(3), t.plus(2), TTL)
        .unwrap()
    {
        hub.apply(e, &mut out);
    }
    assert!(!hub.has_gap());
    assert_eq!(
        roster_map(&hub.view()),
        roster_map(roster.leases().map(|l| &l.client))
    );
}

/// A socket joins (its join event not yet heard) and the same client
/// resumes its lease on a newer socket before the hub catches up; after a
/// resync the older socket must be closed 4001 like any replaced socket,
/// not left waiting for a welcome that cannot come.
#[test]
fn resync_closes_a_joining_socket_whose_lease_was_resumed_elsewhere() {
    let mut roster = Roster::new();
    let mut hub = Hub::new(MAX, 0);
    let mut out = Vec::new();
    let t = UnixMillis(START);

    hub.open(ConnId(1), cid("x"));
    let lost = roster.join("a", cid("x"), ConnId(1), t, TTL).unwrap();
    hub.confirm(ConnId(1), lost[0].seq, &mut Vec::new());
    let _lost = roster
        .join("a", cid("x"), ConnId(2), t.plus(1), TTL)
        .unwrap();
    let snapshot: Vec<_> = roster
        .leases()
        .map(|l| (l.client.clone(), l.holder))
        .collect();
    hub.resync(snapshot, roster.seq(), &mut out);
    assert!(
        out.contains(&Output::Close {
            conn: ConnId(1),
            code: CloseCode::Replaced
        }),
        "the replaced joining socket was not closed: {out:?}"
    );
    assert!(hub.client_of(ConnId(1)).is_none());
}
