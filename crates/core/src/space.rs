//! A whole space in one process: the roster and the hub together, for the
//! targets that keep presence in memory (the native in-memory store, the
//! Durable Object).

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::error_kind::ErrorKind;
use crate::hub::{refuse, Hub};
use crate::inbound::Frame;
use crate::join::JoinRequest;
use crate::json::Json;
use crate::output::{Command, Disconnect, Output};
use crate::roster::{Roster, RosterEvent, Sequenced};
use crate::time::UnixMillis;

/// The per-space settings of sections 9 and 15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceConfig {
    /// Lease length, ms (`PRESENCE_TTL`).
    pub ttl_ms: u64,
    /// Largest accepted message, bytes (`MAX_MESSAGE_BYTES`).
    pub max_message_bytes: usize,
    /// Largest state (as sent) or `info`, bytes (`MAX_STATE_BYTES`).
    pub max_state_bytes: usize,
    /// One client's updates reach the others at most once per this many
    /// ms (`UPDATE_INTERVAL_MS`; 0: every one).
    pub update_interval_ms: u64,
}

impl Default for SpaceConfig {
    fn default() -> Self {
        SpaceConfig {
            ttl_ms: crate::DEFAULT_PRESENCE_TTL_MS,
            max_message_bytes: crate::DEFAULT_MAX_MESSAGE_BYTES,
            max_state_bytes: crate::defaults::DEFAULT_MAX_STATE_BYTES,
            update_interval_ms: crate::defaults::DEFAULT_UPDATE_INTERVAL_MS,
        }
    }
}

impl SpaceConfig {
    /// A hub under these settings whose view is the roster as of `applied`.
    pub(crate) fn hub(&self, applied: u64) -> Hub {
        Hub::new(self.max_message_bytes, applied)
            .with_updates(self.max_state_bytes, self.update_interval_ms)
    }
}

/// What one input did: the socket effects to carry out, and the roster
/// changes behind them (for logs, metrics and persistence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Effects on local sockets, in order.
    pub outputs: Vec<Output>,
    /// Roster events, in sequence order.
    pub events: Vec<Sequenced>,
    /// Leases whose expiry moved (pings), for targets that persist it.
    pub renewed: Vec<ClientId>,
    /// The errors clients were told of (or closed for), by kind, for
    /// metrics.
    pub errors: Vec<ErrorKind>,
}

impl Step {
    /// Appends what `other` did after what this one did.
    pub fn extend(&mut self, other: Step) {
        self.outputs.extend(other.outputs);
        self.events.extend(other.events);
        self.renewed.extend(other.renewed);
        self.errors.extend(other.errors);
    }
}

/// One space, whole: feed it joins, frames, closes and the time; carry out
/// the [`Step`] it returns; wake it again at [`Space::next_deadline`].
#[derive(Debug, Clone)]
pub struct Space {
    config: SpaceConfig,
    max_clients: Option<usize>,
    roster: Roster,
    hub: Hub,
}

impl Space {
    /// An empty space.
    pub fn new(config: SpaceConfig) -> Self {
        Self::restore(config, Roster::new())
    }

    /// A space around a stored roster, with no sockets yet: the view starts
    /// as the roster, since whoever reconnects is welcomed from it.
    pub fn restore(config: SpaceConfig, roster: Roster) -> Self {
        let mut hub = config.hub(0);
        let snapshot = roster.leases().map(|l| (l.client.clone(), l.holder));
        hub.resync(snapshot, roster.seq(), &mut Vec::new());
        Space {
            config,
            max_clients: None,
            roster,
            hub,
        }
    }

    /// Limits the space to `max_clients` leases (`MAX_CLIENTS_PER_SPACE`;
    /// `None`: no limit): beyond it a new join gets `Space is full` and
    /// close 1013, and nobody inside sees anything. Resumes always pass.
    pub fn with_max_clients(mut self, max_clients: Option<usize>) -> Self {
        self.max_clients = max_clients;
        self
    }

    /// A socket asks to join. `fresh_id` makes the id when the request has
    /// none.
    pub fn join(
        &mut self,
        conn: ConnId,
        request: &JoinRequest,
        fresh_id: impl FnOnce() -> ClientId,
        now: UnixMillis,
    ) -> Step {
        let mut step = self.swept(now);
        let id = request.id.clone().unwrap_or_else(fresh_id);
        self.hub
            .open_with(conn, id.clone(), request.resume_changes());
        let fresh = request.fresh_client(id, now);
        match self
            .roster
            .admit(fresh, conn, now, self.config.ttl_ms, self.max_clients)
        {
            Ok(events) => {
                // A resume that changes the record (`state=`, other info):
                // one update after it.
                let resumed = events.iter().find_map(|e| match &e.event {
                    RosterEvent::Resumed { client, holder, .. } if *holder == conn => {
                        request.resumed_client(client)
                    }
                    _ => None,
                });
                self.apply(events, &mut step);
                if let Some(client) = resumed {
                    let events = self.roster.update(client, conn, now, self.config.ttl_ms);
                    self.apply(events.into_iter().collect(), &mut step);
                }
            }
            Err(error) => {
                step.errors.push(error.kind());
                self.hub.refuse(conn, &error, &mut step.outputs);
            }
        }
        step
    }

    /// A socket of a rebuilt space (see [`Hub::reattach`]).
    pub fn reattach(&mut self, conn: ConnId, id: ClientId) {
        self.hub.reattach(conn, id);
    }

    /// A ping that the target answered without waking the space (the edge's
    /// auto-response) renews the lease as of when it was answered. It does
    /// not sweep first: a lease not swept yet is renewed even if the space
    /// only learns of the ping after the lease would have run out (the
    /// target knows only the latest answer, and its alarm may be late).
    pub fn renew_at(&mut self, conn: ConnId, at: UnixMillis) -> Step {
        let mut step = Step::default();
        if let Some(id) = self.hub.client_of(conn).cloned() {
            if self.roster.renew_unswept(&id, conn, at, self.config.ttl_ms) {
                step.renewed.push(id);
            }
        }
        step
    }

    /// The local sockets whose leases run out at or before `by`, earliest
    /// first. A target that learns of renewals lazily (the edge reads each
    /// socket's last auto-answered ping from the runtime) asks this before
    /// any input that sweeps, and calls [`Space::renew_at`] for just these
    /// sockets: a message then costs its sender and recipients, not a read
    /// of every socket in the space.
    pub fn holders_due_by(&self, by: UnixMillis) -> Vec<ConnId> {
        self.roster
            .due_by(by)
            .filter(|lease| self.hub.client_of(lease.holder) == Some(&lease.client.id))
            .map(|lease| lease.holder)
            .collect()
    }

    /// A socket sent a frame.
    pub fn frame(&mut self, conn: ConnId, frame: Frame<'_>, now: UnixMillis) -> Step {
        let mut step = self.swept(now);
        let framed = self.hub.frame(conn, frame, now, &mut step.outputs);
        step.errors.extend(framed.error);
        if let Some(command) = framed.command {
            self.execute(command, now, &mut step);
        }
        step
    }

    /// A socket closed, cleanly or not.
    pub fn closed(&mut self, conn: ConnId, how: Disconnect, now: UnixMillis) -> Step {
        let mut step = self.swept(now);
        if let Some(command) = self.hub.closed(conn, how) {
            self.execute(command, now, &mut step);
        }
        step
    }

    /// The time is now `now`: expire what has run out, send the held
    /// updates that are due.
    pub fn tick(&mut self, now: UnixMillis) -> Step {
        let mut step = self.swept(now);
        for command in self.hub.due_updates(now) {
            self.execute(command, now, &mut step);
        }
        step
    }

    /// Closes every socket with 1012 and keeps the leases, with the
    /// updates they held stored.
    pub fn shutdown(&mut self, now: UnixMillis) -> Step {
        let mut step = Step::default();
        for command in self.hub.shutdown(&mut step.outputs) {
            self.execute(command, now, &mut step);
        }
        step
    }

    /// Closes one socket with `code`, keeping its lease (1011).
    pub fn evict(&mut self, conn: ConnId, code: crate::CloseCode, now: UnixMillis) -> Step {
        let mut step = Step::default();
        if let Some(command) = self.hub.evict(conn, code, &mut step.outputs) {
            self.execute(command, now, &mut step);
        }
        step
    }

    /// A broadcast of the server API (`from: null`) to every client.
    pub fn server_broadcast(&mut self, data: &Json) -> Step {
        let mut step = Step::default();
        self.hub.server_broadcast(data, &mut step.outputs);
        step
    }

    /// The server API removes lease `id`: its socket gets `Removed` and
    /// close 4003, everyone else a leave with reason `removed`.
    pub fn remove_client(&mut self, id: &ClientId, now: UnixMillis) -> Step {
        let mut step = self.swept(now);
        let events = self.roster.remove_client(id).into_iter().collect();
        self.apply(events, &mut step);
        step
    }

    /// [`Space::remove_client`] for every lease of `identity`.
    pub fn remove_identity(&mut self, identity: &str, now: UnixMillis) -> Step {
        let mut step = self.swept(now);
        let events = self.roster.remove_identity(identity);
        self.apply(events, &mut step);
        step
    }

    /// When to call [`Space::tick`] next: the next lease end or held
    /// update, if any.
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        match (self.roster.next_expiry(), self.hub.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// No sockets and no leases: the target may drop the space.
    pub fn is_idle(&self) -> bool {
        self.hub.is_empty() && self.roster.is_empty()
    }

    /// The authoritative leases.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// The local sockets.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The settings.
    pub fn config(&self) -> SpaceConfig {
        self.config
    }

    fn swept(&mut self, now: UnixMillis) -> Step {
        let mut step = Step::default();
        let events = self.roster.sweep(now);
        self.apply(events, &mut step);
        step
    }

    fn execute(&mut self, command: Command, now: UnixMillis, step: &mut Step) {
        match command {
            Command::Renew { id, holder } => {
                if self.roster.renew(&id, holder, now, self.config.ttl_ms) {
                    step.renewed.push(id);
                }
            }
            Command::Leave { id, holder, held } => {
                let last = held.and_then(|state| {
                    let lease = self.roster.get(&id).filter(|l| l.holder == holder)?;
                    Some(lease.client.with_state(state))
                });
                let events = self.roster.leave_with(&id, holder, last);
                self.apply(events.into_iter().collect(), step);
            }
            Command::Update { id, holder, state } => {
                let Some(lease) = self.roster.get(&id).filter(|l| l.holder == holder) else {
                    return;
                };
                let client = lease.client.with_state(state);
                if let Some(event) = self.roster.update(client, holder, now, self.config.ttl_ms) {
                    step.renewed.push(id);
                    self.apply(vec![event], step);
                }
            }
            Command::Relay { id, holder, relay } => {
                if self.roster.renew(&id, holder, now, self.config.ttl_ms) {
                    step.renewed.push(id.clone());
                    self.hub.relay(&id, &relay, &mut step.outputs);
                }
            }
        }
    }

    fn apply(&mut self, events: Vec<Sequenced>, step: &mut Step) {
        for event in events {
            self.hub.apply(event.clone(), &mut step.outputs);
            step.events.push(event);
        }
    }
}

/// A short name for what an event is, for structured logs.
pub fn event_kind(event: &RosterEvent) -> &'static str {
    match event {
        RosterEvent::Joined { .. } => "join",
        RosterEvent::Resumed { .. } => "resume",
        RosterEvent::Updated { .. } => "update",
        RosterEvent::Left {
            cause: crate::LeaveCause::Closed,
            ..
        } => "leave",
        RosterEvent::Left {
            cause: crate::LeaveCause::Expired,
            ..
        } => "expire",
        RosterEvent::Left {
            cause: crate::LeaveCause::Removed,
            ..
        } => "remove",
    }
}

/// Refuses a join that failed to parse, before any space is involved
/// (its kind is [`crate::JoinError::kind`]).
pub fn refuse_join(conn: ConnId, error: &crate::JoinError) -> Vec<Output> {
    let mut out = Vec::new();
    refuse(conn, error, &mut out);
    out
}
