//! What a shared space's inputs produce, and the states and failures the
//! target reports to it.

use crate::shared::calls::StoreCall;
use crate::shared::codec::Epoch;
use crate::space::Step;

/// What one input did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedStep {
    /// Socket effects, the roster events this instance's calls made (for
    /// logs and metrics; each change is reported by exactly one instance),
    /// and error kinds.
    pub step: Step,
    /// Store calls to make; answer each with [`SharedSpace::reply`].
    pub calls: Vec<StoreCall>,
    /// Things worth a log line.
    pub notes: Vec<Note>,
}

/// Why a store call failed, as far as the space cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFailure {
    /// Not connected (the target is reconnecting).
    Unavailable,
    /// Sent, but it failed or its answer could not be read.
    Failed,
}

/// The space's subscription to its channel, as the target reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// Confirmed: every event published from now on arrives.
    Confirmed,
    /// Lost for a moment (the target is re-subscribing): events may be
    /// missed, so the space resynchronises once it is confirmed again.
    Lost,
    /// The store is unreachable: joins are refused (1011) until it is back.
    Unavailable,
}

/// Why a space resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// A gap in the events did not fill within the patience.
    Gap,
    /// More events were held back than the bound allows.
    Overflow,
    /// The subscription was re-established (events may have been missed).
    Resubscribed,
    /// The target dropped messages (its queue was full).
    MessagesLost,
    /// The store's history is not the one this view belongs to.
    History,
    /// Two different events arrived under one sequence number: the store
    /// went back and wrote again. The resync asks it to begin a new
    /// history, so that every instance re-asserts what it holds.
    Contradicted,
    /// A renewal found no lease that this instance's socket holds.
    LeaseMissing,
    /// An update's call failed: whether it was stored is unknown.
    UpdateFailed,
    /// A snapshot came back older than what the view applied: a race, or
    /// a store that went back; the next snapshot tells which.
    Behind,
}

/// A decision worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The space asked the store for a snapshot.
    Resync(ResyncReason),
    /// The view moved to another history of the space (the store lost its
    /// data, or began one): `reasserted` leases were put back.
    HistoryChanged {
        /// The history the view belonged to.
        from: Option<Epoch>,
        /// The store's.
        to: Option<Epoch>,
        /// How many known leases this instance put back.
        reasserted: usize,
    },
    /// A message of the channel did not decode (noted once per space).
    Undecodable(String),
    /// A call failed.
    CallFailed(&'static str, StoreFailure),
}
