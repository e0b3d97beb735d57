//! What an API request asks for: whom a kick removes, what a server
//! broadcast carries, and the kick's answer.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ApiError, INVALID_BROADCAST, KICK_BOTH, KICK_WHO};
use crate::client_id::ClientId;
use crate::join::{check_identity, JoinError};
use crate::json::Json;

/// Whom `DELETE /{space}` removes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KickTarget {
    /// `?id=`: one lease.
    Client(ClientId),
    /// `?identity=`: every lease of that identity in the space.
    Identity(String),
}

impl KickTarget {
    /// Reads `?id=` or `?identity=` from a raw query string, decoded as a
    /// join's (the first non-empty of a repeated parameter wins). Exactly
    /// one of them; each checked against section 1's limits.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut id = None;
        let mut identity = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match key.as_ref() {
                "id" => &mut id,
                "identity" => &mut identity,
                _ => continue,
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.into_owned());
            }
        }
        match (id, identity) {
            (Some(_), Some(_)) => Err(ApiError::BadRequest(KICK_BOTH.into())),
            (None, None) => Err(ApiError::BadRequest(KICK_WHO.into())),
            (Some(id), None) => ClientId::parse(&id)
                .map(KickTarget::Client)
                .map_err(|e| ApiError::BadRequest(JoinError::InvalidId(e).to_string())),
            (None, Some(identity)) => match check_identity(&identity) {
                Ok(()) => Ok(KickTarget::Identity(identity)),
                Err(e) => Err(ApiError::BadRequest(
                    JoinError::InvalidIdentity(e).to_string(),
                )),
            },
        }
    }

    /// Whether a lease of `id` held by `identity` is one to remove.
    pub fn matches(&self, id: &ClientId, identity: &str) -> bool {
        match self {
            KickTarget::Client(target) => target == id,
            KickTarget::Identity(target) => target == identity,
        }
    }
}

/// The `data` of a server broadcast's body `{"data":<any JSON value>}`,
/// kept as sent: at most `max_bytes` bytes, a JSON object with a `data`
/// key (`null` included), else refused.
pub fn parse_broadcast(body: &[u8], max_bytes: usize) -> Result<Json, ApiError> {
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        data: &'a RawValue,
    }
    if body.len() > max_bytes {
        return Err(ApiError::TooLarge);
    }
    let invalid = || ApiError::BadRequest(INVALID_BROADCAST.into());
    // An array would fill the struct by position: only an object will do.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid());
    }
    let parsed: Body<'_> = serde_json::from_slice(body).map_err(|_| invalid())?;
    Ok(Json::raw(parsed.data))
}

/// A kick's answer, `{"removed":N}`.
pub fn removed_json(removed: usize) -> String {
    serde_json::json!({ "removed": removed }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_names_an_id_or_an_identity_decoded_as_a_join() {
        assert_eq!(
            KickTarget::parse(Some("id=abc-1&x=y")),
            Ok(KickTarget::Client(ClientId::parse("abc-1").unwrap()))
        );
        assert_eq!(
            KickTarget::parse(Some("identity=ann+b%2B%7C&identity=zed")),
            Ok(KickTarget::Identity("ann b+|".into()))
        );
        assert_eq!(
            KickTarget::parse(Some("id=&identity=ann")),
            Ok(KickTarget::Identity("ann".into()))
        );
    }

    #[test]
    fn a_kick_without_a_valid_target_is_400() {
        for q in [None, Some(""), Some("id="), Some("who=ann")] {
            assert_eq!(
                KickTarget::parse(q),
                Err(ApiError::BadRequest(KICK_WHO.into()))
            );
        }
        assert_eq!(
            KickTarget::parse(Some("id=a&identity=b")),
            Err(ApiError::BadRequest(KICK_BOTH.into()))
        );
        let bad_id = KickTarget::parse(Some("id=no%20spaces")).unwrap_err();
        assert!(bad_id.to_string().starts_with("Invalid id"), "{bad_id}");
        let bad_identity = KickTarget::parse(Some("identity=a%07b")).unwrap_err();
        assert!(
            bad_identity.to_string().starts_with("Invalid identity"),
            "{bad_identity}"
        );
        assert_eq!(bad_identity.status(), 400);
    }

    #[test]
    fn a_kick_matches_by_id_or_identity() {
        let id = ClientId::parse("a").unwrap();
        assert!(KickTarget::Client(id.clone()).matches(&id, "ann"));
        assert!(!KickTarget::Client(ClientId::parse("b").unwrap()).matches(&id, "ann"));
        assert!(KickTarget::Identity("ann".into()).matches(&id, "ann"));
        assert!(!KickTarget::Identity("bob".into()).matches(&id, "ann"));
    }

    #[test]
    fn a_broadcast_body_is_an_object_with_data() {
        let data = |body: &[u8]| parse_broadcast(body, 100).map(|j| j.as_str().to_owned());
        assert_eq!(
            data(br#" {"data": {"saved":true}, "other":1}"#),
            Ok(r#"{"saved":true}"#.to_owned())
        );
        assert_eq!(data(br#"{"data":null}"#), Ok("null".to_owned()));
        assert_eq!(data(br#"{"data":[1,"x"]}"#), Ok(r#"[1,"x"]"#.to_owned()));
        for bad in [
            &b"{}"[..],
            b"[1]",
            b"not json",
            b"",
            br#"{"date":1}"#,
            b"{\"data\":",
        ] {
            assert_eq!(
                parse_broadcast(bad, 100).map(|_| ()),
                Err(ApiError::BadRequest(INVALID_BROADCAST.into())),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_broadcast(br#"{"data":"0123456789"}"#, 10).map(|_| ()),
            Err(ApiError::TooLarge)
        );
    }

    #[test]
    fn removed_answer() {
        assert_eq!(removed_json(2), r#"{"removed":2}"#);
    }
}
