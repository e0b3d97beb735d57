//! A simulated shared store: the Lua scripts' rules (crates/core/src/shared/
//! scripts) over typed [`StoreOp`]s, one space, and the ways a real Redis
//! loses data: `FLUSHALL`, the eviction of one key, a failover to a replica
//! that was behind. It also keeps, per client id, the latest lease end that
//! a join or renewal justified, so a test can check that nothing it puts
//! back outlives that (or a short placeholder).
//!
//! (Shared by two test crates, each using part of it.)
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use longhouse_core::shared::{
    encode_event, encode_relay, encode_reset, Epoch, ScriptReply, ScriptStatus, StoreCall, StoreOp,
};
use longhouse_core::{
    ClientId, ClientInfo, ConnId, LeaveCause, RosterEvent, Sequenced, UnixMillis,
};

/// One lease in the hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    pub holder: ConnId,
    pub client: ClientInfo,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Data {
    /// The leases hash: epoch, seq, leases; `None` when the key is gone.
    hash: Option<(Epoch, u64, BTreeMap<ClientId, StoredLease>)>,
    /// The expiries sorted set; empty when the key is gone.
    zset: BTreeMap<ClientId, u64>,
}

/// A way to lose data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `FLUSHALL`.
    Flush,
    /// The leases hash evicted (`volatile-*`).
    EvictHash,
    /// The expiries sorted set evicted.
    EvictExpiries,
    /// A failover to a replica that had the data as of the last
    /// [`SimStore::save`].
    Rollback,
}

/// The store.
#[derive(Debug, Clone)]
pub struct SimStore {
    data: Data,
    saved: Data,
    pub ttl: u64,
    pub placeholder: u64,
    pub max_clients: usize,
    next_epoch: u64,
    /// The latest lease end a join, resume or renewal justified, by id.
    pub justified: HashMap<ClientId, u64>,
    /// When each placeholder was put back, by id.
    pub placeheld: HashMap<ClientId, u64>,
}

/// What one call did: its reply and the messages it published.
pub struct Executed {
    pub reply: ScriptReply,
    pub published: Vec<String>,
}

struct Run<'a> {
    data: &'a mut Data,
    fresh: Epoch,
    epoch: Option<Epoch>,
    seq: u64,
    now: u64,
    events: Vec<Sequenced>,
    published: Vec<String>,
}

impl SimStore {
    pub fn new(ttl: u64, placeholder: u64) -> Self {
        SimStore {
            data: Data::default(),
            saved: Data::default(),
            ttl,
            placeholder,
            max_clients: 0,
            next_epoch: 0,
            justified: HashMap::new(),
            placeheld: HashMap::new(),
        }
    }

    /// Remembers the data as a lagging replica would have it.
    pub fn save(&mut self) {
        self.saved = self.data.clone();
    }

    pub fn lose(&mut self, loss: Loss) {
        match loss {
            Loss::Flush => self.data = Data::default(),
            Loss::EvictHash => self.data.hash = None,
            Loss::EvictExpiries => self.data.zset.clear(),
            Loss::Rollback => self.data = self.saved.clone(),
        }
    }

    /// Every live lease (after the data's own consistency is judged as the
    /// scripts would: inconsistent data counts as none).
    pub fn roster(&self) -> BTreeMap<ClientId, StoredLease> {
        match &self.data.hash {
            Some((_, _, leases)) if leases.len() == self.data.zset.len() => leases.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// Lease ends, by id.
    pub fn expiries(&self) -> &BTreeMap<ClientId, u64> {
        &self.data.zset
    }

    /// Runs `call` at store time `now`.
    pub fn execute(&mut self, call: &StoreCall, now: u64) -> Executed {
        self.next_epoch += 1;
        let fresh = Epoch::from_random(0x5eed_0000 + self.next_epoch);
        let (ttl, placeholder, max) = (self.ttl, self.placeholder, self.max_clients);
        let mut run = Run {
            data: &mut self.data,
            fresh,
            epoch: None,
            seq: 0,
            now,
            events: Vec::new(),
            published: Vec::new(),
        };
        run.check(call);
        run.sweep();
        let (status, snapshot) = match &call.op {
            StoreOp::Join {
                client,
                holder,
                snapshot,
            } => {
                let status = run.join(client, *holder, ttl, max, &mut self.justified);
                (status, *snapshot)
            }
            StoreOp::Renew { id, holder } => {
                let status = if run.holder(id) == Some(*holder) {
                    let end = now + ttl;
                    let z = run.data.zset.get_mut(id).expect("consistent");
                    *z = (*z).max(end);
                    let j = self.justified.entry(id.clone()).or_default();
                    *j = (*j).max(end);
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                (status, false)
            }
            StoreOp::Leave { id, holder, last } => {
                let status = if run.holder(id) == Some(*holder) {
                    let lease = run.remove(id);
                    run.emit(RosterEvent::Left {
                        client: last.clone().unwrap_or(lease.client),
                        holder: *holder,
                        cause: LeaveCause::Closed,
                    });
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                (status, false)
            }
            StoreOp::Update {
                client,
                holder,
                if_changed,
            } => {
                let id = &client.id;
                let status = if run.holder(id) == Some(*holder) {
                    let end = now + ttl;
                    let z = run.data.zset.get_mut(id).expect("consistent");
                    *z = (*z).max(end);
                    let j = self.justified.entry(id.clone()).or_default();
                    *j = (*j).max(end);
                    // A record settled again, the same: no event.
                    let repeat = *if_changed && run.leases()[id].client == *client;
                    if !repeat {
                        run.leases().get_mut(id).expect("present").client = client.clone();
                        run.emit(RosterEvent::Updated {
                            client: client.clone(),
                            holder: *holder,
                        });
                    }
                    ScriptStatus::Ok
                } else {
                    ScriptStatus::Stale
                };
                (status, false)
            }
            StoreOp::Relay { from, text } => {
                let mut status = ScriptStatus::Ok;
                if let Some((id, holder)) = from {
                    if run.holder(id) == Some(*holder) {
                        let end = now + ttl;
                        let z = run.data.zset.get_mut(id).expect("consistent");
                        *z = (*z).max(end);
                        let j = self.justified.entry(id.clone()).or_default();
                        *j = (*j).max(end);
                    } else {
                        status = ScriptStatus::Stale;
                    }
                }
                if status == ScriptStatus::Ok {
                    if let Some(epoch) = run.epoch.clone() {
                        let from = from.as_ref().map(|(id, _)| id);
                        run.published
                            .push(encode_relay(&epoch, run.seq, from, text));
                    }
                }
                (status, false)
            }
            StoreOp::Remove { target } => {
                // remove.lua: the named leases, in id order, one leave each.
                let ids: Vec<ClientId> = match run.data.hash.as_ref() {
                    Some(h) => {
                        h.2.iter()
                            .filter(|(id, l)| target.matches(id, &l.client.identity))
                            .map(|(id, _)| id.clone())
                            .collect()
                    }
                    None => Vec::new(),
                };
                for id in ids {
                    let lease = run.remove(&id);
                    run.emit(RosterEvent::Left {
                        client: lease.client,
                        holder: lease.holder,
                        cause: LeaveCause::Removed,
                    });
                }
                (ScriptStatus::Ok, false)
            }
            StoreOp::Sweep => (ScriptStatus::Ok, false),
            StoreOp::Resync { known } => {
                let mut status = ScriptStatus::Ok;
                if call.history.epoch.is_some() && call.history.epoch != run.epoch {
                    for lease in known {
                        let id = lease.client.id.clone();
                        let have = run.lease(&id);
                        match lease.held {
                            Some((conn, ends)) => {
                                let end = ends.0.min(now + ttl);
                                if end <= now {
                                    continue;
                                }
                                match have {
                                    None => {
                                        run.put(&id, conn, lease.client.clone(), end);
                                        run.emit(RosterEvent::Joined {
                                            client: lease.client.clone(),
                                            holder: conn,
                                        });
                                        status = ScriptStatus::Restored;
                                    }
                                    Some(ref l)
                                        if l.holder == ConnId(0)
                                            && l.client.identity == lease.client.identity =>
                                    {
                                        run.leases().insert(
                                            id.clone(),
                                            StoredLease {
                                                holder: conn,
                                                client: lease.client.clone(),
                                            },
                                        );
                                        let z = run.data.zset.get_mut(&id).expect("consistent");
                                        *z = (*z).max(end);
                                        run.emit(RosterEvent::Resumed {
                                            client: lease.client.clone(),
                                            holder: conn,
                                            replaced: ConnId(0),
                                        });
                                        status = ScriptStatus::Restored;
                                    }
                                    Some(_) => {}
                                }
                            }
                            None if have.is_none() => {
                                run.put(&id, ConnId(0), lease.client.clone(), now + placeholder);
                                self.placeheld.insert(id.clone(), now);
                                run.emit(RosterEvent::Joined {
                                    client: lease.client.clone(),
                                    holder: ConnId(0),
                                });
                                status = ScriptStatus::Restored;
                            }
                            None => {}
                        }
                    }
                }
                (status, true)
            }
        };
        run.reply(status, snapshot)
    }
}

impl Run<'_> {
    fn begin(&mut self) {
        let fresh = self.fresh.clone();
        self.data.hash = Some((fresh.clone(), 0, BTreeMap::new()));
        self.data.zset.clear();
        self.published.push(encode_reset(&fresh));
        self.epoch = Some(fresh);
        self.seq = 0;
    }

    fn check(&mut self, call: &StoreCall) {
        let known = &call.history;
        match &self.data.hash {
            Some((e, s, leases))
                if leases.len() == self.data.zset.len()
                    && !(known.epoch.as_ref() == Some(e) && *s < known.seen) =>
            {
                self.epoch = Some(e.clone());
                self.seq = *s;
            }
            None if self.data.zset.is_empty() && known.epoch.is_none() => {}
            _ => self.begin(),
        }
    }

    /// A history to write into (an unused space's first).
    fn ensure(&mut self) {
        if self.epoch.is_none() {
            self.begin();
        }
    }

    fn leases(&mut self) -> &mut BTreeMap<ClientId, StoredLease> {
        &mut self.data.hash.as_mut().expect("a history").2
    }

    fn lease(&self, id: &ClientId) -> Option<StoredLease> {
        self.data.hash.as_ref()?.2.get(id).cloned()
    }

    fn holder(&self, id: &ClientId) -> Option<ConnId> {
        self.lease(id).map(|l| l.holder)
    }

    fn put(&mut self, id: &ClientId, holder: ConnId, client: ClientInfo, end: u64) {
        self.ensure();
        self.leases()
            .insert(id.clone(), StoredLease { holder, client });
        self.data.zset.insert(id.clone(), end);
    }

    fn set_holder(&mut self, id: &ClientId, holder: ConnId) {
        self.leases().get_mut(id).expect("present").holder = holder;
    }

    fn remove(&mut self, id: &ClientId) -> StoredLease {
        self.data.zset.remove(id);
        self.leases().remove(id).expect("present")
    }

    fn emit(&mut self, event: RosterEvent) {
        self.seq += 1;
        let e = Sequenced {
            seq: self.seq,
            event,
        };
        let epoch = self.epoch.clone().expect("events have a history");
        self.published.push(encode_event(&epoch, &e));
        self.events.push(e);
    }

    fn sweep(&mut self) {
        if self.epoch.is_none() {
            return;
        }
        let mut due: Vec<(u64, ClientId)> = self
            .data
            .zset
            .iter()
            .filter(|(_, at)| **at <= self.now)
            .map(|(id, at)| (*at, id.clone()))
            .collect();
        due.sort();
        for (_, id) in due {
            let lease = self.remove(&id);
            self.emit(RosterEvent::Left {
                client: lease.client,
                holder: lease.holder,
                cause: LeaveCause::Expired,
            });
        }
    }

    fn join(
        &mut self,
        client: &ClientInfo,
        holder: ConnId,
        ttl: u64,
        max: usize,
        justified: &mut HashMap<ClientId, u64>,
    ) -> ScriptStatus {
        let id = client.id.clone();
        let end = self.now + ttl;
        if let Some(old) = self.lease(&id) {
            if old.client.identity != client.identity {
                return ScriptStatus::Refused;
            }
            self.set_holder(&id, holder);
            self.data.zset.insert(id.clone(), end);
            justified.insert(id, end);
            self.emit(RosterEvent::Resumed {
                client: old.client,
                holder,
                replaced: old.holder,
            });
            return ScriptStatus::Ok;
        }
        if max > 0 && self.data.zset.len() >= max {
            return ScriptStatus::Full;
        }
        self.put(&id, holder, client.clone(), end);
        justified.insert(id, end);
        self.emit(RosterEvent::Joined {
            client: client.clone(),
            holder,
        });
        ScriptStatus::Ok
    }

    fn reply(self, status: ScriptStatus, with_snapshot: bool) -> Executed {
        let snapshot = with_snapshot.then(|| match &self.data.hash {
            Some((_, _, leases)) if self.epoch.is_some() => leases
                .values()
                .map(|l| (l.client.clone(), l.holder))
                .collect(),
            _ => Vec::new(),
        });
        if let (Some(epoch), Some(h)) = (&self.epoch, self.data.hash.as_mut()) {
            h.0 = epoch.clone();
            h.1 = self.seq;
        }
        let reply = ScriptReply {
            status,
            epoch: self.epoch.clone(),
            seq: self.seq,
            now: UnixMillis(self.now),
            events: self.events,
            next_expiry: self.data.zset.values().min().map(|t| UnixMillis(*t)),
            snapshot,
        };
        Executed {
            reply,
            published: self.published,
        }
    }
}
