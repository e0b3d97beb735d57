//! Rules of sections 2 to 8 of PROTOCOL.md, checked one by one on a single
//! in-process [`Space`] (the in-memory store and the Durable Object).
//!
//! Every test drives a [`Harness`] that owns the space and a clock, hands out
//! connection ids, and records what each socket was sent and how it was
//! closed. The harness itself enforces one rule on every step: a socket the
//! server closed never receives anything afterwards.

use std::collections::HashMap;

use longhouse_core::{
    event_kind, refuse_join, ClientId, CloseCode, ConnId, Disconnect, Frame, JoinRequest,
    LeaveCause, Output, Roster, RosterEvent, Space, SpaceConfig, SpaceName, Step, UnixMillis,
    PING_TEXT,
};
use serde_json::Value;

/// 2015-06-05T21:09:26.480Z, the first `joinedAt` of the README example.
const T0: u64 = 1_433_538_566_480;
/// The default `PRESENCE_TTL`.
const TTL: u64 = 60_000;
/// The default `MAX_MESSAGE_BYTES`.
const MAX: usize = 4096;
const EXPIRED: &str = r#"{"event":"expired"}"#;

struct Harness {
    space: Space,
    now: u64,
    next_conn: u64,
    next_fresh: u8,
    /// What each socket received and has not been looked at yet.
    inbox: HashMap<ConnId, Vec<String>>,
    /// Everything each socket ever received.
    history: HashMap<ConnId, Vec<String>>,
    /// How the server closed each socket.
    closes: HashMap<ConnId, CloseCode>,
    /// The last step, for checks on its events and outputs.
    last: Step,
}

impl Harness {
    fn new() -> Self {
        Self::around(Space::new(SpaceConfig::default()))
    }

    fn with(ttl_ms: u64, max_message_bytes: usize) -> Self {
        Self::around(Space::new(SpaceConfig {
            ttl_ms,
            max_message_bytes,
            ..SpaceConfig::default()
        }))
    }

    fn around(space: Space) -> Self {
        Harness {
            space,
            now: T0,
            next_conn: 0,
            next_fresh: 0,
            inbox: HashMap::new(),
            history: HashMap::new(),
            closes: HashMap::new(),
            last: Step::default(),
        }
    }

    fn request(identity: &str, id: Option<&str>) -> JoinRequest {
        JoinRequest::new(
            SpaceName::parse("room").unwrap(),
            identity,
            id.map(|s| ClientId::parse(s).unwrap()),
        )
    }

    fn new_conn(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    /// A new socket joins as `identity`, resuming or requesting `id`.
    fn join(&mut self, identity: &str, id: Option<&str>) -> ConnId {
        let conn = self.new_conn();
        self.join_on(conn, identity, id);
        conn
    }

    fn join_on(&mut self, conn: ConnId, identity: &str, id: Option<&str>) {
        self.next_fresh += 1;
        let seed = self.next_fresh;
        let request = Self::request(identity, id);
        let step = self.space.join(
            conn,
            &request,
            || ClientId::from_random_bytes([seed; 16]),
            UnixMillis(self.now),
        );
        self.record(step);
    }

    fn frame(&mut self, conn: ConnId, frame: Frame<'_>) {
        let step = self.space.frame(conn, frame, UnixMillis(self.now));
        self.record(step);
    }

    fn text(&mut self, conn: ConnId, text: &str) {
        self.frame(conn, Frame::Text(text.as_bytes()));
    }

    fn ping(&mut self, conn: ConnId) {
        self.text(conn, PING_TEXT);
    }

    fn close(&mut self, conn: ConnId, how: Disconnect) {
        let step = self.space.closed(conn, how, UnixMillis(self.now));
        self.record(step);
    }

    /// Moves the clock to `t` (absolute) and ticks.
    fn tick_at(&mut self, t: u64) {
        self.now = t;
        let step = self.space.tick(UnixMillis(t));
        self.record(step);
    }

    fn record(&mut self, step: Step) {
        for output in &step.outputs {
            match output {
                Output::Send { conn, text } => {
                    assert!(
                        !self.closes.contains_key(conn),
                        "{conn} was sent {text} after the server closed it"
                    );
                    self.inbox.entry(*conn).or_default().push(text.to_string());
                    self.history
                        .entry(*conn)
                        .or_default()
                        .push(text.to_string());
                }
                Output::Close { conn, code } => {
                    let before = self.closes.insert(*conn, *code);
                    assert!(
                        before.is_none(),
                        "{conn} closed twice: {before:?}, {code:?}"
                    );
                }
            }
        }
        self.last = step;
    }

    /// Drains what `conn` received since the last look.
    fn take(&mut self, conn: ConnId) -> Vec<String> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    /// Nothing unread for anyone.
    fn assert_all_read(&self) {
        let unread: Vec<_> = self.inbox.iter().filter(|(_, v)| !v.is_empty()).collect();
        assert!(unread.is_empty(), "unread messages: {unread:?}");
    }

    fn closed_with(&self, conn: ConnId) -> Option<u16> {
        self.closes.get(&conn).map(|c| c.code())
    }

    /// The id the socket was welcomed with.
    fn id_of(&self, conn: ConnId) -> String {
        let first = &self.history[&conn][0];
        let v: Value = serde_json::from_str(first).unwrap();
        v["id"]
            .as_str()
            .expect("first message is a welcome")
            .to_owned()
    }

    fn lease(&self, id: &str) -> Option<&longhouse_core::Lease> {
        self.space.roster().get(&ClientId::parse(id).unwrap())
    }

    fn last_kinds(&self) -> Vec<&'static str> {
        self.last
            .events
            .iter()
            .map(|e| event_kind(&e.event))
            .collect()
    }

    /// (id, identity, joinedAt ms) of every lease, sorted by join order.
    fn roster(&self) -> Vec<(String, String, u64)> {
        let mut v: Vec<_> = self
            .space
            .roster()
            .leases()
            .map(|l| {
                (
                    l.client.id.to_string(),
                    l.client.identity.clone(),
                    l.client.joined_at.0,
                )
            })
            .collect();
        v.sort_by_key(|(id, _, at)| (*at, id.clone()));
        v
    }
}

fn iso(ms: u64) -> String {
    UnixMillis(ms).to_rfc3339()
}

/// A client record exactly as section 2 shows it.
fn info(id: &str, identity: &str, at: u64) -> String {
    format!(
        r#"{{"id":"{id}","identity":"{identity}","joinedAt":"{}"}}"#,
        iso(at)
    )
}

fn welcome(id: &str, clients: &[String]) -> String {
    format!(r#"{{"id":"{id}","clients":[{}]}}"#, clients.join(","))
}

fn remote_join(client: &str) -> String {
    format!(r#"{{"event":"remote join","client":{client}}}"#)
}

fn remote_leave(client: &str) -> String {
    format!(r#"{{"event":"remote leave","client":{client},"reason":"left"}}"#)
}

fn remote_expired(client: &str) -> String {
    format!(r#"{{"event":"remote leave","client":{client},"reason":"expired"}}"#)
}

fn error(message: &str) -> String {
    format!(r#"{{"error":"{message}"}}"#)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

// ---------------------------------------------------------------------------
// Section 2: the welcome
// ---------------------------------------------------------------------------

#[test]
fn welcome_is_byte_for_byte_the_readme_example() {
    let mut h = Harness::new();
    let a = h.join("a@example.com", Some("3f0c"));
    h.tick_at(T0 + 2013);
    let b = h.join("b@example.com", Some("9a11"));
    let a_info =
        r#"{"id":"3f0c","identity":"a@example.com","joinedAt":"2015-06-05T21:09:26.480Z"}"#;
    let b_info =
        r#"{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"}"#;
    assert_eq!(
        h.take(a),
        vec![
            format!(r#"{{"id":"3f0c","clients":[{a_info}]}}"#),
            format!(r#"{{"event":"remote join","client":{b_info}}}"#),
        ]
    );
    assert_eq!(
        h.take(b),
        vec![format!(r#"{{"id":"9a11","clients":[{a_info},{b_info}]}}"#)]
    );
}

#[test]
fn welcome_is_first_includes_self_and_lists_in_join_order() {
    let mut h = Harness::new();
    let ids = ["zed", "mid", "abc", "yy"];
    let mut conns = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        h.tick_at(T0 + 10 * i as u64);
        let conn = h.join(&format!("user{i}"), Some(id));
        conns.push(conn);
        let msgs = h.take(conn);
        assert_eq!(msgs.len(), 1, "only the welcome on joining: {msgs:?}");
        let expected: Vec<String> = ids[..=i]
            .iter()
            .enumerate()
            .map(|(j, id)| info(id, &format!("user{j}"), T0 + 10 * j as u64))
            .collect();
        assert_eq!(msgs[0], welcome(id, &expected));
    }
    // Everyone's first message is their welcome, then only events.
    for (i, conn) in conns.iter().enumerate() {
        let history = &h.history[conn];
        assert!(json(&history[0])["clients"].is_array());
        assert_eq!(history.len(), 1 + (ids.len() - 1 - i));
        for m in &history[1..] {
            assert_eq!(json(m)["event"], "remote join");
        }
    }
}

#[test]
fn fresh_id_is_a_lowercase_uuid_v4_and_the_welcome_names_it() {
    let mut h = Harness::new();
    let a = h.join("a", None);
    let id = h.id_of(a);
    assert_eq!(id, ClientId::from_random_bytes([1; 16]).as_str());
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
    assert_eq!(id, id.to_lowercase());
    let w = json(&h.take(a)[0]);
    assert_eq!(w["clients"][0]["id"], id.as_str());
    assert_eq!(w["clients"][0]["identity"], "a");
    assert_eq!(w["clients"][0]["joinedAt"], "2015-06-05T21:09:26.480Z");
    // Two fresh joins get two different ids.
    let b = h.join("a", None);
    assert_ne!(h.id_of(b), id);
    assert_eq!(h.space.roster().len(), 2);
}

#[test]
fn a_requested_id_does_not_draw_a_fresh_one() {
    let mut space = Space::new(SpaceConfig::default());
    let step = space.join(
        ConnId(1),
        &Harness::request("a", Some("mine")),
        || panic!("fresh id drawn although one was requested"),
        UnixMillis(T0),
    );
    assert_eq!(
        step.outputs,
        vec![Output::Send {
            conn: ConnId(1),
            text: welcome("mine", &[info("mine", "a", T0)]).into(),
        }]
    );
}

#[test]
fn opaque_identities_round_trip_in_welcome_and_events() {
    let odd = "a|b/c*d:Zoë 🦀 \"q\" \\ <x>";
    let mut h = Harness::new();
    let a = h.join("plain", Some("a"));
    let b = h.join(odd, Some("b"));
    let w = json(&h.take(b)[0]);
    assert_eq!(w["clients"][1]["identity"], odd);
    let j = json(&h.take(a)[1]);
    assert_eq!(j["client"]["identity"], odd);
    h.close(b, Disconnect::Clean);
    let l = json(&h.take(a)[0]);
    assert_eq!(l["event"], "remote leave");
    assert_eq!(l["client"]["identity"], odd);
}

// ---------------------------------------------------------------------------
// Section 3: events to others
// ---------------------------------------------------------------------------

#[test]
fn remote_join_goes_to_every_other_client_never_to_the_subject() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + 5);
    let c = h.join("c", Some("c"));
    let event = remote_join(&info("c", "c", T0 + 5));
    assert_eq!(h.take(a), vec![event.clone()]);
    assert_eq!(h.take(b), vec![event]);
    let mine = h.take(c);
    assert_eq!(mine.len(), 1);
    assert!(!mine[0].contains("remote"));
    assert_eq!(h.last_kinds(), vec!["join"]);
    h.assert_all_read();
}

#[test]
fn remote_leave_goes_to_every_other_client_never_to_the_subject() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    let c = h.join("c", Some("c"));
    for conn in [a, b, c] {
        h.take(conn);
    }
    h.close(b, Disconnect::Clean);
    let event = remote_leave(&info("b", "b", T0));
    assert_eq!(h.take(a), vec![event.clone()]);
    assert_eq!(h.take(c), vec![event]);
    assert_eq!(h.take(b), Vec::<String>::new());
    // The client closed the socket itself: the server does not close it.
    assert_eq!(h.closed_with(b), None);
    h.assert_all_read();
}

#[test]
fn a_lone_client_joining_and_leaving_is_told_nothing_about_itself() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    assert_eq!(h.take(a), vec![welcome("a", &[info("a", "a", T0)])]);
    h.ping(a);
    h.text(a, "nonsense");
    h.close(a, Disconnect::Clean);
    let history = &h.history[&a];
    assert!(history.iter().all(|m| !m.contains("remote")), "{history:?}");
    assert_eq!(h.last_kinds(), vec!["leave"]);
    assert!(h.last.outputs.is_empty());
}

// ---------------------------------------------------------------------------
// Section 4: leases
// ---------------------------------------------------------------------------

#[test]
fn clean_close_ends_the_lease_at_once() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + 1);
    h.ping(b);
    h.close(a, Disconnect::Clean);
    // In the very step of the close, not at expiry.
    assert_eq!(h.take(b), vec![remote_leave(&info("a", "a", T0))]);
    assert!(h.lease("a").is_none());
    assert_eq!(h.last.events.len(), 1);
    assert!(matches!(
        &h.last.events[0].event,
        RosterEvent::Left {
            cause: LeaveCause::Closed,
            holder,
            client,
        } if *holder == a && client.id.as_str() == "a"
    ));
    // Nothing more at what would have been the expiry.
    h.tick_at(T0 + TTL);
    assert!(h.last.outputs.is_empty());
    assert!(h.last.events.is_empty());
}

#[test]
fn lost_connection_keeps_the_lease_until_it_runs_out() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + 100);
    h.ping(b);
    h.close(a, Disconnect::Lost);
    assert!(h.last.outputs.is_empty(), "{:?}", h.last.outputs);
    assert!(h.last.events.is_empty());
    let lease = h.lease("a").expect("lease kept");
    assert_eq!(lease.expires_at, UnixMillis(T0 + TTL));
    assert_eq!(lease.holder, a);
    h.tick_at(T0 + TTL - 1);
    assert!(h.last.outputs.is_empty());
    assert!(h.lease("a").is_some());
    h.tick_at(T0 + TTL);
    assert_eq!(h.take(b), vec![remote_expired(&info("a", "a", T0))]);
    assert_eq!(h.last_kinds(), vec!["expire"]);
    // The lost socket is gone: nothing is sent or closed for it.
    assert_eq!(h.take(a), Vec::<String>::new());
    assert_eq!(h.closed_with(a), None);
    assert!(h.lease("a").is_none());
}

#[test]
fn expiry_tells_an_open_holder_then_closes_4000_and_tells_others() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.tick_at(T0 + 1000);
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + TTL);
    // The holder: the expired event, then the close, in that order.
    let to_a: Vec<&Output> = h
        .last
        .outputs
        .iter()
        .filter(
            |o| matches!(o, Output::Send { conn, .. } | Output::Close { conn, .. } if *conn == a),
        )
        .collect();
    assert_eq!(
        to_a,
        vec![
            &Output::Send {
                conn: a,
                text: EXPIRED.into()
            },
            &Output::Close {
                conn: a,
                code: CloseCode::LeaseExpired
            },
        ]
    );
    assert_eq!(h.closed_with(a), Some(4000));
    assert_eq!(h.take(b), vec![remote_expired(&info("a", "a", T0))]);
    // The holder's close report afterwards changes nothing.
    h.close(a, Disconnect::Clean);
    assert!(h.last.outputs.is_empty());
    assert!(h.last.events.is_empty());
    assert!(h.lease("b").is_some());
    // b's own lease runs out later, on its own time.
    h.tick_at(T0 + 1000 + TTL - 1);
    assert!(h.last.outputs.is_empty());
    h.tick_at(T0 + 1000 + TTL);
    assert_eq!(h.take(b), vec![EXPIRED.to_owned()]);
    assert_eq!(h.closed_with(b), Some(4000));
}

#[test]
fn ping_renews_and_gets_no_answer() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + TTL - 1);
    h.ping(a);
    assert!(h.last.outputs.is_empty(), "nothing is sent for a ping");
    assert!(h.last.events.is_empty(), "a renewal is no event");
    assert_eq!(h.last.renewed, vec![ClientId::parse("a").unwrap()]);
    assert_eq!(
        h.lease("a").unwrap().expires_at,
        UnixMillis(T0 + TTL - 1 + TTL)
    );
    // b did not ping and goes; a stays.
    h.tick_at(T0 + TTL);
    assert_eq!(h.take(a), vec![remote_expired(&info("b", "b", T0))]);
    assert_eq!(h.closed_with(b), Some(4000));
    h.tick_at(T0 + 2 * TTL - 2);
    assert!(h.lease("a").is_some());
    assert!(h.last.outputs.is_empty());
    h.tick_at(T0 + 2 * TTL - 1);
    assert_eq!(h.closed_with(a), Some(4000));
}

#[test]
fn ping_with_extra_fields_renews() {
    for text in [
        r#"{"action":"ping","extra":1}"#,
        r#"{"seq":[1,2,{"a":null}],"action":"ping"}"#,
        " {\"action\" : \"ping\"}\n",
    ] {
        let mut h = Harness::new();
        let a = h.join("a", Some("a"));
        h.take(a);
        h.tick_at(T0 + 500);
        h.text(a, text);
        assert!(h.last.outputs.is_empty(), "{text}: {:?}", h.last.outputs);
        assert_eq!(h.last.renewed.len(), 1, "{text}");
        assert_eq!(
            h.lease("a").unwrap().expires_at,
            UnixMillis(T0 + 500 + TTL),
            "{text}"
        );
    }
}

#[test]
fn no_other_message_renews() {
    let cases: [(&[u8], &str); 8] = [
        (br#"{"action":"pong"}"#, "Unrecognized action sent"),
        (br#"{"action":"PING"}"#, "Unrecognized action sent"),
        (br#"{"action":["ping"]}"#, "Unrecognized action sent"),
        (br#"{"ping":true}"#, "Unrecognized action sent"),
        (br#""ping""#, "Unrecognized action sent"),
        (b"ping", "Unparsable message sent"),
        (b"", "Unparsable message sent"),
        (br#"{"action":"ping""#, "Unparsable message sent"),
    ];
    for (bytes, message) in cases {
        let mut h = Harness::new();
        let a = h.join("a", Some("a"));
        h.take(a);
        h.tick_at(T0 + 500);
        h.frame(a, Frame::Text(bytes));
        assert_eq!(h.take(a), vec![error(message)], "{bytes:?}");
        assert!(h.last.renewed.is_empty());
        assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + TTL));
        h.tick_at(T0 + TTL);
        assert_eq!(h.closed_with(a), Some(4000), "{bytes:?}");
    }
    // Nor does a binary frame.
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.tick_at(T0 + 500);
    h.frame(a, Frame::Binary);
    assert!(h.last.renewed.is_empty());
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + TTL));
}

#[test]
fn expiry_is_never_early_and_every_lease_goes_on_its_own_time() {
    let mut h = Harness::with(1000, MAX);
    let joins = [(0, "a"), (1, "b"), (1, "c"), (400, "d"), (999, "e")];
    let mut conns = HashMap::new();
    for (at, id) in joins {
        h.tick_at(T0 + at);
        conns.insert(id, h.join(id, Some(id)));
    }
    let watcher = h.join("w", Some("w"));
    h.take(watcher);
    let mut present: Vec<&str> = joins.iter().map(|(_, id)| *id).collect();
    for (at, id) in joins {
        let expiry = T0 + at + 1000;
        if h.now < expiry - 1 {
            h.tick_at(expiry - 1);
            for gone in &present {
                assert!(h.lease(gone).is_some(), "{gone} early at {}", h.now - T0);
            }
        }
        h.tick_at(expiry);
        assert!(h.lease(id).is_none(), "{id} not expired at {}", h.now - T0);
        present.retain(|p| *p != id);
        assert_eq!(h.closed_with(conns[id]), Some(4000));
    }
    // The watcher, who joined last, saw the leaves in expiry order.
    let leaves: Vec<String> = h
        .take(watcher)
        .iter()
        .map(|m| json(m))
        .filter(|m| m["event"] == "remote leave")
        .map(|m| m["client"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(leaves, ["a", "b", "c", "d", "e"]);
}

#[test]
fn any_input_sweeps_not_only_ticks() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    h.tick_at(T0 + 500);
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    // No tick: a frame from b at a's expiry time sweeps a first.
    h.now = T0 + 1000;
    h.text(b, "garbage");
    assert_eq!(h.closed_with(a), Some(4000));
    assert_eq!(
        h.take(b),
        vec![
            remote_expired(&info("a", "a", T0)),
            error("Unparsable message sent"),
        ]
    );
    // A join after b's expiry, without a tick, does not see b.
    h.now = T0 + 1500;
    let c = h.join("c", Some("c"));
    assert_eq!(h.take(c), vec![welcome("c", &[info("c", "c", T0 + 1500)])]);
    assert_eq!(h.closed_with(b), Some(4000));
    // A close report sweeps too.
    h.now = T0 + 2500;
    h.close(ConnId(999), Disconnect::Lost);
    assert_eq!(h.last_kinds(), vec!["expire"]);
    assert!(h.space.roster().is_empty());
}

#[test]
fn a_ping_at_the_expiry_instant_is_too_late() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.tick_at(T0 + 999);
    h.ping(a); // just in time: a now runs until T0 + 1999
    assert_eq!(h.last.renewed.len(), 1);
    // No tick in between: b's ping arrives at the instant its lease ends.
    h.now = T0 + 1000;
    h.ping(b);
    assert!(h.last.renewed.is_empty());
    assert_eq!(h.take(b), vec![EXPIRED.to_owned()]);
    assert_eq!(h.closed_with(b), Some(4000));
    assert_eq!(h.take(a), vec![remote_expired(&info("b", "b", T0))]);
    h.now = T0 + 1999;
    h.ping(a);
    assert!(h.last.renewed.is_empty());
    assert_eq!(h.take(a), vec![EXPIRED.to_owned()]);
    assert_eq!(h.closed_with(a), Some(4000));
    assert!(h.space.roster().is_empty());
}

#[test]
fn next_deadline_tracks_the_earliest_lease() {
    let mut h = Harness::with(1000, MAX);
    assert_eq!(h.space.next_deadline(), None);
    let a = h.join("a", Some("a"));
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1000)));
    h.tick_at(T0 + 300);
    let b = h.join("b", Some("b"));
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1000)));
    h.tick_at(T0 + 600);
    h.ping(a); // a now until 1600, b until 1300
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1300)));
    h.close(b, Disconnect::Lost); // lease kept
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1300)));
    h.tick_at(T0 + 1300);
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1600)));
    h.close(a, Disconnect::Clean);
    assert_eq!(h.space.next_deadline(), None);
}

#[test]
fn a_custom_ttl_is_honoured() {
    let mut h = Harness::with(5, MAX);
    let a = h.join("a", Some("a"));
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 5));
    h.tick_at(T0 + 4);
    assert!(h.closed_with(a).is_none());
    h.tick_at(T0 + 5);
    assert_eq!(h.closed_with(a), Some(4000));
}

// ---------------------------------------------------------------------------
// Section 5: resuming with a former id
// ---------------------------------------------------------------------------

#[test]
fn resume_with_old_socket_open_replaces_it_silently() {
    let mut h = Harness::new();
    let a1 = h.join("a", Some("a"));
    h.tick_at(T0 + 10);
    let b = h.join("b", Some("b"));
    h.take(a1);
    h.take(b);
    h.tick_at(T0 + 5000);
    let a2 = h.join("a", Some("a"));
    // Exactly two effects: close 4001 for the old socket, welcome for the new.
    assert_eq!(
        h.last.outputs,
        vec![
            Output::Close {
                conn: a1,
                code: CloseCode::Replaced
            },
            Output::Send {
                conn: a2,
                text: welcome("a", &[info("a", "a", T0), info("b", "b", T0 + 10)]).into(),
            },
        ]
    );
    assert_eq!(h.last_kinds(), vec!["resume"]);
    assert!(matches!(
        &h.last.events[0].event,
        RosterEvent::Resumed { holder, replaced, .. } if *holder == a2 && *replaced == a1
    ));
    let lease = h.lease("a").unwrap();
    assert_eq!(lease.holder, a2);
    assert_eq!(lease.client.joined_at, UnixMillis(T0));
    assert_eq!(lease.expires_at, UnixMillis(T0 + 5000 + TTL), "renewed");
    h.take(a2);
    h.assert_all_read();

    // The old socket's close report, whichever kind, causes no leave.
    for how in [Disconnect::Clean, Disconnect::Lost] {
        h.close(a1, how);
        assert!(h.last.outputs.is_empty(), "{how:?}");
        assert!(h.last.events.is_empty(), "{how:?}");
        assert_eq!(h.lease("a").unwrap().holder, a2);
    }
    // Frames from the replaced socket are ignored: no renewal, no error.
    h.tick_at(T0 + 6000);
    for frame in [
        Frame::Text(PING_TEXT.as_bytes()),
        Frame::Text(b"garbage"),
        Frame::Binary,
        Frame::Oversized,
        Frame::Text(b"\xff"),
        Frame::InvalidUtf8,
    ] {
        h.frame(a1, frame);
        assert!(h.last.outputs.is_empty(), "{frame:?}");
        assert!(h.last.renewed.is_empty() && h.last.events.is_empty());
    }
    assert_eq!(h.lease("a").unwrap().holder, a2);
    assert_eq!(
        h.lease("a").unwrap().expires_at,
        UnixMillis(T0 + 5000 + TTL)
    );
    // The new socket carries on: its events and its clean close work.
    h.close(b, Disconnect::Clean);
    assert_eq!(h.take(a2), vec![remote_leave(&info("b", "b", T0 + 10))]);
    h.close(a2, Disconnect::Clean);
    assert!(h.space.roster().is_empty());
}

#[test]
fn resume_after_a_lost_connection_passes_unnoticed() {
    let mut h = Harness::new();
    let a1 = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a1);
    h.take(b);
    h.tick_at(T0 + 100);
    h.close(a1, Disconnect::Lost);
    h.tick_at(T0 + TTL - 1);
    let a2 = h.join("a", Some("a"));
    assert_eq!(
        h.last.outputs,
        vec![Output::Send {
            conn: a2,
            text: welcome("a", &[info("a", "a", T0), info("b", "b", T0)]).into(),
        }]
    );
    // The lease is renewed from the resume: it outlives the old expiry.
    h.tick_at(T0 + TTL);
    assert_eq!(h.closed_with(b), Some(4000));
    assert_eq!(h.take(b), vec![EXPIRED.to_owned()]);
    assert!(h.lease("a").is_some());
    assert_eq!(h.closed_with(a2), None);
    assert_eq!(h.take(a2)[1..], [remote_expired(&info("b", "b", T0))]);
    h.assert_all_read();
}

#[test]
fn resume_by_another_identity_is_refused_and_changes_nothing() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    let seq = h.space.roster().seq();
    let before = h.lease("a").unwrap().clone();
    h.tick_at(T0 + 10);
    let x = h.join("mallory", Some("a"));
    assert_eq!(
        h.last.outputs,
        vec![
            Output::Send {
                conn: x,
                text: error("Invalid id: it is held by another identity").into(),
            },
            Output::Close {
                conn: x,
                code: CloseCode::PolicyViolation,
            },
        ]
    );
    assert!(h.take(x)[0].starts_with(r#"{"error":"Invalid id"#));
    assert!(h.last.events.is_empty());
    assert_eq!(h.space.roster().seq(), seq);
    assert_eq!(h.lease("a").unwrap(), &before);
    h.assert_all_read();
    // The refused socket's close report changes nothing either.
    h.close(x, Disconnect::Clean);
    assert!(h.last.outputs.is_empty() && h.last.events.is_empty());
    assert_eq!(h.lease("a").unwrap(), &before);
    // The holder is unaffected: it still hears events and pings.
    h.ping(a);
    assert_eq!(h.last.renewed.len(), 1);
    let c = h.join("c", Some("c"));
    assert_eq!(h.take(a), vec![remote_join(&info("c", "c", T0 + 10))]);
    assert_eq!(h.take(b), vec![remote_join(&info("c", "c", T0 + 10))]);
    // ...and nobody, including later joiners, ever saw mallory.
    assert!(!h.take(c)[0].contains("mallory"));
}

#[test]
fn another_identity_is_refused_even_if_the_holder_is_only_lost() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(b);
    h.close(a, Disconnect::Lost);
    h.tick_at(T0 + TTL - 1);
    let x = h.join("mallory", Some("a"));
    assert_eq!(h.closed_with(x), Some(1008));
    assert!(h.take(x)[0].starts_with(r#"{"error":"Invalid id"#));
    assert_eq!(h.lease("a").unwrap().holder, a);
    assert_eq!(h.take(b), Vec::<String>::new());
}

#[test]
fn resume_after_expiry_is_an_ordinary_join_keeping_the_id() {
    let mut h = Harness::with(1000, MAX);
    let a1 = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a1);
    h.take(b);
    h.close(a1, Disconnect::Lost);
    h.tick_at(T0 + 500);
    h.ping(b);
    h.tick_at(T0 + 1000); // swept
    assert_eq!(h.take(b), vec![remote_expired(&info("a", "a", T0))]);
    assert!(h.lease("a").is_none());
    h.tick_at(T0 + 1200);
    // Another identity may now take the id: it is an ordinary join.
    let a2 = h.join("someone else", Some("a"));
    assert_eq!(
        h.take(a2),
        vec![welcome(
            "a",
            &[info("b", "b", T0), info("a", "someone else", T0 + 1200)]
        )]
    );
    assert_eq!(
        h.take(b),
        vec![remote_join(&info("a", "someone else", T0 + 1200))]
    );
    assert_eq!(h.last_kinds(), vec!["join"]);
}

#[test]
fn resume_after_expiry_not_yet_swept_leaves_then_joins() {
    let mut h = Harness::with(1000, MAX);
    let a1 = h.join("a", Some("a"));
    h.tick_at(T0 + 500);
    let b = h.join("b", Some("b"));
    h.take(a1);
    h.take(b);
    h.close(a1, Disconnect::Lost);
    // No tick in between: the resume arrives after the lease ran out.
    h.now = T0 + 1000;
    let a2 = h.join("a", Some("a"));
    assert_eq!(
        h.take(b),
        vec![
            remote_expired(&info("a", "a", T0)),
            remote_join(&info("a", "a", T0 + 1000)),
        ]
    );
    assert_eq!(
        h.take(a2),
        vec![welcome(
            "a",
            &[info("b", "b", T0 + 500), info("a", "a", T0 + 1000)]
        )]
    );
    assert_eq!(h.last_kinds(), vec!["expire", "join"]);
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 2000));
}

#[test]
fn resume_after_expiry_with_the_old_socket_still_open_expires_it_first() {
    let mut h = Harness::with(1000, MAX);
    let a1 = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a1);
    h.take(b);
    h.tick_at(T0 + 500);
    h.ping(b);
    h.now = T0 + 1000;
    let a2 = h.join("a", Some("a"));
    assert_eq!(h.take(a1), vec![EXPIRED.to_owned()]);
    assert_eq!(h.closed_with(a1), Some(4000));
    assert_eq!(
        h.take(b),
        vec![
            remote_expired(&info("a", "a", T0)),
            remote_join(&info("a", "a", T0 + 1000)),
        ]
    );
    assert_eq!(h.take(a2).len(), 1);
    assert_eq!(h.lease("a").unwrap().holder, a2);
}

#[test]
fn a_requested_id_never_seen_is_an_ordinary_join() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.take(a);
    h.tick_at(T0 + 7);
    let x = h.join("x", Some("Never-Seen_42"));
    assert_eq!(
        h.take(x),
        vec![welcome(
            "Never-Seen_42",
            &[info("a", "a", T0), info("Never-Seen_42", "x", T0 + 7)]
        )]
    );
    assert_eq!(
        h.take(a),
        vec![remote_join(&info("Never-Seen_42", "x", T0 + 7))]
    );
    assert_eq!(h.last_kinds(), vec!["join"]);
}

#[test]
fn resume_after_a_clean_close_is_an_ordinary_join() {
    let mut h = Harness::new();
    let a1 = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(b);
    h.close(a1, Disconnect::Clean);
    h.tick_at(T0 + 3);
    let a2 = h.join("a", Some("a"));
    assert_eq!(
        h.take(b),
        vec![
            remote_leave(&info("a", "a", T0)),
            remote_join(&info("a", "a", T0 + 3)),
        ]
    );
    assert_eq!(json(&h.take(a2)[0])["clients"][1]["joinedAt"], iso(T0 + 3));
}

#[test]
fn resumes_chain_and_each_replaced_socket_is_closed_once() {
    let mut h = Harness::new();
    let b = h.join("b", Some("b"));
    h.take(b);
    let mut prev = h.join("a", Some("a"));
    h.take(b);
    for i in 1..5 {
        h.tick_at(T0 + i * 1000);
        let next = h.join("a", Some("a"));
        assert_eq!(h.closed_with(prev), Some(4001));
        assert_eq!(h.take(next).len(), 1);
        prev = next;
    }
    assert_eq!(h.take(b), Vec::<String>::new());
    assert_eq!(h.lease("a").unwrap().client.joined_at, UnixMillis(T0));
    assert_eq!(h.space.roster().len(), 2);
}

// ---------------------------------------------------------------------------
// Section 6: errors
// ---------------------------------------------------------------------------

#[test]
fn bad_joins_get_the_error_then_1008_and_nothing_is_stored() {
    let cases = [
        ("/", Some("identity=a"), "Space ID is required"),
        ("/room", None, "No identity parameter was supplied"),
        (
            "/room",
            Some("identity="),
            "No identity parameter was supplied",
        ),
        ("/a%zz", Some("identity=a"), "Invalid space"),
        ("/room", Some("identity=a%00"), "Invalid identity"),
        ("/room", Some("identity=a&id=a.b"), "Invalid id"),
    ];
    for (path, query, prefix) in cases {
        let err = JoinRequest::parse(path, query).unwrap_err();
        let out = refuse_join(ConnId(7), &err);
        assert_eq!(out.len(), 2, "{path} {query:?}");
        match &out[0] {
            Output::Send { conn, text } => {
                assert_eq!(*conn, ConnId(7));
                assert!(
                    text.starts_with(&format!(r#"{{"error":"{prefix}"#)),
                    "{text}"
                );
                assert_eq!(json(text).as_object().unwrap().len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out[1],
            Output::Close {
                conn: ConnId(7),
                code: CloseCode::PolicyViolation
            }
        );
    }
}

#[test]
fn text_that_is_not_json_gets_an_error_and_stays_open() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    for text in ["hello", "{", "{\"action\":", "ping"] {
        h.text(a, text);
        assert_eq!(h.take(a), vec![error("Unparsable message sent")], "{text}");
    }
    assert_eq!(h.closed_with(a), None);
    assert!(h.lease("a").is_some());
    assert_eq!(h.take(b), Vec::<String>::new());
    // Still a working connection.
    h.tick_at(T0 + 10);
    h.ping(a);
    assert_eq!(h.last.renewed.len(), 1);
}

#[test]
fn json_without_a_known_action_gets_an_error_and_stays_open() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.take(a);
    for text in [
        "{}",
        "[]",
        "null",
        "42",
        r#"{"action":"join"}"#,
        r#"{"action":null}"#,
        r#"{"event":"remote join"}"#,
    ] {
        h.text(a, text);
        assert_eq!(h.take(a), vec![error("Unrecognized action sent")], "{text}");
    }
    assert_eq!(h.closed_with(a), None);
    assert!(h.lease("a").is_some());
}

#[test]
fn binary_frames_get_an_error_and_stay_open() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    h.frame(a, Frame::Binary);
    assert_eq!(h.take(a), vec![error("Binary messages are not supported")]);
    assert_eq!(h.closed_with(a), None);
    assert!(h.lease("a").is_some());
    assert!(h.last.events.is_empty());
    h.assert_all_read();
}

fn padded_ping(len: usize) -> String {
    let s = format!(r#"{{"action":"ping","p":"{}"}}"#, "x".repeat(len - 24));
    assert_eq!(s.len(), len);
    s
}

#[test]
fn a_message_of_exactly_the_limit_is_accepted() {
    for max in [64, MAX] {
        let mut h = Harness::with(TTL, max);
        let a = h.join("a", Some("a"));
        h.take(a);
        h.tick_at(T0 + 10);
        h.text(a, &padded_ping(max));
        assert!(h.last.outputs.is_empty(), "{max}: {:?}", h.last.outputs);
        assert_eq!(h.last.renewed.len(), 1);
        assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 10 + TTL));
        // Multi-byte characters count in bytes: 4096 bytes of é-padding is
        // at the limit, one more byte is over.
        let unrecognized = format!(r#"{{"p":"{}"}}"#, "é".repeat((max - 8) / 2));
        assert_eq!(unrecognized.len(), max);
        h.text(a, &unrecognized);
        assert_eq!(h.take(a), vec![error("Unrecognized action sent")]);
        h.text(a, &format!("{unrecognized} "));
        assert!(h.take(a)[0].starts_with(r#"{"error":"Message too large"#));
        assert_eq!(h.closed_with(a), Some(1009));
    }
}

#[test]
fn a_message_over_the_limit_closes_1009_and_others_see_the_leave_at_once() {
    for oversize in [0, 1] {
        let mut h = Harness::with(TTL, 64);
        let a = h.join("a", Some("a"));
        let b = h.join("b", Some("b"));
        h.take(a);
        h.take(b);
        h.tick_at(T0 + 10);
        let big = padded_ping(65);
        let frame = if oversize == 0 {
            Frame::Text(big.as_bytes())
        } else {
            Frame::Oversized
        };
        h.frame(a, frame);
        let to_a = h.take(a);
        assert_eq!(to_a.len(), 1);
        assert!(
            to_a[0].starts_with(r#"{"error":"Message too large"#),
            "{}",
            to_a[0]
        );
        assert_eq!(h.closed_with(a), Some(1009));
        // Output order for a: the error, then the close.
        assert!(matches!(
            &h.last.outputs[..2],
            [Output::Send { conn: c1, .. }, Output::Close { conn: c2, .. }] if *c1 == a && *c2 == a
        ));
        assert_eq!(h.take(b), vec![remote_leave(&info("a", "a", T0))]);
        assert!(h.lease("a").is_none());
        assert!(matches!(
            &h.last.events[0].event,
            RosterEvent::Left {
                cause: LeaveCause::Closed,
                ..
            }
        ));
        // The target's later close report changes nothing.
        h.close(a, Disconnect::Clean);
        assert!(h.last.outputs.is_empty() && h.last.events.is_empty());
        h.assert_all_read();
    }
}

#[test]
fn invalid_utf8_closes_1007_silently_and_others_see_the_leave() {
    let frames = [
        Frame::Text(b"{\"action\":\"ping\xff\"}"),
        Frame::Text(b"\xc3\x28"),
        Frame::InvalidUtf8,
    ];
    for frame in frames {
        let mut h = Harness::new();
        let a = h.join("a", Some("a"));
        let b = h.join("b", Some("b"));
        h.take(a);
        h.take(b);
        h.frame(a, frame);
        assert_eq!(h.take(a), Vec::<String>::new(), "no message before 1007");
        assert_eq!(h.closed_with(a), Some(1007), "{frame:?}");
        assert_eq!(h.take(b), vec![remote_leave(&info("a", "a", T0))]);
        assert!(h.lease("a").is_none());
        assert!(h.last.renewed.is_empty());
        h.close(a, Disconnect::Lost);
        assert!(h.last.outputs.is_empty() && h.last.events.is_empty());
    }
}

#[test]
fn frames_from_unknown_sockets_do_nothing() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.take(a);
    for frame in [
        Frame::Text(PING_TEXT.as_bytes()),
        Frame::Text(b"junk"),
        Frame::Binary,
        Frame::Oversized,
        Frame::Text(b"\xff"),
        Frame::InvalidUtf8,
    ] {
        h.frame(ConnId(4242), frame);
        assert!(h.last.outputs.is_empty() && h.last.events.is_empty());
    }
    h.close(ConnId(4242), Disconnect::Clean);
    assert!(h.last.outputs.is_empty() && h.last.events.is_empty());
    assert!(h.lease("a").is_some());
}

// ---------------------------------------------------------------------------
// Sections 7 and 8: shutdown, eviction, close codes
// ---------------------------------------------------------------------------

#[test]
fn close_codes_match_the_table() {
    let table = [
        (CloseCode::Normal, 1000),
        (CloseCode::InvalidPayload, 1007),
        (CloseCode::PolicyViolation, 1008),
        (CloseCode::MessageTooBig, 1009),
        (CloseCode::InternalError, 1011),
        (CloseCode::ServiceRestart, 1012),
        (CloseCode::LeaseExpired, 4000),
        (CloseCode::Replaced, 4001),
    ];
    for (code, value) in table {
        assert_eq!(code.code(), value);
        assert!(!code.reason().is_empty());
        // Close reasons must fit a close frame (123 bytes).
        assert!(code.reason().len() <= 123);
    }
}

#[test]
fn shutdown_closes_every_socket_1012_and_keeps_the_leases() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    let c = h.join("c", Some("c"));
    h.close(c, Disconnect::Lost);
    for conn in [a, b, c] {
        h.take(conn);
    }
    h.tick_at(T0 + 100);
    let roster_before = h.roster();
    let leases_before: Vec<_> = {
        let mut v: Vec<_> = h.space.roster().leases().cloned().collect();
        v.sort_by(|x, y| x.client.id.cmp(&y.client.id));
        v
    };
    let seq = h.space.roster().seq();
    let step = h.space.shutdown(UnixMillis(h.now));
    assert_eq!(
        step.outputs,
        vec![
            Output::Close {
                conn: a,
                code: CloseCode::ServiceRestart
            },
            Output::Close {
                conn: b,
                code: CloseCode::ServiceRestart
            },
        ]
    );
    assert!(step.events.is_empty());
    h.record(step);
    let mut leases_after: Vec<_> = h.space.roster().leases().cloned().collect();
    leases_after.sort_by(|x, y| x.client.id.cmp(&y.client.id));
    assert_eq!(leases_after, leases_before);
    assert_eq!(h.roster(), roster_before);
    assert_eq!(h.space.roster().seq(), seq);
    // Their close reports cause no leave.
    h.close(a, Disconnect::Clean);
    h.close(b, Disconnect::Lost);
    assert!(h.last.events.is_empty());
    assert_eq!(h.roster(), roster_before);
    // They come back with their ids: nobody sees anything but the welcome.
    h.tick_at(T0 + 200);
    let a2 = h.join("a", Some("a"));
    assert_eq!(h.last_kinds(), vec!["resume"]);
    let b2 = h.join("b", Some("b"));
    assert_eq!(h.last_kinds(), vec!["resume"]);
    let all = [info("a", "a", T0), info("b", "b", T0), info("c", "c", T0)];
    assert_eq!(h.take(a2), vec![welcome("a", &all)]);
    assert_eq!(h.take(b2), vec![welcome("b", &all)]);
    h.assert_all_read();
}

#[test]
fn evict_closes_one_socket_and_keeps_its_lease() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    h.take(a);
    h.take(b);
    let step = h
        .space
        .evict(a, CloseCode::InternalError, UnixMillis(h.now));
    assert_eq!(
        step.outputs,
        vec![Output::Close {
            conn: a,
            code: CloseCode::InternalError
        }]
    );
    h.record(step);
    assert!(h.lease("a").is_some());
    h.close(a, Disconnect::Clean);
    assert!(
        h.last.events.is_empty(),
        "an evicted socket's close ends nothing"
    );
    let a2 = h.join("a", Some("a"));
    assert_eq!(h.last_kinds(), vec!["resume"]);
    assert_eq!(h.take(a2).len(), 1);
    h.assert_all_read();
    // Evicting an unknown socket does nothing.
    assert!(h
        .space
        .evict(ConnId(999), CloseCode::InternalError, UnixMillis(T0))
        .outputs
        .is_empty());
}

#[test]
fn is_idle_only_without_sockets_and_leases() {
    let mut h = Harness::with(1000, MAX);
    assert!(h.space.is_idle());
    let a = h.join("a", Some("a"));
    assert!(!h.space.is_idle());
    h.close(a, Disconnect::Clean);
    assert!(h.space.is_idle());
    let b = h.join("b", Some("b"));
    h.close(b, Disconnect::Lost);
    assert!(
        !h.space.is_idle(),
        "a lost connection's lease is still running"
    );
    h.tick_at(T0 + 999);
    assert!(!h.space.is_idle());
    h.tick_at(T0 + 1000);
    assert!(h.space.is_idle());
    h.join("c", Some("c"));
    h.space.shutdown(UnixMillis(h.now));
    assert!(!h.space.is_idle(), "shutdown keeps the lease");
    // A refused join leaves nothing behind.
    let mut h = Harness::new();
    let a = h.join("a", Some("a"));
    h.close(a, Disconnect::Lost);
    let x = h.join("x", Some("a"));
    assert_eq!(h.closed_with(x), Some(1008));
    h.tick_at(T0 + TTL);
    assert!(h.space.is_idle());
}

#[test]
fn restore_lets_clients_resume_without_any_event() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    h.tick_at(T0 + 100);
    h.join("b", Some("b"));
    h.tick_at(T0 + 200);
    h.join("c", Some("c"));
    h.tick_at(T0 + 300);
    h.ping(a);
    // The Durable Object goes away with its sockets; the stored roster stays.
    let stored: Vec<_> = h.space.roster().leases().cloned().collect();
    let seq = h.space.roster().seq();

    let config = h.space.config();
    let mut h = Harness::around(Space::restore(config, Roster::restore(stored, seq)));
    h.next_conn = 100; // the new instance's connection ids
    h.now = T0 + 400;
    assert!(!h.space.is_idle());
    assert_eq!(h.space.next_deadline(), Some(UnixMillis(T0 + 1100)));
    let b2 = h.join("b", Some("b"));
    let all = [
        info("a", "a", T0),
        info("b", "b", T0 + 100),
        info("c", "c", T0 + 200),
    ];
    assert_eq!(
        h.last.outputs,
        vec![Output::Send {
            conn: b2,
            text: welcome("b", &all).into()
        }]
    );
    assert_eq!(h.last_kinds(), vec!["resume"]);
    assert_eq!(h.last.events[0].seq, seq + 1);
    h.take(b2);
    let a2 = h.join("a", Some("a"));
    assert_eq!(h.take(a2), vec![welcome("a", &all)]);
    assert_eq!(h.take(b2), Vec::<String>::new(), "a's resume is silent");
    // c never comes back: it leaves at its stored expiry, not before.
    h.tick_at(T0 + 1199);
    assert!(h.last.outputs.is_empty());
    h.tick_at(T0 + 1200);
    let leave = remote_expired(&info("c", "c", T0 + 200));
    assert_eq!(h.take(a2), vec![leave.clone()]);
    assert_eq!(h.take(b2), vec![leave]);
    // A newcomer is announced to the resumed clients as usual.
    let d = h.join("d", Some("d"));
    assert_eq!(h.take(a2), vec![remote_join(&info("d", "d", T0 + 1200))]);
    assert_eq!(h.take(b2), vec![remote_join(&info("d", "d", T0 + 1200))]);
    assert_eq!(h.take(d).len(), 1);
    // Another identity still cannot take a restored lease.
    let x = h.join("mallory", Some("b"));
    assert_eq!(h.closed_with(x), Some(1008));
    assert!(h.take(x)[0].starts_with(r#"{"error":"Invalid id"#));
    h.assert_all_read();
}

#[test]
fn restore_of_an_empty_roster_is_a_new_space() {
    let h = Harness::around(Space::restore(SpaceConfig::default(), Roster::new()));
    assert!(h.space.is_idle());
    assert_eq!(h.space.next_deadline(), None);
    assert!(h.space.hub().view().is_empty());
}

#[test]
fn spaces_are_independent() {
    let mut one = Harness::new();
    let mut two = Harness::new();
    two.next_conn = 1000;
    let a1 = one.join("alice", Some("shared"));
    let b1 = one.join("bob", Some("b"));
    // The same id in the other space is another client, of another identity.
    let a2 = two.join("eve", Some("shared"));
    assert_eq!(two.last_kinds(), vec!["join"]);
    assert_eq!(
        two.take(a2),
        vec![welcome("shared", &[info("shared", "eve", T0)])]
    );
    one.take(a1);
    one.take(b1);
    // Leaving one space ends nothing in the other.
    two.close(a2, Disconnect::Clean);
    assert!(one.lease("shared").is_some());
    one.tick_at(T0 + 1);
    assert!(one.last.outputs.is_empty());
    // And a resume in one space does not see the other's leases.
    let eve = one.join("eve", Some("shared"));
    assert_eq!(one.closed_with(eve), Some(1008));
    let c2 = two.join("carol", Some("c"));
    assert_eq!(two.take(c2), vec![welcome("c", &[info("c", "carol", T0)])]);
    assert_eq!(one.take(b1), Vec::<String>::new());
}

/// A Durable Object woken from hibernation rebuilds its space from storage
/// and reattaches the sockets that are still open: they go on receiving
/// events, with no second welcome, and their closes still end their leases.
#[test]
fn reattached_sockets_keep_receiving_events_without_a_second_welcome() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    let stored: Vec<_> = h.space.roster().leases().cloned().collect();
    let seq = h.space.roster().seq();

    let config = h.space.config();
    let mut space = Space::restore(config, Roster::restore(stored, seq));
    space.reattach(a, ClientId::parse("a").unwrap());
    space.reattach(b, ClientId::parse("b").unwrap());
    let mut h2 = Harness::around(space);
    h2.next_conn = 100;
    h2.now = h.now + 10;
    let c = h2.join("c", Some("c"));
    let c_info = info("c", "c", h2.now);
    assert_eq!(h2.take(a), vec![remote_join(&c_info)]);
    assert_eq!(h2.take(b), vec![remote_join(&c_info)]);
    h2.take(c);
    h2.close(a, Disconnect::Clean);
    assert_eq!(h2.last_kinds(), vec!["leave"]);
    assert_eq!(h2.take(b).len(), 1);
    assert_eq!(h2.take(c).len(), 1);
}

/// The edge answers exact pings without waking the space and reports them
/// later: a renewal as of the answer's time extends a lease that was alive
/// then, and a late report never shortens a later renewal.
#[test]
fn renew_at_counts_from_when_the_ping_was_answered() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    let b = h.join("b", Some("b"));
    // Answered at T0 + 900, learnt of at T0 + 1500 (after the lease would
    // have run out): the lease now runs to T0 + 1900.
    let step = h.space.renew_at(a, UnixMillis(T0 + 900));
    assert_eq!(step.renewed, vec![ClientId::parse("a").unwrap()]);
    h.tick_at(T0 + 1500);
    assert_eq!(h.last_kinds(), vec!["expire"], "only b expires");
    assert_eq!(h.closed_with(b), Some(4000));
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 1900));
    // A stale report does not shorten it.
    let step = h.space.renew_at(a, UnixMillis(T0 + 100));
    assert_eq!(step.renewed, vec![ClientId::parse("a").unwrap()]);
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 1900));
    // A ping answered after the lease ran out renews nothing.
    h.tick_at(T0 + 1900);
    assert_eq!(h.closed_with(a), Some(4000));
    assert!(h
        .space
        .renew_at(a, UnixMillis(T0 + 1950))
        .renewed
        .is_empty());
}

// ---------------------------------------------------------------------------
// Issue 5: limits (MAX_CLIENTS_PER_SPACE, message rate)
// ---------------------------------------------------------------------------

#[test]
fn full_space_refuses_with_1013_and_nobody_inside_sees_anything() {
    let mut h = Harness::around(Space::new(SpaceConfig::default()).with_max_clients(Some(2)));
    let a = h.join("a", Some("a1"));
    let b = h.join("b", Some("b1"));
    h.take(a);
    h.take(b);
    let c = h.join("c", Some("c1"));
    assert_eq!(h.take(c), vec![error("Space is full")]);
    assert_eq!(h.closed_with(c), Some(1013));
    assert!(h.last.events.is_empty());
    assert!(h.lease("c1").is_none());
    h.assert_all_read();
    // A resume of a live lease is allowed when full, silently for others.
    let a2 = h.join("a", Some("a1"));
    assert_eq!(h.last_kinds(), vec!["resume"]);
    assert_eq!(h.closed_with(a), Some(4001));
    h.take(a2);
    h.assert_all_read();
    // Once someone leaves, there is room again.
    h.close(b, Disconnect::Clean);
    h.take(a2);
    let d = h.join("d", Some("d1"));
    assert_eq!(h.last_kinds(), vec!["join"]);
    assert!(h.closed_with(d).is_none());
}

#[test]
fn rate_limited_frame_is_an_error_then_1008_and_ends_the_lease() {
    let mut h = Harness::new();
    let a = h.join("a", Some("a1"));
    let b = h.join("b", Some("b1"));
    h.take(a);
    h.take(b);
    h.frame(b, Frame::RateLimited);
    assert_eq!(
        h.take(b),
        vec![error("Rate limit exceeded: too many messages")]
    );
    assert_eq!(h.closed_with(b), Some(1008));
    assert_eq!(h.last_kinds(), vec!["leave"]);
    assert_eq!(h.take(a).len(), 1);
}

/// The edge knows only a connection's latest auto-answered ping, and its
/// alarm can be late: a ping answered after the lease's end but before the
/// sweep still renews (the client kept pinging); after the sweep, nothing.
#[test]
fn renew_at_after_the_end_but_before_the_sweep_renews() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    let step = h.space.renew_at(a, UnixMillis(T0 + 1200));
    assert_eq!(step.renewed, vec![ClientId::parse("a").unwrap()]);
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 2200));
    h.tick_at(T0 + 2200);
    assert_eq!(h.closed_with(a), Some(4000));
    assert!(h
        .space
        .renew_at(a, UnixMillis(T0 + 2300))
        .renewed
        .is_empty());
}

/// The edge renews auto-answered pings lazily: before an input sweeps, it
/// asks which local sockets hold leases due by then and reads only theirs.
/// Renewing exactly those keeps everyone who kept pinging, whatever else
/// the input was (a message from someone else, a join, a close).
#[test]
fn holders_due_by_names_the_sockets_to_renew_before_a_sweep() {
    let mut h = Harness::with(1000, MAX);
    let a = h.join("a", Some("a"));
    h.now = T0 + 100;
    let b = h.join("b", Some("b"));
    h.now = T0 + 200;
    let c = h.join("c", Some("c"));
    h.take(a);
    h.take(b);
    h.take(c);
    assert!(h.space.holders_due_by(UnixMillis(T0 + 999)).is_empty());
    assert_eq!(h.space.holders_due_by(UnixMillis(T0 + 1100)), vec![a, b]);
    assert_eq!(h.space.holders_due_by(UnixMillis(T0 + 5000)), vec![a, b, c]);
    // a's pings were answered by the runtime; b's were not. At T0 + 1150 c
    // sends something that is not a ping: the target first renews the due
    // sockets that pinged, then hands the frame over, which sweeps.
    h.now = T0 + 1150;
    for conn in h.space.holders_due_by(UnixMillis(h.now)) {
        if conn == a {
            let step = h.space.renew_at(a, UnixMillis(T0 + 900));
            assert_eq!(step.renewed, vec![ClientId::parse("a").unwrap()]);
        }
    }
    h.text(c, r#"{"action":"nothing"}"#);
    assert_eq!(h.last_kinds(), vec!["expire"], "b expires, a does not");
    assert_eq!(h.closed_with(b), Some(4000));
    assert_eq!(h.closed_with(a), None);
    assert_eq!(h.lease("a").unwrap().expires_at, UnixMillis(T0 + 1900));
    // A lease whose holder is gone (a lost connection) or was replaced is
    // not a local socket's to renew.
    h.close(c, Disconnect::Lost);
    let a2 = h.join("a", Some("a"));
    assert_eq!(h.closed_with(a), Some(4001));
    assert_eq!(h.space.holders_due_by(UnixMillis(T0 + 5000)), vec![a2]);
}
