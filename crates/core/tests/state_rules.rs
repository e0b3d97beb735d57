//! Rules of sections 10 to 13 of PROTOCOL.md (state, info, username,
//! leave reasons, broadcast, the 2015 cursor), one by one on a single
//! in-process [`Space`] (the in-memory store and the Durable Object).

use std::collections::HashMap;

use longhouse_core::{
    ClientId, CloseCode, ConnId, Disconnect, Frame, JoinRequest, Json, Output, Space, SpaceConfig,
    Step, UnixMillis,
};
use serde_json::{json, Value};

const T0: u64 = 1_433_538_566_480;
const INTERVAL: u64 = 50;

struct Harness {
    space: Space,
    now: u64,
    next_conn: u64,
    inbox: HashMap<ConnId, Vec<Value>>,
    closes: HashMap<ConnId, u16>,
    last: Step,
}

impl Harness {
    fn new() -> Self {
        Self::with(SpaceConfig {
            ttl_ms: 60_000,
            update_interval_ms: INTERVAL,
            ..SpaceConfig::default()
        })
    }

    fn with(config: SpaceConfig) -> Self {
        Harness {
            space: Space::new(config),
            now: T0,
            next_conn: 0,
            inbox: HashMap::new(),
            closes: HashMap::new(),
            last: Step::default(),
        }
    }

    /// A socket joins with this query (after `/room?`); its welcome is
    /// read and returned.
    fn join(&mut self, query: &str) -> (ConnId, Value) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let request = JoinRequest::parse("/room", Some(query)).expect("a valid join");
        let seed = self.next_conn as u8;
        let step = self.space.join(
            conn,
            &request,
            || ClientId::from_random_bytes([seed; 16]),
            UnixMillis(self.now),
        );
        self.record(step);
        let welcome = self.take(conn).remove(0);
        assert!(welcome.get("clients").is_some(), "{welcome}");
        (conn, welcome)
    }

    fn send(&mut self, conn: ConnId, message: Value) {
        self.text(conn, &message.to_string());
    }

    fn text(&mut self, conn: ConnId, text: &str) {
        let step = self
            .space
            .frame(conn, Frame::Text(text.as_bytes()), UnixMillis(self.now));
        self.record(step);
    }

    fn close(&mut self, conn: ConnId, how: Disconnect) {
        let step = self.space.closed(conn, how, UnixMillis(self.now));
        self.record(step);
    }

    /// Moves the clock to `T0 + t` and ticks if a deadline is due.
    fn at(&mut self, t: u64) {
        self.now = T0 + t;
        if self.space.next_deadline().is_some_and(|d| d.0 <= self.now) {
            let step = self.space.tick(UnixMillis(self.now));
            self.record(step);
        }
    }

    fn record(&mut self, step: Step) {
        for output in &step.outputs {
            match output {
                Output::Send { conn, text } => {
                    assert!(!self.closes.contains_key(conn), "{text} after close");
                    let v: Value = serde_json::from_str(text).expect("JSON");
                    self.inbox.entry(*conn).or_default().push(v);
                }
                Output::Close { conn, code } => {
                    assert!(self.closes.insert(*conn, code.code()).is_none());
                }
            }
        }
        self.last = step;
    }

    fn take(&mut self, conn: ConnId) -> Vec<Value> {
        self.inbox.remove(&conn).unwrap_or_default()
    }

    fn id(&self, welcome: &Value) -> String {
        welcome["id"].as_str().unwrap().to_owned()
    }
}

fn q(params: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn update(state: Value) -> Value {
    json!({"action": "update", "state": state})
}

#[test]
fn state_at_join_is_in_the_welcome_and_the_remote_join() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (_, welcome) = h.join(&q(&[
        ("identity", "b"),
        ("state", r#"{"name":"Bo","x":1.5}"#),
        ("username", "bob"),
    ]));
    let me = &welcome["clients"][1];
    assert_eq!(me["state"], json!({"name": "Bo", "x": 1.5}));
    assert_eq!(me["username"], "bob");
    // Nobody uses state in a's record: no keys at all.
    let first = welcome["clients"][0].as_object().unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["id", "identity", "joinedAt"]
    );
    let join = h.take(a);
    assert_eq!(join.len(), 1);
    assert_eq!(join[0]["event"], "remote join");
    assert_eq!(join[0]["client"], *me);
}

#[test]
fn an_update_reaches_everyone_else_renews_and_the_sender_gets_nothing() {
    let mut h = Harness::new();
    let (a, wa) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    let (c, _) = h.join("identity=c");
    h.take(a);
    h.take(b);
    h.at(10_000);
    h.send(a, update(json!({"cursor": [3, 4]})));
    assert_eq!(h.last.renewed.len(), 1, "an update renews the lease");
    assert_eq!(
        h.space
            .roster()
            .get(&ClientId::parse(&h.id(&wa)).unwrap())
            .unwrap()
            .expires_at,
        UnixMillis(T0 + 70_000)
    );
    assert!(h.take(a).is_empty());
    for other in [b, c] {
        let got = h.take(other);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["event"], "remote update");
        assert_eq!(got[0]["client"]["id"], wa["id"]);
        assert_eq!(got[0]["client"]["state"], json!({"cursor": [3, 4]}));
    }
    // null clears it: no state key.
    h.at(20_000);
    h.send(a, update(Value::Null));
    let got = h.take(b);
    assert_eq!(got[0]["event"], "remote update");
    assert!(got[0]["client"].get("state").is_none(), "{}", got[0]);
    // A newcomer sees the latest.
    h.at(30_000);
    h.send(a, update(json!({"s": "away"})));
    h.at(30_100);
    let (_, wd) = h.join("identity=d");
    assert_eq!(wd["clients"][0]["state"], json!({"s": "away"}));
}

#[test]
fn an_update_equal_to_the_current_state_still_reaches_everyone_else() {
    let mut h = Harness::new();
    let (a, _) = h.join(&q(&[("identity", "a"), ("state", r#"{"n":1}"#)]));
    let (b, _) = h.join("identity=b");
    let (c, _) = h.join("identity=c");
    h.take(a);
    h.take(b);
    // The state everybody already has, since the join: still one update
    // for each of the others, none for the sender.
    h.at(1_000);
    h.send(a, update(json!({"n": 1})));
    assert_eq!(h.last.renewed.len(), 1, "it renews the lease");
    assert!(h.take(a).is_empty());
    for other in [b, c] {
        let got = h.take(other);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["event"], "remote update");
        assert_eq!(got[0]["client"]["state"], json!({"n": 1}));
    }
    // Again within the interval: held, then sent once it has passed.
    h.at(1_010);
    h.send(a, update(json!({"n": 1})));
    assert!(h.take(b).is_empty(), "held");
    h.at(1_000 + INTERVAL);
    let got = h.take(b);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["client"]["state"], json!({"n": 1}));
    // Clearing a cleared state is an update too.
    h.at(2_000);
    h.send(a, update(Value::Null));
    h.at(3_000);
    h.send(a, update(Value::Null));
    let got = h.take(c);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[1..]
        .iter()
        .all(|v| v["event"] == "remote update" && v["client"].get("state").is_none()));
    assert!(h.take(a).is_empty());
}

#[test]
fn a_bad_update_is_refused_and_changes_nothing() {
    let mut h = Harness::with(SpaceConfig {
        max_state_bytes: 16,
        update_interval_ms: 0,
        ..SpaceConfig::default()
    });
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    for (message, error) in [
        (json!({"action": "update"}), "Invalid state"),
        (update(json!([1])), "Invalid state"),
        (update(json!("x")), "Invalid state"),
        (update(json!({"p": "0123456789ab"})), "State too large"),
    ] {
        h.send(a, message.clone());
        let got = h.take(a);
        assert_eq!(got.len(), 1, "{message}");
        assert!(
            got[0]["error"].as_str().unwrap().starts_with(error),
            "{message}: {}",
            got[0]
        );
        assert!(h.take(b).is_empty(), "{message}");
        assert!(h.last.events.is_empty());
        assert!(h.last.renewed.is_empty());
    }
    assert!(h.closes.is_empty(), "all stay open");
    // 16 bytes exactly is fine.
    h.send(a, update(json!({"p": "01234567"})));
    assert_eq!(h.take(b).len(), 1);
}

#[test]
fn a_burst_is_coalesced_trailing_edge_to_its_latest() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(1000);
    for n in 0..100 {
        h.send(a, update(json!({ "n": n })));
    }
    // The first went at once; the rest are held, the latest replacing.
    let got = h.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["client"]["state"]["n"], 0);
    assert_eq!(
        h.space.next_deadline(),
        Some(UnixMillis(T0 + 1000 + INTERVAL))
    );
    h.at(1000 + INTERVAL - 1);
    assert!(h.take(b).is_empty(), "not before the interval");
    h.at(1000 + INTERVAL);
    let got = h.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["client"]["state"]["n"], 99);
    // Quiet again: nothing more is due.
    assert!(h.space.next_deadline().unwrap() > UnixMillis(T0 + 10_000));
}

#[test]
fn sixty_updates_a_second_give_at_most_one_per_interval_and_end_on_the_last() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    let mut t = 0;
    for n in 0..300u64 {
        t = n * 1000 / 60;
        h.at(t);
        h.send(a, update(json!({ "n": n })));
    }
    h.at(t + INTERVAL);
    let got = h.take(b);
    assert!(got.len() <= (t / INTERVAL + 2) as usize, "{}", got.len());
    assert!(got.len() >= (t / INTERVAL / 2) as usize, "{}", got.len());
    assert_eq!(got.last().unwrap()["client"]["state"]["n"], 299);
    let ns: Vec<u64> = got
        .iter()
        .map(|m| m["client"]["state"]["n"].as_u64().unwrap())
        .collect();
    assert!(ns.windows(2).all(|w| w[0] < w[1]), "in order: {ns:?}");
    assert!(h.closes.is_empty());
}

#[test]
fn a_held_update_is_flushed_into_the_leave_and_nothing_follows_it() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(1000);
    h.send(a, update(json!({"n": 1})));
    h.send(a, update(json!({"n": 2})));
    h.close(a, Disconnect::Clean);
    let got = h.take(b);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event"], "remote update");
    assert_eq!(got[1]["event"], "remote leave");
    assert_eq!(got[1]["reason"], "left");
    assert_eq!(got[1]["client"]["state"], json!({"n": 2}));
    h.at(5000);
    assert!(h.take(b).is_empty(), "no update after a leave");
}

#[test]
fn a_lost_connection_sends_its_held_update() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(1000);
    h.send(a, update(json!({"n": 1})));
    h.send(a, update(json!({"n": 2})));
    h.take(b);
    h.close(a, Disconnect::Lost);
    let got = h.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "remote update");
    assert_eq!(got[0]["client"]["state"], json!({"n": 2}));
}

#[test]
fn a_violation_closes_with_the_latest_state_and_reason_left() {
    let mut h = Harness::new();
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(1000);
    h.send(a, update(json!({"n": 1})));
    h.send(a, update(json!({"n": 2})));
    h.take(b);
    let step = h.space.frame(a, Frame::Oversized, UnixMillis(h.now));
    h.record(step);
    assert_eq!(h.closes[&a], 1009);
    let got = h.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["reason"], "left");
    assert_eq!(got[0]["client"]["state"], json!({"n": 2}));
}

#[test]
fn expiry_says_expired() {
    let mut h = Harness::with(SpaceConfig {
        ttl_ms: 1000,
        ..SpaceConfig::default()
    });
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(999);
    h.send(b, json!({"action": "ping"}));
    h.at(1000);
    let got = h.take(b);
    assert_eq!(got[0]["event"], "remote leave");
    assert_eq!(got[0]["reason"], "expired");
}

#[test]
fn a_resume_keeps_the_state_and_state_on_resume_makes_one_update() {
    let mut h = Harness::new();
    let (a1, wa) = h.join(&q(&[("identity", "a"), ("state", r#"{"n":1}"#)]));
    let id = h.id(&wa);
    let (b, _) = h.join("identity=b");
    h.take(a1);
    h.close(a1, Disconnect::Lost);
    // Plain resume: same state, nobody sees anything.
    let (a2, w2) = h.join(&q(&[("identity", "a"), ("id", &id)]));
    assert_eq!(w2["clients"][0]["state"], json!({"n": 1}));
    assert!(h.take(b).is_empty());
    assert_eq!(h.closes.get(&a2), None);
    // The same state again: still nothing.
    let (_a3, _) = h.join(&q(&[
        ("identity", "a"),
        ("id", &id),
        ("state", r#"{"n":1}"#),
    ]));
    assert!(h.take(b).is_empty());
    assert_eq!(h.closes[&a2], 4001);
    // Another state: exactly one update, no leave or join.
    let (_a4, w4) = h.join(&q(&[
        ("identity", "a"),
        ("id", &id),
        ("state", r#"{"n":2}"#),
    ]));
    // The resumer's own welcome already shows the state it brought.
    let mine = w4["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str());
    assert_eq!(mine.unwrap()["state"], json!({"n": 2}), "{w4}");
    let got = h.take(b);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "remote update");
    assert_eq!(got[0]["client"]["state"], json!({"n": 2}));
    assert_eq!(got[0]["client"]["joinedAt"], wa["clients"][0]["joinedAt"]);
}

#[test]
fn token_info_is_shown_and_a_resume_with_other_info_makes_one_update() {
    let secret: &[u8] = b"s3cret";
    let auth = longhouse_core::Auth::hs256(Some(secret), None);
    let mut h = Harness::new();
    let now = UnixMillis(T0);
    let token = |info: &str| {
        longhouse_core::token::sign(
            &format!(r#"{{"sub":"ann","exp":{},"info":{info}}}"#, T0 / 1000 + 600),
            secret,
        )
    };
    let join = |h: &mut Harness, query: String| {
        h.next_conn += 1;
        let conn = ConnId(h.next_conn);
        let request = JoinRequest::parse_with("/room", Some(&query), &auth, now).unwrap();
        let step = h.space.join(
            conn,
            &request,
            || ClientId::parse("ann-1").unwrap(),
            UnixMillis(h.now),
        );
        h.record(step);
        conn
    };
    let a1 = join(&mut h, format!("token={}", token(r#"{"role":"admin"}"#)));
    let wa = h.take(a1).remove(0);
    assert_eq!(wa["clients"][0]["info"], json!({"role": "admin"}));
    let (b, _) = h.join("identity=b");
    let a2 = join(
        &mut h,
        format!("token={}&id=ann-1", token(r#"{"role":"admin"}"#)),
    );
    assert!(h.take(b).is_empty(), "same info: no event");
    let a3 = join(
        &mut h,
        format!("token={}&id=ann-1", token(r#"{"role":"guest"}"#)),
    );
    assert_eq!(h.closes[&a2], 4001);
    let w3 = h.take(a3).remove(0);
    let mine = w3["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "ann-1");
    assert_eq!(mine.unwrap()["info"], json!({"role": "guest"}), "{w3}");
    let got = h.take(b);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["event"], "remote update");
    assert_eq!(got[0]["client"]["info"], json!({"role": "guest"}));
}

#[test]
fn broadcasts_reach_everyone_else_in_order_never_the_sender() {
    let mut h = Harness::new();
    let (a, wa) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    let (c, _) = h.join("identity=c");
    h.take(a);
    h.take(b);
    h.at(5000);
    for n in 0..5 {
        h.send(a, json!({"action": "broadcast", "data": {"n": n}}));
    }
    assert!(!h.last.renewed.is_empty(), "a broadcast renews the lease");
    assert!(h.take(a).is_empty(), "no echo");
    for other in [b, c] {
        let got = h.take(other);
        let ns: Vec<Value> = got.iter().map(|m| m["data"]["n"].clone()).collect();
        assert_eq!(ns, (0..5).map(|n| json!(n)).collect::<Vec<_>>());
        assert!(got
            .iter()
            .all(|m| m["event"] == "broadcast" && m["from"] == wa["id"]));
    }
    // Any JSON value, null included; missing data is an error that keeps
    // the socket open.
    h.send(a, json!({"action": "broadcast", "data": null}));
    assert_eq!(h.take(b)[0]["data"], Value::Null);
    h.send(a, json!({"action": "broadcast"}));
    assert_eq!(h.take(a)[0]["error"], "Invalid broadcast");
    assert!(h.take(b).is_empty());
    assert!(h.closes.is_empty());
    // A later joiner never sees earlier broadcasts.
    let (d, _) = h.join("identity=d");
    assert!(h.take(d).is_empty());
}

#[test]
fn the_2015_cursor_is_relayed_with_the_senders_client_id() {
    let mut h = Harness::new();
    let (a, wa) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    h.at(5000);
    h.text(
        a,
        r#"{"action":"cursor","x":10,"y":20.5,"clientId":"forged","extra":[1]}"#,
    );
    assert!(!h.last.renewed.is_empty(), "a cursor renews the lease");
    assert!(h.take(a).is_empty());
    let got = h.take(b);
    assert_eq!(
        got,
        vec![json!({"action": "cursor", "x": 10, "y": 20.5, "clientId": wa["id"], "extra": [1]})]
    );
}

#[test]
fn the_server_api_broadcasts_from_null_and_removes_with_4003() {
    let mut h = Harness::new();
    let (a, wa) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    let data = Json::object(r#"{"notice":"hi"}"#).unwrap();
    let step = h.space.server_broadcast(&data);
    h.record(step);
    for conn in [a, b] {
        assert_eq!(
            h.take(conn),
            vec![json!({"event": "broadcast", "from": null, "data": {"notice": "hi"}})]
        );
    }
    let id = ClientId::parse(&h.id(&wa)).unwrap();
    let step = h.space.remove_client(&id, UnixMillis(h.now));
    h.record(step);
    assert_eq!(h.take(a), vec![json!({"error": "Removed"})]);
    assert_eq!(h.closes[&a], CloseCode::Removed.code());
    let got = h.take(b);
    assert_eq!(got[0]["event"], "remote leave");
    assert_eq!(got[0]["reason"], "removed");
    // Its close report afterwards changes nothing; the identity may join again.
    h.close(a, Disconnect::Clean);
    assert!(h.take(b).is_empty());
    let (_a2, _) = h.join("identity=a");
    assert_eq!(h.take(b)[0]["event"], "remote join");
}

#[test]
fn interval_zero_sends_every_update() {
    let mut h = Harness::with(SpaceConfig {
        update_interval_ms: 0,
        ..SpaceConfig::default()
    });
    let (a, _) = h.join("identity=a");
    let (b, _) = h.join("identity=b");
    h.take(a);
    for n in 0..10 {
        h.send(a, update(json!({ "n": n })));
    }
    assert_eq!(h.take(b).len(), 10);
    assert_eq!(h.space.next_deadline().map(|d| d.0 > T0 + 1000), Some(true));
}
