//! The kind of every error a client can be told about, as a value: targets
//! count errors by kind (`/metrics`) without reading their texts back.

use crate::inbound::MessageError;
use crate::join::JoinError;

/// What went wrong, in the few words a metric label needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No space in the path.
    MissingSpace,
    /// No `identity`.
    MissingIdentity,
    /// The space, identity or id is outside the limits.
    InvalidJoin,
    /// The id names a live lease of another identity.
    IdTaken,
    /// A missing or refused token.
    Unauthorized,
    /// `MAX_CLIENTS_PER_SPACE` reached.
    SpaceFull,
    /// The presence store could not serve a join (1011).
    StoreUnavailable,
    /// Not JSON.
    Unparsable,
    /// JSON without a known action.
    UnrecognizedAction,
    /// A binary frame.
    Binary,
    /// Over `MAX_MESSAGE_BYTES`.
    TooLarge,
    /// A text frame that is not UTF-8 (closed 1007 without a message).
    InvalidUtf8,
    /// Over the message rate.
    RateLimited,
    /// A bad `state` (at join or in an update) or token `info`.
    InvalidState,
    /// An update's state over `MAX_STATE_BYTES`.
    StateTooLarge,
    /// A broadcast without `data`.
    InvalidBroadcast,
}

impl ErrorKind {
    /// The metric label: snake case, stable.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::MissingSpace => "missing_space",
            ErrorKind::MissingIdentity => "missing_identity",
            ErrorKind::InvalidJoin => "invalid_join",
            ErrorKind::IdTaken => "id_taken",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::SpaceFull => "space_full",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::Unparsable => "unparsable",
            ErrorKind::UnrecognizedAction => "unrecognized_action",
            ErrorKind::Binary => "binary",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::InvalidState => "invalid_state",
            ErrorKind::StateTooLarge => "state_too_large",
            ErrorKind::InvalidBroadcast => "invalid_broadcast",
        }
    }

    /// Every kind, for targets that export each from the first scrape.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::MissingSpace,
        ErrorKind::MissingIdentity,
        ErrorKind::InvalidJoin,
        ErrorKind::IdTaken,
        ErrorKind::Unauthorized,
        ErrorKind::SpaceFull,
        ErrorKind::StoreUnavailable,
        ErrorKind::Unparsable,
        ErrorKind::UnrecognizedAction,
        ErrorKind::Binary,
        ErrorKind::TooLarge,
        ErrorKind::InvalidUtf8,
        ErrorKind::RateLimited,
        ErrorKind::InvalidState,
        ErrorKind::StateTooLarge,
        ErrorKind::InvalidBroadcast,
    ];
}

impl JoinError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            JoinError::MissingSpace => ErrorKind::MissingSpace,
            JoinError::MissingIdentity => ErrorKind::MissingIdentity,
            JoinError::InvalidSpace(_)
            | JoinError::InvalidIdentity(_)
            | JoinError::InvalidId(_)
            | JoinError::InvalidUsername(_) => ErrorKind::InvalidJoin,
            JoinError::InvalidState(_) => ErrorKind::InvalidState,
            JoinError::IdHeldByAnother => ErrorKind::IdTaken,
            JoinError::Unauthorized(_) => ErrorKind::Unauthorized,
            JoinError::SpaceFull => ErrorKind::SpaceFull,
            JoinError::StoreUnavailable => ErrorKind::StoreUnavailable,
        }
    }
}

impl MessageError {
    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MessageError::TooLarge { .. } => ErrorKind::TooLarge,
            MessageError::NotUtf8 => ErrorKind::InvalidUtf8,
            MessageError::Unparsable => ErrorKind::Unparsable,
            MessageError::UnrecognizedAction => ErrorKind::UnrecognizedAction,
            MessageError::Binary => ErrorKind::Binary,
            MessageError::RateLimited => ErrorKind::RateLimited,
            MessageError::InvalidState => ErrorKind::InvalidState,
            MessageError::StateTooLarge { .. } => ErrorKind::StateTooLarge,
            MessageError::InvalidBroadcast => ErrorKind::InvalidBroadcast,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::join::InvalidReason;

    #[test]
    fn labels_are_distinct_and_cover_every_kind() {
        let labels: std::collections::HashSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn kinds_follow_the_error_not_its_text() {
        assert_eq!(
            JoinError::InvalidId(InvalidReason::Empty).kind(),
            ErrorKind::InvalidJoin
        );
        assert_eq!(JoinError::IdHeldByAnother.kind(), ErrorKind::IdTaken);
        assert_eq!(
            JoinError::StoreUnavailable.kind(),
            ErrorKind::StoreUnavailable
        );
        assert_eq!(MessageError::NotUtf8.kind(), ErrorKind::InvalidUtf8);
        assert_eq!(
            MessageError::TooLarge { limit: 1 }.kind(),
            ErrorKind::TooLarge
        );
    }
}
