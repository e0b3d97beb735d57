//! Why an API request was refused, with its HTTP status; every message
//! text of the API is here.

use thiserror::Error;

use crate::wire::ServerMessage;

/// A refused API request. [`ApiError::status`] is its HTTP status and the
/// body is `{"error":"<Display>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// `ADMIN_TOKEN` is unset: the API's `POST` and `DELETE` do not exist.
    #[error("Not found")]
    NotFound,
    /// A missing or wrong bearer token.
    #[error("Unauthorized: {0}")]
    Unauthorized(&'static str),
    /// A roster `GET` under the join rules that a join would be refused
    /// for (its token); the text is the join's.
    #[error("Unauthorized: {0}")]
    NotAdmitted(String),
    /// The request does not say what it wants.
    #[error("{0}")]
    BadRequest(String),
    /// A body larger than `MAX_MESSAGE_BYTES`.
    #[error("Message too large")]
    TooLarge,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound => 404,
            ApiError::Unauthorized(_) | ApiError::NotAdmitted(_) => 401,
            ApiError::BadRequest(_) => 400,
            ApiError::TooLarge => 413,
        }
    }

    /// The JSON body, `{"error":"…"}`, as clients' errors are shaped.
    pub fn body(&self) -> String {
        ServerMessage::Error(self.to_string()).encode().to_string()
    }
}

/// `Authorization` has no bearer token, and one is needed.
pub(crate) const MISSING_TOKEN: &str = "missing bearer token";
/// `Authorization` carries something other than the admin token.
pub(crate) const WRONG_TOKEN: &str = "wrong bearer token";
/// Neither `id` nor `identity` in a kick.
pub(crate) const KICK_WHO: &str = "Give id or identity";
/// Both `id` and `identity` in a kick.
pub(crate) const KICK_BOTH: &str = "Give id or identity, not both";
/// A server broadcast's body is not `{"data":…}`.
pub(crate) const INVALID_BROADCAST: &str = "Invalid broadcast";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        assert_eq!(ApiError::NotFound.status(), 404);
        assert_eq!(ApiError::Unauthorized(WRONG_TOKEN).status(), 401);
        assert_eq!(
            ApiError::Unauthorized(WRONG_TOKEN).body(),
            r#"{"error":"Unauthorized: wrong bearer token"}"#
        );
        assert_eq!(ApiError::BadRequest(KICK_WHO.into()).status(), 400);
        assert_eq!(ApiError::TooLarge.status(), 413);
    }
}
