//! Close codes of section 8.

/// Why the server closes a socket; the numeric value is the wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1000: normal.
    Normal = 1000,
    /// 1007: a text frame that is not UTF-8.
    InvalidPayload = 1007,
    /// 1008: a bad join or a protocol violation.
    PolicyViolation = 1008,
    /// 1009: a message over the size limit.
    MessageTooBig = 1009,
    /// 1011: an internal error; the lease is kept.
    InternalError = 1011,
    /// 1012: the server is restarting; resume with your id.
    ServiceRestart = 1012,
    /// 1013: try again later (a full space, an overloaded server).
    TryAgainLater = 1013,
    /// 4000: the lease expired.
    LeaseExpired = 4000,
    /// 4001: replaced by a newer connection with the same id.
    Replaced = 4001,
    /// 4003: removed by the server API; the client must not reconnect by
    /// itself (section 14).
    Removed = 4003,
}

impl CloseCode {
    /// The wire value.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// A short reason for the close frame, for people reading traces.
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::InvalidPayload => "invalid UTF-8",
            CloseCode::PolicyViolation => "policy violation",
            CloseCode::MessageTooBig => "message too large",
            CloseCode::InternalError => "internal error",
            CloseCode::ServiceRestart => "server restarting",
            CloseCode::TryAgainLater => "try again later",
            CloseCode::LeaseExpired => "lease expired",
            CloseCode::Replaced => "replaced by a newer connection",
            CloseCode::Removed => "removed",
        }
    }
}
