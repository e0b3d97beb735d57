//! The local side of a space: the sockets one process holds, what they have
//! been told, and the messages that keep them in step with the roster.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::conn_id::ConnId;
use crate::defaults::{DEFAULT_MAX_HELD_EVENTS, DEFAULT_MAX_STATE_BYTES};
use crate::error_kind::ErrorKind;
use crate::inbound::{decode_limited, ClientMessage, Frame};
use crate::join::{JoinError, ResumeChanges};
use crate::output::{Command, Disconnect, Output, Relay};
use crate::roster::{RosterEvent, Sequenced};
use crate::time::UnixMillis;
use crate::wire::{ClientInfo, ServerMessage};

mod apply;
mod coalesce;
mod relay;
mod resync;
mod view;

use coalesce::Coalescer;
use view::View;

#[derive(Debug, Clone)]
struct Conn {
    /// The lease this socket asked for or holds.
    id: ClientId,
    /// Welcomed: receives events from now on.
    joined: bool,
    /// The sequence number at which the store took this socket's join, once
    /// known: a snapshot at or after it settles the socket's fate.
    confirmed_at: Option<u64>,
    /// What its join brings to a lease it resumes, until it is welcomed:
    /// its welcome shows its own record with them (the update that stores
    /// them may come after the event that welcomes it).
    changes: Option<ResumeChanges>,
}

/// What one frame asks of whoever keeps the roster, and what it was
/// refused for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Framed {
    /// The roster change it asks for (a renewal, or the end of the lease
    /// when the frame forces a close).
    pub command: Option<Command>,
    /// The error the client was told of (or closed for), as a value.
    pub error: Option<ErrorKind>,
}

/// One space's sockets on this process. It applies roster events in
/// sequence order and turns them into messages; every local socket shares
/// one view of the roster, so a welcome plus the events after it always add
/// up to the view.
#[derive(Debug, Clone)]
pub struct Hub {
    conns: HashMap<ConnId, Conn>,
    /// The roster as local sockets know it, with each client's text.
    view: View,
    applied: u64,
    /// Events held back behind a gap: sequence → (arrival number, event).
    buffered: BTreeMap<u64, (u64, RosterEvent)>,
    /// How many events have arrived, to tell what came before a snapshot
    /// was asked for ([`Hub::mark`]).
    arrivals: u64,
    /// The most events held back; beyond it they are dropped and
    /// [`Hub::overflowed`] says so until a resync.
    max_held: usize,
    overflowed: bool,
    /// Fingerprints of the last events applied in order, to notice a
    /// history that contradicts itself (a store that went back and wrote
    /// other events under the same numbers).
    recent: VecDeque<(u64, u64)>,
    contradicted: bool,
    max_message_bytes: usize,
    max_state_bytes: usize,
    /// Updates held back per socket (section 10's coalescing).
    coalescer: Coalescer,
    /// Relayed messages published ahead of what the view has applied:
    /// (sequence to wait for, sender, text), in arrival order.
    relays: VecDeque<(u64, Option<ClientId>, Arc<str>)>,
}

/// How many applied events' fingerprints a hub keeps.
const RECENT: usize = 64;

fn fingerprint(event: &RosterEvent) -> u64 {
    // SipHash with fixed keys: the same event gives the same value.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    event.hash(&mut h);
    h.finish()
}

impl Hub {
    /// An empty hub whose view is the roster as of sequence `applied`
    /// (0 for a new space, or a snapshot's sequence together with
    /// [`Hub::resync`]).
    pub fn new(max_message_bytes: usize, applied: u64) -> Self {
        Hub {
            conns: HashMap::new(),
            view: View::default(),
            applied,
            buffered: BTreeMap::new(),
            arrivals: 0,
            max_held: DEFAULT_MAX_HELD_EVENTS,
            overflowed: false,
            recent: VecDeque::new(),
            contradicted: false,
            max_message_bytes,
            max_state_bytes: DEFAULT_MAX_STATE_BYTES,
            coalescer: Coalescer::new(0),
            relays: VecDeque::new(),
        }
    }

    /// States of at most `max_state_bytes` (`MAX_STATE_BYTES`), one
    /// socket's updates sent at most once per `update_interval_ms`
    /// (`UPDATE_INTERVAL_MS`; 0: every one).
    pub fn with_updates(mut self, max_state_bytes: usize, update_interval_ms: u64) -> Self {
        self.max_state_bytes = max_state_bytes;
        self.coalescer = Coalescer::new(update_interval_ms);
        self
    }

    /// Holds at most `max_held` events behind a gap (at least one).
    pub fn with_max_held(mut self, max_held: usize) -> Self {
        self.max_held = max_held.max(1);
        self
    }

    /// Registers a socket that is joining as `id`; it is welcomed when the
    /// roster event that gives it the lease is applied.
    pub fn open(&mut self, conn: ConnId, id: ClientId) {
        self.conns.insert(
            conn,
            Conn {
                id,
                joined: false,
                confirmed_at: None,
                changes: None,
            },
        );
    }

    /// [`Hub::open`] for a join that may resume a lease with `changes`
    /// (`state=`, a token's `info`, `username=`): its own welcome shows
    /// the record as the resume leaves it.
    pub fn open_with(&mut self, conn: ConnId, id: ClientId, changes: ResumeChanges) {
        self.open(conn, id);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.changes = Some(changes);
        }
    }

    /// Registers a socket that was welcomed before this hub existed: a
    /// Durable Object rebuilt after hibernation finds its sockets still
    /// open, and they must go on receiving events without a second welcome.
    pub fn reattach(&mut self, conn: ConnId, id: ClientId) {
        self.conns.insert(
            conn,
            Conn {
                id,
                joined: true,
                confirmed_at: None,
                changes: None,
            },
        );
    }

    /// Records that the store took a joining socket's join at sequence
    /// `seq`. Until then a resync leaves the socket waiting (its join may
    /// still be on its way); from then on a snapshot that does not give it
    /// the lease closes it (4000 if the lease is gone, 4001 if another
    /// socket holds it) instead of leaving it waiting for ever. If the view
    /// is already past `seq` and the socket was not welcomed, a snapshot
    /// skipped its join and did not give it the lease: it is closed now.
    pub fn confirm(&mut self, conn: ConnId, seq: u64, out: &mut Vec<Output>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.confirmed_at = Some(seq);
        if c.joined || seq > self.applied {
            return;
        }
        let id = c.id.clone();
        let code = if self.view.contains_key(&id) {
            CloseCode::Replaced
        } else {
            CloseCode::LeaseExpired
        };
        self.drop_conn(conn);
        out.push(Output::Close { conn, code });
    }

    /// Refuses a joining socket: the error, then close 1008.
    pub fn refuse(&mut self, conn: ConnId, error: &JoinError, out: &mut Vec<Output>) {
        self.drop_conn(conn);
        refuse(conn, error, out);
    }

    /// Applies one roster event. Events arrive in any order and any number
    /// of times; each is applied once, in sequence. One that leaves a gap is
    /// held back until the gap fills or [`Hub::resync`] replaces it.
    /// A gap holds back at most the hub's bound (see [`Hub::with_max_held`]):
    /// beyond it every held event is dropped and the hub waits for a resync.
    pub fn apply(&mut self, event: Sequenced, out: &mut Vec<Output>) {
        if event.seq <= self.applied {
            // A duplicate, unless it says something else than what was
            // applied under its number.
            let print = fingerprint(&event.event);
            if self
                .recent
                .iter()
                .any(|(seq, p)| *seq == event.seq && *p != print)
            {
                self.contradicted = true;
            }
            return;
        }
        self.arrivals += 1;
        if let Some((_, held)) = self.buffered.get(&event.seq) {
            if *held != event.event {
                self.contradicted = true;
            }
        }
        let next = event.seq == self.applied + 1;
        if !next && !self.buffered.contains_key(&event.seq) && self.buffered.len() >= self.max_held
        {
            self.buffered.clear();
            self.overflowed = true;
            return;
        }
        self.buffered
            .entry(event.seq)
            .or_insert((self.arrivals, event.event));
        self.drain(out);
    }

    /// True while events are held back behind a gap (or were dropped for
    /// want of room): the caller should fetch a snapshot and
    /// [`Hub::resync`] if the gap does not fill soon.
    pub fn has_gap(&self) -> bool {
        !self.buffered.is_empty() || self.overflowed
    }

    /// True once held-back events were dropped because the gap grew past
    /// the bound: waiting cannot fill it, only a resync can.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// True once two different events arrived under one sequence number:
    /// the store's history went back and was written again (a failover to
    /// a replica that was behind), so this view cannot be trusted. Cleared
    /// by [`Hub::rebase`].
    pub fn contradicted(&self) -> bool {
        self.contradicted
    }

    /// The highest sequence number this hub has seen, applied or held
    /// back: evidence of how far the store's history has gone.
    pub fn seen(&self) -> u64 {
        self.buffered
            .last_key_value()
            .map_or(self.applied, |(seq, _)| *seq)
    }

    /// A mark of what has arrived so far, taken when a snapshot is asked
    /// for; see [`Hub::resync_since`].
    pub fn mark(&self) -> u64 {
        self.arrivals
    }

    /// The sequence number of the last applied event.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn drain(&mut self, out: &mut Vec<Output>) {
        while let Some((_, event)) = self.buffered.remove(&(self.applied + 1)) {
            self.applied += 1;
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back((self.applied, fingerprint(&event)));
            self.apply_in_order(event, out);
        }
        self.release_relays(out);
    }

    /// Handles one frame from a socket: the roster change it asks for (a
    /// renewal, or the end of the lease when the frame forces a close) and
    /// the kind of error it was refused with.
    ///
    /// An update is coalesced (see [`Hub::with_updates`]): it may come back
    /// later, from [`Hub::due_updates`], or with the socket's leave.
    pub fn frame(
        &mut self,
        conn: ConnId,
        frame: Frame<'_>,
        now: UnixMillis,
        out: &mut Vec<Output>,
    ) -> Framed {
        let Some(c) = self.conns.get(&conn) else {
            return Framed::default();
        };
        let id = c.id.clone();
        let joined = c.joined;
        let message = decode_limited(frame, self.max_message_bytes, self.max_state_bytes);
        let command = |command| Framed {
            command: Some(command),
            error: None,
        };
        match message {
            Ok(ClientMessage::Ping) => command(Command::Renew { id, holder: conn }),
            Ok(ClientMessage::Update { state }) => {
                match self.coalescer.offer(conn, state, joined, now) {
                    Some(state) => command(Command::Update {
                        id,
                        holder: conn,
                        state,
                    }),
                    None => Framed::default(),
                }
            }
            // Relayed only once the sender is welcomed: before, nobody may
            // have seen it join.
            Ok(ClientMessage::Broadcast { .. } | ClientMessage::Cursor { .. }) if !joined => {
                Framed::default()
            }
            Ok(ClientMessage::Broadcast { data }) => command(Command::Relay {
                id,
                holder: conn,
                relay: Relay::Broadcast(data),
            }),
            Ok(ClientMessage::Cursor { fields }) => command(Command::Relay {
                id,
                holder: conn,
                relay: Relay::Cursor(fields),
            }),
            Err(error) => {
                if error.has_message() {
                    send(conn, ServerMessage::Error(error.to_string()).encode(), out);
                }
                let command = error.close_code().map(|code| {
                    let held = self.coalescer.take(conn);
                    self.drop_conn(conn);
                    out.push(Output::Close { conn, code });
                    Command::Leave {
                        id,
                        holder: conn,
                        held,
                    }
                });
                Framed {
                    command,
                    error: Some(error.kind()),
                }
            }
        }
    }

    /// Forgets a socket that closed; a clean close ends its lease (with
    /// the update it held, if any), a lost one sends the update it held
    /// (the lease runs on, and the latest state is never lost).
    pub fn closed(&mut self, conn: ConnId, how: Disconnect) -> Option<Command> {
        let held = self.coalescer.take(conn);
        let c = self.drop_conn(conn)?;
        match how {
            Disconnect::Clean => Some(Command::Leave {
                id: c.id,
                holder: conn,
                held,
            }),
            Disconnect::Lost => held.map(|state| Command::Update {
                id: c.id,
                holder: conn,
                state,
            }),
        }
    }

    /// The updates held back that are due at `now`, to carry out like a
    /// frame's command; see [`Hub::next_deadline`].
    pub fn due_updates(&mut self, now: UnixMillis) -> Vec<Command> {
        self.coalescer
            .take_due(now)
            .into_iter()
            .filter_map(|(conn, state)| {
                let id = self.conns.get(&conn)?.id.clone();
                Some(Command::Update {
                    id,
                    holder: conn,
                    state,
                })
            })
            .collect()
    }

    /// When a held update is due (call [`Hub::due_updates`] then).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.coalescer.next_deadline()
    }

    /// Closes one socket with `code` and keeps its lease (1011 on an
    /// internal error): it behaves as a lost connection, so an update it
    /// held comes back to be sent.
    pub fn evict(
        &mut self,
        conn: ConnId,
        code: CloseCode,
        out: &mut Vec<Output>,
    ) -> Option<Command> {
        let held = self.coalescer.take(conn);
        let c = self.drop_conn(conn)?;
        out.push(Output::Close { conn, code });
        held.map(|state| Command::Update {
            id: c.id,
            holder: conn,
            state,
        })
    }

    /// Closes every socket with 1012, keeping the leases, for a restart;
    /// the updates they held come back to be stored, so that the clients
    /// resume with their latest state.
    pub fn shutdown(&mut self, out: &mut Vec<Output>) -> Vec<Command> {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        let mut held = Vec::new();
        for conn in conns {
            if let Some(state) = self.coalescer.take(conn) {
                let id = self.conns[&conn].id.clone();
                held.push(Command::Update {
                    id,
                    holder: conn,
                    state,
                });
            }
            self.drop_conn(conn);
            out.push(Output::Close {
                conn,
                code: CloseCode::ServiceRestart,
            });
        }
        held
    }

    /// The roster as local sockets know it, in welcome order.
    pub fn view(&self) -> Vec<ClientInfo> {
        self.view.sorted()
    }

    /// The client under `id` as local sockets know it.
    pub fn viewed(&self, id: &ClientId) -> Option<&ClientInfo> {
        self.view.get(id)
    }

    /// The lease a local socket asked for or holds.
    pub fn client_of(&self, conn: ConnId) -> Option<&ClientId> {
        self.conns.get(&conn).map(|c| &c.id)
    }

    /// Local sockets, joining or joined, with their lease ids.
    pub fn conns(&self) -> impl Iterator<Item = (ConnId, &ClientId)> {
        self.conns.iter().map(|(conn, c)| (*conn, &c.id))
    }

    /// How many sockets this hub holds.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn welcome(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.joined = true;
        let id = c.id.clone();
        let changes = c.changes.take();
        self.coalescer.welcomed(conn);
        // A resume's own record as its join changes it (the update that
        // stores the changes may come after this event).
        let own = changes.and_then(|changes| self.view.get(&id).and_then(|c| changes.apply(c)));
        send(conn, self.view.welcome(&id, own.as_ref()), out);
    }

    fn expire_local(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        if self.drop_conn(conn).is_some() {
            send(conn, ServerMessage::Expired.encode(), out);
            out.push(Output::Close {
                conn,
                code: CloseCode::LeaseExpired,
            });
        }
    }

    /// Forgets a socket, and any update it held.
    fn drop_conn(&mut self, conn: ConnId) -> Option<Conn> {
        self.coalescer.take(conn);
        self.conns.remove(&conn)
    }

    fn joined_conn_of(&self, id: &ClientId) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.joined && &c.id == id)
            .map(|(conn, _)| *conn)
    }

    /// Sends to every welcomed socket except the subject's own.
    fn broadcast(&self, subject: &ClientId, message: &ServerMessage, out: &mut Vec<Output>) {
        self.broadcast_text(subject, || message.encode(), out);
    }

    /// Sends `subject`'s `remote join` (or `remote update`), made of its
    /// kept text, to every welcomed socket except its own.
    fn broadcast_viewed(
        &self,
        subject: &ClientId,
        event: fn(&str) -> Arc<str>,
        out: &mut Vec<Output>,
    ) {
        let kept = self.view.text_of(subject).expect("a client in view");
        self.broadcast_text(subject, || event(kept), out);
    }

    /// Sends one text, rendered at most once and only if someone gets it,
    /// to every welcomed socket except the subject's own.
    fn broadcast_text(
        &self,
        subject: &ClientId,
        render: impl Fn() -> Arc<str>,
        out: &mut Vec<Output>,
    ) {
        let mut text: Option<Arc<str>> = None;
        for (&conn, c) in &self.conns {
            if c.joined && &c.id != subject {
                let text = text.get_or_insert_with(&render).clone();
                out.push(Output::Send { conn, text });
            }
        }
    }
}

/// The answer to a refused join: the error text, then close 1008 (1013
/// for a full space).
pub fn refuse(conn: ConnId, error: &JoinError, out: &mut Vec<Output>) {
    send(conn, ServerMessage::Error(error.to_string()).encode(), out);
    out.push(Output::Close {
        conn,
        code: error.close_code(),
    });
}

pub(crate) fn send(conn: ConnId, text: Arc<str>, out: &mut Vec<Output>) {
    out.push(Output::Send { conn, text });
}
