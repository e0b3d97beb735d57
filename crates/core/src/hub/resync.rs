//! Bringing a hub's view to a snapshot of the roster: the joins, leaves
//! and updates its sockets missed, told exactly once.

use std::collections::HashMap;

use super::{send, Hub};
use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::conn_id::ConnId;
use crate::output::Output;
use crate::roster::LeaveCause;
use crate::wire::{remote_join_text, remote_update_text, ClientInfo, ServerMessage};

impl Hub {
    /// Brings the view to a snapshot of the roster taken at sequence `seq`
    /// (leases with their holders), telling local sockets exactly the joins
    /// and leaves they missed, then applies held-back events newer than it.
    pub fn resync(
        &mut self,
        snapshot: impl IntoIterator<Item = (ClientInfo, ConnId)>,
        seq: u64,
        out: &mut Vec<Output>,
    ) {
        self.resync_since(snapshot, seq, None, out);
    }

    /// [`Hub::resync`] with a snapshot asked for at `mark` ([`Hub::mark`]):
    /// a held-back event newer than the snapshot that had already arrived
    /// when it was asked for cannot be part of the store's history (the
    /// snapshot would include it), so it is dropped rather than held for
    /// ever.
    pub fn resync_since(
        &mut self,
        snapshot: impl IntoIterator<Item = (ClientInfo, ConnId)>,
        seq: u64,
        mark: Option<u64>,
        out: &mut Vec<Output>,
    ) {
        if seq < self.applied {
            // Older than what this hub already applied: nothing to learn.
            return;
        }
        self.diff(snapshot, seq, out);
        self.applied = seq;
        self.recent.clear();
        self.buffered = self.buffered.split_off(&(seq + 1));
        if let Some(mark) = mark {
            self.buffered.retain(|_, (arrival, _)| *arrival > mark);
        }
        self.overflowed = false;
        self.drain(out);
        self.release_relays(out);
    }

    /// Brings the view to a snapshot of another history (the store lost
    /// the space's data and began a new one, whose sequence numbers are
    /// unrelated to the old ones): like [`Hub::resync`] whatever the
    /// sequence number, and every join already confirmed is settled by
    /// this snapshot.
    pub fn rebase(
        &mut self,
        snapshot: impl IntoIterator<Item = (ClientInfo, ConnId)>,
        seq: u64,
        out: &mut Vec<Output>,
    ) {
        for c in self.conns.values_mut() {
            if c.confirmed_at.is_some() {
                c.confirmed_at = Some(0);
            }
        }
        self.buffered.clear();
        self.overflowed = false;
        self.recent.clear();
        self.contradicted = false;
        self.diff(snapshot, seq, out);
        self.applied = seq;
        // Their numbers are of the old history: shown now, to whoever sees
        // their senders.
        for (_, from, text) in std::mem::take(&mut self.relays) {
            self.deliver(from.as_ref(), &text, out);
        }
    }

    /// Tells local sockets what separates their view from `snapshot`.
    fn diff(
        &mut self,
        snapshot: impl IntoIterator<Item = (ClientInfo, ConnId)>,
        seq: u64,
        out: &mut Vec<Output>,
    ) {
        let truth: HashMap<ClientId, (ClientInfo, ConnId)> = snapshot
            .into_iter()
            .map(|(c, holder)| (c.id.clone(), (c, holder)))
            .collect();

        let gone: Vec<ClientInfo> = self
            .view
            .values()
            // Gone, or replaced by another lease under the same id.
            .filter(|c| truth.get(&c.id).is_none_or(|(t, _)| !t.same_lease(c)))
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
            // Why is not known; a lease that ended unheard most likely ran out.
            let leave = ServerMessage::RemoteLeave {
                client: client.clone(),
                reason: LeaveCause::Expired,
            };
            self.broadcast(&client.id, &leave, out);
        }

        // Leases in view whose record changed unheard: one update each.
        let mut changed: Vec<&ClientInfo> = truth
            .values()
            .map(|(c, _)| c)
            .filter(|c| self.view.get(&c.id).is_some_and(|v| v != *c))
            .collect();
        changed.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
        for client in changed {
            self.view.insert(client.id.clone(), client.clone());
            self.broadcast_viewed(&client.id, remote_update_text, out);
        }

        let mut arrived: Vec<&ClientInfo> = truth
            .values()
            .filter(|(c, _)| !self.view.contains_key(&c.id))
            .map(|(c, _)| c)
            .collect();
        arrived.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
        for client in arrived {
            self.view.insert(client.id.clone(), client.clone());
            self.broadcast_viewed(&client.id, remote_join_text, out);
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
            let c = self.drop_conn(conn).expect("listed above");
            if code == CloseCode::LeaseExpired && c.joined {
                send(conn, ServerMessage::Expired.encode(), out);
            }
            out.push(Output::Close { conn, code });
        }
        welcomed.sort();
        for conn in welcomed {
            self.welcome(conn, out);
        }
    }
}
