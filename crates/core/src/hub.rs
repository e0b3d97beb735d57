//! The local side of a space: the sockets one process holds, what they have
//! been told, and the messages that keep them in step with the roster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::conn_id::ConnId;
use crate::inbound::{decode, ClientMessage, Frame};
use crate::join::JoinError;
use crate::output::{Command, Disconnect, Output};
use crate::roster::{LeaveCause, RosterEvent, Sequenced};
use crate::wire::{ClientInfo, ServerMessage};

#[derive(Debug, Clone)]
struct Conn {
    /// The lease this socket asked for or holds.
    id: ClientId,
    /// Welcomed: receives events from now on.
    joined: bool,
    /// The sequence number at which the store took this socket's join, once
    /// known: a snapshot at or after it settles the socket's fate.
    confirmed_at: Option<u64>,
}

/// One space's sockets on this process. It applies roster events in
/// sequence order and turns them into messages; every local socket shares
/// one view of the roster, so a welcome plus the events after it always add
/// up to the view.
#[derive(Debug, Clone)]
pub struct Hub {
    conns: HashMap<ConnId, Conn>,
    view: HashMap<ClientId, ClientInfo>,
    applied: u64,
    buffered: BTreeMap<u64, RosterEvent>,
    max_message_bytes: usize,
}

impl Hub {
    /// An empty hub whose view is the roster as of sequence `applied`
    /// (0 for a new space, or a snapshot's sequence together with
    /// [`Hub::resync`]).
    pub fn new(max_message_bytes: usize, applied: u64) -> Self {
        Hub {
            conns: HashMap::new(),
            view: HashMap::new(),
            applied,
            buffered: BTreeMap::new(),
            max_message_bytes,
        }
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
            },
        );
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
            },
        );
    }

    /// Records that the store took a joining socket's join at sequence
    /// `seq`. Until then a resync leaves the socket waiting (its join may
    /// still be on its way); from then on a snapshot that does not give it
    /// the lease closes it (4000 if the lease is gone, 4001 if another
    /// socket holds it) instead of leaving it waiting for ever.
    pub fn confirm(&mut self, conn: ConnId, seq: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.confirmed_at = Some(seq);
        }
    }

    /// Refuses a joining socket: the error, then close 1008.
    pub fn refuse(&mut self, conn: ConnId, error: &JoinError, out: &mut Vec<Output>) {
        self.conns.remove(&conn);
        refuse(conn, error, out);
    }

    /// Applies one roster event. Events arrive in any order and any number
    /// of times; each is applied once, in sequence. One that leaves a gap is
    /// held back until the gap fills or [`Hub::resync`] replaces it.
    pub fn apply(&mut self, event: Sequenced, out: &mut Vec<Output>) {
        if event.seq <= self.applied {
            return;
        }
        self.buffered.insert(event.seq, event.event);
        while let Some(event) = self.buffered.remove(&(self.applied + 1)) {
            self.applied += 1;
            self.apply_in_order(event, out);
        }
    }

    /// True while events are held back behind a gap: the caller should
    /// fetch a snapshot and [`Hub::resync`] if the gap does not fill soon.
    pub fn has_gap(&self) -> bool {
        !self.buffered.is_empty()
    }

    /// The sequence number of the last applied event.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Brings the view to a snapshot of the roster taken at sequence `seq`
    /// (leases with their holders), telling local sockets exactly the joins
    /// and leaves they missed, then applies held-back events newer than it.
    pub fn resync(
        &mut self,
        snapshot: impl IntoIterator<Item = (ClientInfo, ConnId)>,
        seq: u64,
        out: &mut Vec<Output>,
    ) {
        if seq < self.applied {
            // Older than what this hub already applied: nothing to learn.
            return;
        }
        let truth: HashMap<ClientId, (ClientInfo, ConnId)> = snapshot
            .into_iter()
            .map(|(c, holder)| (c.id.clone(), (c, holder)))
            .collect();

        let gone: Vec<ClientInfo> = self
            .view
            .values()
            // Gone, or replaced by another lease under the same id.
            .filter(|c| truth.get(&c.id).is_none_or(|(t, _)| t != *c))
            .cloned()
            .collect();
        for client in gone {
            self.view.remove(&client.id);
            // The lease ended without our hearing: for a socket of ours that
            // still held it, that can only be an expiry.
            let holder = self.joined_conn_of(&client.id);
            if let Some(conn) = holder {
                self.expire_local(conn, out);
            }
            self.broadcast(&client.id, &ServerMessage::RemoteLeave(client.clone()), out);
        }

        let mut arrived: Vec<&ClientInfo> = truth
            .values()
            .filter(|(c, _)| !self.view.contains_key(&c.id))
            .map(|(c, _)| c)
            .collect();
        arrived.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
        for client in arrived {
            self.view.insert(client.id.clone(), client.clone());
            self.broadcast(&client.id, &ServerMessage::RemoteJoin(client.clone()), out);
        }

        // Sockets of ours that lost their lease to another connection, and
        // joining sockets whose lease is now in the roster.
        let mut closed = Vec::new();
        let mut welcomed = Vec::new();
        for (&conn, c) in &self.conns {
            let settled = c.joined || c.confirmed_at.is_some_and(|at| at <= seq);
            match truth.get(&c.id) {
                Some((_, holder)) if *holder == conn && !c.joined => welcomed.push(conn),
                Some((_, holder)) if *holder == conn => {}
                Some(_) if settled => closed.push((conn, CloseCode::Replaced)),
                None if settled => closed.push((conn, CloseCode::LeaseExpired)),
                _ => {}
            }
        }
        closed.sort_by_key(|(conn, _)| *conn);
        for (conn, code) in closed {
            let c = self.conns.remove(&conn).expect("listed above");
            if code == CloseCode::LeaseExpired && c.joined {
                send(conn, ServerMessage::Expired.encode(), out);
            }
            out.push(Output::Close { conn, code });
        }
        welcomed.sort();
        for conn in welcomed {
            self.welcome(conn, out);
        }

        self.applied = seq;
        self.buffered = self.buffered.split_off(&(seq + 1));
        while let Some(event) = self.buffered.remove(&(self.applied + 1)) {
            self.applied += 1;
            self.apply_in_order(event, out);
        }
    }

    /// Handles one frame from a socket, returning the roster change it asks
    /// for (a renewal, or the end of the lease when the frame forces a
    /// close).
    pub fn frame(
        &mut self,
        conn: ConnId,
        frame: Frame<'_>,
        out: &mut Vec<Output>,
    ) -> Option<Command> {
        let id = self.conns.get(&conn)?.id.clone();
        match decode(frame, self.max_message_bytes) {
            Ok(ClientMessage::Ping) => Some(Command::Renew { id, holder: conn }),
            Err(error) => {
                if error.has_message() {
                    send(conn, ServerMessage::Error(error.to_string()).encode(), out);
                }
                let code = error.close_code()?;
                self.conns.remove(&conn);
                out.push(Output::Close { conn, code });
                Some(Command::Leave { id, holder: conn })
            }
        }
    }

    /// Forgets a socket that closed; a clean close ends its lease.
    pub fn closed(&mut self, conn: ConnId, how: Disconnect) -> Option<Command> {
        let c = self.conns.remove(&conn)?;
        match how {
            Disconnect::Clean => Some(Command::Leave {
                id: c.id,
                holder: conn,
            }),
            Disconnect::Lost => None,
        }
    }

    /// Closes one socket with `code` and keeps its lease (1011 on an
    /// internal error): it behaves as a lost connection.
    pub fn evict(&mut self, conn: ConnId, code: CloseCode, out: &mut Vec<Output>) {
        if self.conns.remove(&conn).is_some() {
            out.push(Output::Close { conn, code });
        }
    }

    /// Closes every socket with 1012, keeping the leases, for a restart.
    pub fn shutdown(&mut self, out: &mut Vec<Output>) {
        let mut conns: Vec<ConnId> = self.conns.drain().map(|(c, _)| c).collect();
        conns.sort();
        out.extend(conns.into_iter().map(|conn| Output::Close {
            conn,
            code: CloseCode::ServiceRestart,
        }));
    }

    /// The roster as local sockets know it, in welcome order.
    pub fn view(&self) -> Vec<ClientInfo> {
        let mut clients: Vec<ClientInfo> = self.view.values().cloned().collect();
        clients.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
        clients
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

    fn apply_in_order(&mut self, event: RosterEvent, out: &mut Vec<Output>) {
        match event {
            RosterEvent::Joined { client, holder } => {
                let id = client.id.clone();
                let known = self.view.insert(id.clone(), client.clone()).is_some();
                if !known {
                    self.broadcast(&id, &ServerMessage::RemoteJoin(client), out);
                }
                if self
                    .conns
                    .get(&holder)
                    .is_some_and(|c| !c.joined && c.id == id)
                {
                    self.welcome(holder, out);
                }
            }
            RosterEvent::Resumed {
                client,
                holder,
                replaced,
            } => {
                let id = client.id.clone();
                if self.view.insert(id.clone(), client.clone()).is_none() {
                    // Only after a resync that missed the join.
                    self.broadcast(&id, &ServerMessage::RemoteJoin(client), out);
                }
                if replaced != holder && self.conns.get(&replaced).is_some_and(|c| c.id == id) {
                    self.conns.remove(&replaced);
                    out.push(Output::Close {
                        conn: replaced,
                        code: CloseCode::Replaced,
                    });
                }
                if self
                    .conns
                    .get(&holder)
                    .is_some_and(|c| !c.joined && c.id == id)
                {
                    self.welcome(holder, out);
                }
            }
            RosterEvent::Left {
                client,
                holder,
                cause,
            } => {
                if self.conns.get(&holder).is_some_and(|c| c.id == client.id) {
                    match cause {
                        LeaveCause::Expired => self.expire_local(holder, out),
                        LeaveCause::Closed => {
                            self.conns.remove(&holder);
                        }
                    }
                }
                if self.view.remove(&client.id).is_some() {
                    let id = client.id.clone();
                    self.broadcast(&id, &ServerMessage::RemoteLeave(client), out);
                }
            }
        }
    }

    fn welcome(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.joined = true;
        let id = c.id.clone();
        let text = ServerMessage::Welcome {
            id,
            clients: self.view(),
        }
        .encode();
        send(conn, text, out);
    }

    fn expire_local(&mut self, conn: ConnId, out: &mut Vec<Output>) {
        if self.conns.remove(&conn).is_some() {
            send(conn, ServerMessage::Expired.encode(), out);
            out.push(Output::Close {
                conn,
                code: CloseCode::LeaseExpired,
            });
        }
    }

    fn joined_conn_of(&self, id: &ClientId) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.joined && &c.id == id)
            .map(|(conn, _)| *conn)
    }

    /// Sends to every welcomed socket except the subject's own.
    fn broadcast(&self, subject: &ClientId, message: &ServerMessage, out: &mut Vec<Output>) {
        let mut text: Option<Arc<str>> = None;
        for (&conn, c) in &self.conns {
            if c.joined && &c.id != subject {
                let text = text.get_or_insert_with(|| message.encode()).clone();
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

fn send(conn: ConnId, text: Arc<str>, out: &mut Vec<Output>) {
    out.push(Output::Send { conn, text });
}
