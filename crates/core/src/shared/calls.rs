//! What a space asks of the shared store, and how each request becomes a
//! script invocation (which script, its keys, its arguments), so the
//! argument layout lives next to the scripts.

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::join::SpaceName;
use crate::shared::codec::{holder_text, Epoch};
use crate::shared::keys::{SpaceKeys, IDLE_KEEP_MS, MAX_KEEP_MS};
use crate::time::UnixMillis;
use crate::wire::ClientInfo;

/// Names one call of one space, so its reply finds its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// What the caller knows of the space's history when it calls: the script
/// compares it with the store's to notice a loss.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The epoch the caller's view belongs to, if any.
    pub epoch: Option<Epoch>,
    /// The highest sequence number the caller has seen in it (applied or
    /// held back): a store behind it went backwards. `u64::MAX` when the
    /// caller saw the history contradict itself: the store begins a new one.
    pub seen: u64,
}

/// A lease a resynchronising instance knows of, to put back if the store
/// lost the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownLease {
    /// The client as everyone saw it (its original `joinedAt`).
    pub client: ClientInfo,
    /// Held by a socket of this instance: the connection and when the lease
    /// ends (store clock). `None`: held elsewhere, put back only as a
    /// short placeholder.
    pub held: Option<(ConnId, UnixMillis)>,
}

/// One request to the shared store. Each is one atomic script today; a
/// publish (broadcast) or further scripts (state updates, removals) are
/// further variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// [`crate::Roster::join_limited`] after a sweep.
    Join {
        /// The client of a fresh lease: id, identity, `joinedAt`.
        client: ClientInfo,
        /// The joining socket.
        holder: ConnId,
        /// Return the roster after the join (a space's first join here).
        snapshot: bool,
    },
    /// [`crate::Roster::renew`] after a sweep.
    Renew {
        /// The lease.
        id: ClientId,
        /// The socket that pinged.
        holder: ConnId,
    },
    /// [`crate::Roster::leave_with`] after a sweep.
    Leave {
        /// The lease.
        id: ClientId,
        /// The socket that closed.
        holder: ConnId,
        /// The record the leave shows instead of the stored one (a held
        /// update flushed into the leave).
        last: Option<ClientInfo>,
    },
    /// [`crate::Roster::update`] after a sweep.
    Update {
        /// The lease's new record (its holder's instance knows it).
        client: ClientInfo,
        /// The socket that sent the update.
        holder: ConnId,
        /// Not a client's update but a record the instance settles (a
        /// resume's changes, or its own record sent again after a resync):
        /// an event only if it changes the stored record, so that a repeat
        /// is never told. A client's update (`false`) is always an event,
        /// equal or not (section 10).
        if_changed: bool,
    },
    /// A broadcast or cursor: one publish on the space's channel, with the
    /// space's sequence number; a client's renews its lease.
    Relay {
        /// The sender and its socket; `None` for the server API.
        from: Option<(ClientId, ConnId)>,
        /// The message as every recipient gets it.
        text: std::sync::Arc<str>,
    },
    /// The server API's kick ([`crate::Roster::remove_client`] or
    /// [`crate::Roster::remove_identity`]) after a sweep.
    Remove {
        /// Whom it removes.
        target: crate::api::KickTarget,
    },
    /// [`crate::Roster::sweep`].
    Sweep,
    /// A snapshot of the roster, putting back `known` if the store's
    /// history is not the caller's.
    Resync {
        /// What the caller knows, in welcome order.
        known: Vec<KnownLease>,
    },
}

impl StoreOp {
    /// The local socket a call is made for, if any: one socket's calls
    /// must reach the store in the order it made them.
    pub fn holder(&self) -> Option<ConnId> {
        match self {
            StoreOp::Join { holder, .. }
            | StoreOp::Renew { holder, .. }
            | StoreOp::Leave { holder, .. }
            | StoreOp::Update { holder, .. } => Some(*holder),
            StoreOp::Relay { from, .. } => from.as_ref().map(|(_, holder)| *holder),
            StoreOp::Sweep | StoreOp::Resync { .. } | StoreOp::Remove { .. } => None,
        }
    }
}

/// One call to make: an id for its reply, the caller's history, the
/// request. Calls made for one socket (the `holder` of a join, renewal,
/// update or leave, the sender of a relay) must run in the order they were
/// made: that is what keeps one client's updates and broadcasts in order,
/// and its leave after its last update. Other calls may run in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCall {
    /// Echoed with the reply.
    pub id: CallId,
    /// What the caller knows of the history.
    pub history: History,
    /// What to do.
    pub op: StoreOp,
}

/// How events are published: sharded pub/sub (Redis 7) or classic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// `SPUBLISH` / `SSUBSCRIBE`: the channel lives on the space's shard.
    Sharded,
    /// `PUBLISH` / `SUBSCRIBE`, for servers before Redis 7.
    Classic,
}

impl PublishMode {
    /// The command the scripts publish with.
    pub fn publish_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SPUBLISH",
            PublishMode::Classic => "PUBLISH",
        }
    }

    /// The command that subscribes to a channel.
    pub fn subscribe_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SSUBSCRIBE",
            PublishMode::Classic => "SUBSCRIBE",
        }
    }

    /// The command that ends a subscription.
    pub fn unsubscribe_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SUNSUBSCRIBE",
            PublishMode::Classic => "UNSUBSCRIBE",
        }
    }
}

/// Whose clock a script judges leases by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptClock {
    /// The store's own (`TIME` inside the script): every instance's calls
    /// agree whatever their clocks say. What production uses.
    Store,
    /// A time given by the caller. Only for tests that must compare the
    /// scripts with [`crate::Roster`] step by step.
    FixedForTests(UnixMillis),
}

/// The script texts (common prelude included), for loading once and calling
/// by SHA1.
pub mod scripts {
    macro_rules! script {
        ($file:literal) => {
            concat!(
                include_str!("scripts/common.lua"),
                include_str!(concat!("scripts/", $file))
            )
        };
    }
    /// [`crate::Roster::join`] after a sweep; optionally returns a snapshot.
    pub const JOIN: &str = script!("join.lua");
    /// [`crate::Roster::renew`] after a sweep.
    pub const RENEW: &str = script!("renew.lua");
    /// [`crate::Roster::leave_with`] after a sweep.
    pub const LEAVE: &str = script!("leave.lua");
    /// [`crate::Roster::update`] after a sweep.
    pub const UPDATE: &str = script!("update.lua");
    /// A broadcast or cursor: one publish, after a sweep.
    pub const RELAY: &str = script!("relay.lua");
    /// The server API's kick, after a sweep.
    pub const REMOVE: &str = script!("remove.lua");
    /// [`crate::Roster::sweep`].
    pub const SWEEP: &str = script!("sweep.lua");
    /// A snapshot for a resync, re-asserting the caller's leases after a
    /// loss.
    pub const RESYNC: &str = script!("resync.lua");
}

/// Which script a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// See [`scripts::JOIN`].
    Join,
    /// See [`scripts::RENEW`].
    Renew,
    /// See [`scripts::LEAVE`].
    Leave,
    /// See [`scripts::SWEEP`].
    Sweep,
    /// See [`scripts::RESYNC`].
    Resync,
    /// See [`scripts::UPDATE`].
    Update,
    /// See [`scripts::RELAY`].
    Relay,
    /// See [`scripts::REMOVE`].
    Remove,
}

impl ScriptKind {
    /// Every script, for loading them all.
    pub const ALL: [ScriptKind; 8] = [
        ScriptKind::Join,
        ScriptKind::Renew,
        ScriptKind::Leave,
        ScriptKind::Sweep,
        ScriptKind::Resync,
        ScriptKind::Update,
        ScriptKind::Relay,
        ScriptKind::Remove,
    ];

    /// The script's text.
    pub fn source(self) -> &'static str {
        match self {
            ScriptKind::Join => scripts::JOIN,
            ScriptKind::Renew => scripts::RENEW,
            ScriptKind::Leave => scripts::LEAVE,
            ScriptKind::Sweep => scripts::SWEEP,
            ScriptKind::Resync => scripts::RESYNC,
            ScriptKind::Update => scripts::UPDATE,
            ScriptKind::Relay => scripts::RELAY,
            ScriptKind::Remove => scripts::REMOVE,
        }
    }

    /// A short name, for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ScriptKind::Join => "join",
            ScriptKind::Renew => "renew",
            ScriptKind::Leave => "leave",
            ScriptKind::Sweep => "sweep",
            ScriptKind::Resync => "resync",
            ScriptKind::Update => "update",
            ScriptKind::Relay => "relay",
            ScriptKind::Remove => "remove",
        }
    }
}

/// One script invocation, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    /// The script.
    pub kind: ScriptKind,
    /// `KEYS`.
    pub keys: Vec<String>,
    /// `ARGV`.
    pub args: Vec<String>,
}

/// Turns one space's [`StoreCall`]s into [`ScriptCall`]s; holds what
/// every call passes.
#[derive(Debug, Clone)]
pub struct SpaceScripts {
    keys: SpaceKeys,
    mode: PublishMode,
    ttl_ms: u64,
    max_clients: Option<usize>,
    placeholder_ms: u64,
    webhooks: bool,
}

impl SpaceScripts {
    /// Scripts for `space` with lease length `ttl_ms`, publishing with
    /// `mode`.
    pub fn new(space: &SpaceName, mode: PublishMode, ttl_ms: u64) -> Self {
        SpaceScripts {
            keys: SpaceKeys::new(space),
            mode,
            ttl_ms,
            max_clients: None,
            placeholder_ms: crate::defaults::DEFAULT_PLACEHOLDER_MS,
            webhooks: false,
        }
    }

    /// The scripts also count members and add member events to the
    /// space's webhook stream (`WEBHOOK_URL` is set).
    pub fn with_webhooks(mut self, on: bool) -> Self {
        self.webhooks = on;
        self
    }

    /// Joins beyond `max_clients` leases are refused
    /// ([`crate::shared::ScriptStatus::Full`]); `None`: no limit.
    pub fn with_max_clients(mut self, max_clients: Option<usize>) -> Self {
        self.max_clients = max_clients;
        self
    }

    /// The space's key and channel names.
    pub fn keys(&self) -> &SpaceKeys {
        &self.keys
    }

    /// The invocation for `call`, judged by `clock`; `fresh_epoch` names
    /// the new history should the script find the old one lost.
    pub fn script(&self, call: &StoreCall, clock: ScriptClock, fresh_epoch: &Epoch) -> ScriptCall {
        let keep = self.ttl_ms.saturating_add(IDLE_KEEP_MS).min(MAX_KEEP_MS);
        let mut args = vec![
            self.keys.channel.clone(),
            self.mode.publish_command().to_owned(),
            match clock {
                ScriptClock::Store => String::new(),
                ScriptClock::FixedForTests(t) => t.0.to_string(),
            },
            keep.to_string(),
            self.ttl_ms.min(MAX_KEEP_MS).to_string(),
            fresh_epoch.as_str().to_owned(),
            call.history
                .epoch
                .as_ref()
                .map_or_else(String::new, |e| e.as_str().to_owned()),
            call.history.seen.to_string(),
        ];
        let kind = match &call.op {
            StoreOp::Join {
                client,
                holder,
                snapshot,
            } => {
                args.extend([
                    client.id.as_str().to_owned(),
                    client.identity.clone(),
                    holder_text(*holder),
                    serde_json::to_string(client).expect("clients serialize"),
                    if *snapshot { "1" } else { "0" }.to_owned(),
                    self.max_clients.unwrap_or(0).to_string(),
                ]);
                ScriptKind::Join
            }
            StoreOp::Renew { id, holder } => {
                args.extend([id.as_str().to_owned(), holder_text(*holder)]);
                ScriptKind::Renew
            }
            StoreOp::Leave { id, holder, last } => {
                args.extend([
                    id.as_str().to_owned(),
                    holder_text(*holder),
                    last.as_ref().map_or_else(String::new, |c| {
                        serde_json::to_string(c).expect("clients serialize")
                    }),
                ]);
                ScriptKind::Leave
            }
            StoreOp::Update {
                client,
                holder,
                if_changed,
            } => {
                args.extend([
                    client.id.as_str().to_owned(),
                    holder_text(*holder),
                    serde_json::to_string(client).expect("clients serialize"),
                    if *if_changed { "1" } else { "0" }.to_owned(),
                ]);
                ScriptKind::Update
            }
            StoreOp::Relay { from, text } => {
                let (id, holder) = match from {
                    Some((id, holder)) => (id.as_str().to_owned(), holder_text(*holder)),
                    None => (String::new(), String::new()),
                };
                args.extend([id, holder, text.to_string()]);
                ScriptKind::Relay
            }
            StoreOp::Remove { target } => {
                let (by, value) = match target {
                    crate::api::KickTarget::Client(id) => ("id", id.as_str().to_owned()),
                    crate::api::KickTarget::Identity(identity) => ("identity", identity.clone()),
                };
                args.extend([by.to_owned(), value]);
                ScriptKind::Remove
            }
            StoreOp::Sweep => ScriptKind::Sweep,
            StoreOp::Resync { known } => {
                args.push(self.placeholder_ms.to_string());
                for lease in known {
                    let (holder, ends) = match lease.held {
                        Some((conn, ends)) => (holder_text(conn), ends.0.to_string()),
                        None => ("0".to_owned(), String::new()),
                    };
                    args.extend([
                        lease.client.id.as_str().to_owned(),
                        holder,
                        lease.client.identity.clone(),
                        serde_json::to_string(&lease.client).expect("clients serialize"),
                        ends,
                    ]);
                }
                ScriptKind::Resync
            }
        };
        let mut keys = vec![self.keys.leases.clone(), self.keys.expiries.clone()];
        if self.webhooks {
            keys.extend([self.keys.members.clone(), self.keys.webhooks.clone()]);
        }
        ScriptCall { kind, keys, args }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(s: &str) -> SpaceName {
        SpaceName::parse(s).unwrap()
    }

    fn client() -> ClientInfo {
        ClientInfo::new(ClientId::parse("x").unwrap(), "me", UnixMillis(10))
    }

    #[test]
    fn calls_lay_out_their_arguments() {
        let scripts = SpaceScripts::new(&space("s"), PublishMode::Sharded, 1000);
        let call = StoreCall {
            id: CallId(1),
            history: History {
                epoch: Some(Epoch::from_random(1)),
                seen: 7,
            },
            op: StoreOp::Join {
                client: client(),
                holder: ConnId(3),
                snapshot: true,
            },
        };
        let fresh = Epoch::from_random(2);
        let c = scripts.script(&call, ScriptClock::Store, &fresh);
        assert_eq!(c.kind, ScriptKind::Join);
        assert_eq!(c.keys, ["lh:{s}:leases", "lh:{s}:expiries"]);
        assert_eq!(
            &c.args[..8],
            [
                "lh:{s}:events",
                "SPUBLISH",
                "",
                "3601000",
                "1000",
                "0000000000000002",
                "0000000000000001",
                "7"
            ]
        );
        assert_eq!(&c.args[8..11], ["x", "me", "3"]);
        assert!(c.args[11].contains(r#""joinedAt":"1970-01-01T00:00:00.010Z""#));
        assert_eq!(&c.args[12..], ["1", "0"]);
        let fixed = scripts.clone().with_max_clients(Some(7)).script(
            &call,
            ScriptClock::FixedForTests(UnixMillis(10)),
            &fresh,
        );
        assert_eq!(fixed.args[2], "10");
        assert_eq!(fixed.args[13], "7");
    }

    #[test]
    fn a_resync_lists_what_it_knows_five_arguments_a_lease() {
        let scripts = SpaceScripts::new(&space("s"), PublishMode::Classic, 1000);
        let call = StoreCall {
            id: CallId(1),
            history: History::default(),
            op: StoreOp::Resync {
                known: vec![
                    KnownLease {
                        client: client(),
                        held: Some((ConnId(u64::MAX), UnixMillis(99))),
                    },
                    KnownLease {
                        client: client(),
                        held: None,
                    },
                ],
            },
        };
        let c = scripts.script(&call, ScriptClock::Store, &Epoch::from_random(2));
        assert_eq!(c.kind, ScriptKind::Resync);
        assert_eq!(c.args[1], "PUBLISH");
        assert_eq!(&c.args[6..8], ["", "0"]);
        assert_eq!(c.args[8], "1000");
        assert_eq!(c.args.len(), 9 + 10);
        assert_eq!(&c.args[9..11], ["x", "18446744073709551615"]);
        assert_eq!(c.args[13], "99");
        assert_eq!(&c.args[14..16], ["x", "0"]);
        assert_eq!(c.args[18], "");
    }

    #[test]
    fn every_script_carries_the_prelude() {
        for kind in ScriptKind::ALL {
            assert!(kind.source().contains("local function check()"));
            assert!(!kind.name().is_empty());
        }
    }
}
