//! The Yjs awareness protocol as a y-websocket client speaks it to
//! `@y/websocket-server`, through `yrs` (its `Awareness` and the y-sync
//! message encoding). One room is one space; a client's awareness state is
//! its presence state.
//!
//! How its events map onto Longhouse's (the semantics the comparison
//! relies on):
//! - joining: the client opens `/{room}`, sends sync step 1 and its own
//!   awareness state (a y-websocket provider does both on open). The server
//!   answers with its sync step 1 and every state it holds (the roster),
//!   and relays the new state to everyone in the room, the joiner included.
//!   That echo is the joiner's *welcome*: its presence is then registered
//!   and it has the roster. For the others, the first awareness state seen
//!   of a client is its *join*.
//! - an update: a newer clock for a present client (`updated`);
//! - a leave: the server clears a closed connection's states and relays
//!   that (`removed`).
//!
//! Differences that matter for the figures: the server relays every update
//! at once to every connection, the sender included (no coalescing; the
//! echo is dropped here and not counted), and it drops a state not renewed
//! for 30 s, which is why a client renews its state every 15 s as
//! y-protocols' own `Awareness` does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message as Frame;
use yrs::encoding::read::Cursor;
use yrs::sync::protocol::{DefaultProtocol, MessageReader, Protocol, SyncMessage};
use yrs::sync::{Awareness, AwarenessUpdate, Message};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, ReadTxn, Transact};

use super::{Read, Seen};

/// How often to check whether the local state needs renewing
/// (y-protocols: a tenth of its 30 s timeout).
pub const RENEW_CHECK: Duration = Duration::from_secs(3);
/// Renew the local state once it is this old (y-protocols: half of the
/// timeout after which others drop it).
const RENEW_AFTER: Duration = Duration::from_secs(15);

/// One y-websocket client: its awareness (which decides, by clock, what is
/// news) and who it has seen present.
pub struct Yjs {
    awareness: Awareness,
    me: ClientID,
    welcomed: bool,
    present: HashSet<ClientID>,
    last_set: Instant,
}

/// A client id unique within this process (a fresh random base per run, so
/// that runs against the same server do not collide), below 2^32 as Yjs's
/// own are.
fn client_id(n: u64) -> ClientID {
    static BASE: AtomicU64 = AtomicU64::new(0);
    if BASE.load(Ordering::Relaxed) == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        let seed = (nanos ^ (u64::from(std::process::id()) << 20)) & 0x7fff_ffff;
        let _ = BASE.compare_exchange(0, seed.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
    let id = (BASE.load(Ordering::Relaxed) + n) & 0xffff_ffff;
    ClientID::new(id.max(1))
}

fn binary(message: &Message) -> Frame {
    Frame::Binary(message.encode_v1().into())
}

impl Yjs {
    /// Client number `n`, present with `state` (y-protocols' default local
    /// state `{}` if none).
    pub fn new(n: u64, state: Option<String>) -> Self {
        let me = client_id(n);
        let mut awareness = Awareness::new(Doc::with_client_id(me.get()));
        awareness.set_local_state_raw(state.unwrap_or_else(|| "{}".into()));
        Yjs {
            awareness,
            me,
            welcomed: false,
            present: HashSet::new(),
            last_set: Instant::now(),
        }
    }

    /// This client's id as the scenarios see it.
    pub fn id(&self) -> String {
        self.me.get().to_string()
    }

    /// `/{room}`.
    pub fn path(&self, space: &str) -> String {
        format!("/{space}")
    }

    /// Sync step 1 and this client's awareness state, as a provider sends
    /// them on open.
    pub fn opening(&mut self) -> Vec<Frame> {
        let sv = self.awareness.doc().transact().state_vector();
        vec![
            binary(&Message::Sync(SyncMessage::SyncStep1(sv))),
            self.own_state(),
        ]
    }

    fn own_state(&self) -> Frame {
        let update = self
            .awareness
            .update_with_clients([self.me])
            .expect("the local state is set at creation");
        binary(&Message::Awareness(update))
    }

    /// Replaces this client's state.
    pub fn update(&mut self, state: &str) -> Frame {
        self.awareness.set_local_state_raw(state);
        self.last_set = Instant::now();
        self.own_state()
    }

    /// The same state with a newer clock, once it is due.
    pub fn renew(&mut self) -> Option<Frame> {
        if self.last_set.elapsed() < RENEW_AFTER {
            return None;
        }
        let state = self.awareness.local_state_raw()?;
        Some(self.update(&state))
    }

    /// Decodes one binary frame (one or more y-sync messages).
    pub fn read(&mut self, bytes: &[u8]) -> Read {
        let mut read = Read::default();
        let mut decoder = DecoderV1::new(Cursor::new(bytes));
        for message in MessageReader::new(&mut decoder) {
            match message {
                Ok(Message::Awareness(update)) => self.awareness_update(update, &mut read),
                Ok(other) => match DefaultProtocol.handle_message(&mut self.awareness, other) {
                    Ok(Some(reply)) => read.replies.push(binary(&reply)),
                    Ok(None) => {}
                    Err(e) => read.seen.push(Seen::Error(format!("y-sync: {e}"))),
                },
                Err(e) => {
                    read.seen.push(Seen::Error(format!("y-sync decoding: {e}")));
                    break;
                }
            }
        }
        read
    }

    fn awareness_update(&mut self, mut update: AwarenessUpdate, read: &mut Read) {
        let echo = update.clients.remove(&self.me);
        let states: HashMap<ClientID, Arc<str>> = update
            .clients
            .iter()
            .map(|(id, e)| (*id, e.json.clone()))
            .collect();
        match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => {
                for id in summary.added.iter().chain(&summary.updated) {
                    let state = states.get(id).map(|s| s.to_string());
                    let joined = self.present.insert(*id);
                    if self.welcomed {
                        let id = id.get().to_string();
                        read.seen.push(if joined {
                            Seen::Join { id, state }
                        } else {
                            Seen::Update { id, state }
                        });
                    }
                }
                for id in &summary.removed {
                    self.present.remove(id);
                    if self.welcomed {
                        read.seen.push(Seen::Leave {
                            id: id.get().to_string(),
                        });
                    }
                }
            }
            Ok(None) => {}
            Err(e) => read.seen.push(Seen::Error(format!("awareness: {e}"))),
        }
        let mine = self.awareness.meta(self.me).map_or(0, |(clock, _)| clock);
        if !self.welcomed && echo.is_some_and(|e| e.clock >= mine && &*e.json != "null") {
            self.welcomed = true;
            read.seen.push(Seen::Welcome {
                id: self.id(),
                roster: self.roster(),
            });
        }
    }

    /// Everyone present with their states, this client included.
    fn roster(&self) -> Vec<(String, Option<String>)> {
        self.awareness
            .iter()
            .filter(|(id, s)| *id == self.me || (self.present.contains(id) && s.data.is_some()))
            .map(|(id, s)| (id.get().to_string(), s.data.map(|d| d.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the server's own awareness of a room: the states it
    /// holds, encoded as it relays them.
    struct Room(Awareness);

    impl Room {
        fn new() -> Self {
            Room(Awareness::new(Doc::with_client_id(7)))
        }

        /// Applies what a client sent (its opening or an update).
        fn hear(&mut self, frame: &Frame) {
            let Frame::Binary(b) = frame else {
                panic!("y-sync is binary")
            };
            DefaultProtocol.handle(&mut self.0, b).unwrap();
        }

        fn relay(&self, ids: &[ClientID]) -> Vec<u8> {
            let u = self.0.update_with_clients(ids.iter().copied()).unwrap();
            Message::Awareness(u).encode_v1()
        }
    }

    fn other(n: u64, state: &str) -> Yjs {
        Yjs::new(n, Some(state.into()))
    }

    #[test]
    fn the_echo_of_its_own_state_is_the_welcome_with_the_roster() {
        let mut room = Room::new();
        let mut a = other(1, r#"{"seq":0,"n":1}"#);
        for f in a.opening() {
            room.hear(&f);
        }
        let mut b = other(2, r#"{"seq":0,"n":2}"#);
        let opening = b.opening();
        // The server sends the roster first; the joiner is not welcomed yet.
        let roster = b.read(&room.relay(&[a.me])).seen;
        assert_eq!(roster, vec![]);
        for f in &opening {
            room.hear(f);
        }
        let seen = b.read(&room.relay(&[b.me])).seen;
        let Seen::Welcome { id, mut roster } = seen[0].clone() else {
            panic!("{seen:?}")
        };
        roster.sort();
        assert_eq!(id, b.id());
        let mut want = vec![
            (a.id(), Some(r#"{"seq":0,"n":1}"#.to_string())),
            (b.id(), Some(r#"{"seq":0,"n":2}"#.to_string())),
        ];
        want.sort();
        assert_eq!(roster, want);
        // A's join echo: B saw A in its roster, so this is only the join
        // seen by others, and A's first state after that is an update.
        room.hear(&a.update(r#"{"seq":1,"n":1}"#));
        assert_eq!(
            b.read(&room.relay(&[a.me])).seen,
            vec![Seen::Update {
                id: a.id(),
                state: Some(r#"{"seq":1,"n":1}"#.into())
            }]
        );
        // Relaying the same clock again is no news.
        assert_eq!(b.read(&room.relay(&[a.me])).seen, vec![]);
        // A newcomer is a join, its removal a leave.
        let mut c = other(3, r#"{"seq":0,"n":3}"#);
        for f in c.opening() {
            room.hear(&f);
        }
        assert_eq!(
            b.read(&room.relay(&[c.me])).seen,
            vec![Seen::Join {
                id: c.id(),
                state: Some(r#"{"seq":0,"n":3}"#.into())
            }]
        );
        room.0.remove_state(c.me);
        assert_eq!(
            b.read(&room.relay(&[c.me])).seen,
            vec![Seen::Leave { id: c.id() }]
        );
    }

    #[test]
    fn sync_step_1_is_answered_with_step_2() {
        let room = Room::new();
        let sv = room.0.doc().transact().state_vector();
        let step1 = Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1();
        let mut a = other(1, "{}");
        let read = a.read(&step1);
        assert_eq!(read.seen, vec![]);
        assert_eq!(read.replies.len(), 1);
        let Frame::Binary(b) = &read.replies[0] else {
            panic!()
        };
        assert_eq!(b[0], 0, "a sync message");
        assert_eq!(b[1], 1, "step 2");
    }

    #[test]
    fn the_state_is_renewed_only_when_due() {
        let mut a = other(1, "{}");
        assert!(a.renew().is_none());
        a.last_set -= RENEW_AFTER;
        let before = a.awareness.meta(a.me).unwrap().0;
        assert!(a.renew().is_some());
        assert_eq!(a.awareness.meta(a.me).unwrap().0, before + 1);
        assert_eq!(a.awareness.local_state_raw().as_deref(), Some("{}"));
    }
}
