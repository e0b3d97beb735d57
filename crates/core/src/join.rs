//! Join parsing and validation: from a request path and query string to a
//! [`JoinRequest`], or the section 6 error that refuses it.

use std::borrow::Cow;

use thiserror::Error;

use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::time::UnixMillis;
use crate::token::{Auth, AuthError};

/// Longest space name, in Unicode scalar values.
pub const MAX_SPACE_CHARS: usize = 128;
/// Longest identity, in Unicode scalar values.
pub const MAX_IDENTITY_CHARS: usize = 256;

/// A space name: the decoded path. Spaces are independent rooms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpaceName(String);

impl SpaceName {
    /// Validates an already decoded space name against section 1.
    pub fn parse(s: &str) -> Result<Self, JoinError> {
        if s.is_empty() {
            return Err(JoinError::MissingSpace);
        }
        check_text(s, MAX_SPACE_CHARS).map_err(JoinError::InvalidSpace)?;
        Ok(SpaceName(s.to_owned()))
    }

    /// The decoded name, as stores key it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The space of a raw request path (`/space`, still percent-encoded),
    /// decoded and checked exactly as a join's.
    pub fn from_path(path: &str) -> Result<Self, JoinError> {
        let raw = path.strip_prefix('/').unwrap_or(path);
        Self::parse(&decode_path(raw).map_err(JoinError::InvalidSpace)?)
    }
}

/// A valid join: where, who, and which former id (if any) to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The space to join.
    pub space: SpaceName,
    /// Who the user is; opaque, returned byte for byte.
    pub identity: String,
    /// A former id to resume, or the id to use for a fresh lease.
    pub id: Option<ClientId>,
}

/// Why a value is outside the limits of section 1; the text after
/// `Invalid <field>: ` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidReason {
    /// An empty value where one is required.
    #[error("must not be empty")]
    Empty,
    /// More characters than the limit.
    #[error("longer than {max} characters")]
    TooLong {
        /// The limit, in characters.
        max: usize,
    },
    /// A Unicode Cc character (C0, DEL, C1).
    #[error("contains a control character")]
    ControlCharacter,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-encoding")]
    MalformedPercent,
    /// Percent-decoding produced bytes that are not UTF-8.
    #[error("not valid UTF-8 once decoded")]
    NotUtf8,
    /// A client id character outside `A-Z a-z 0-9 - _`.
    #[error("only A-Z a-z 0-9 - _ are allowed")]
    BadIdCharacter,
}

/// A refused join. `Display` is the wire text of section 6; every variant
/// closes the socket with 1008.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinError {
    /// The path names no space.
    #[error("Space ID is required")]
    MissingSpace,
    /// No `identity` parameter (or an empty one).
    #[error("No identity parameter was supplied")]
    MissingIdentity,
    /// The space is outside the limits.
    #[error("Invalid space: {0}")]
    InvalidSpace(InvalidReason),
    /// The identity is outside the limits.
    #[error("Invalid identity: {0}")]
    InvalidIdentity(InvalidReason),
    /// The id is outside the limits.
    #[error("Invalid id: {0}")]
    InvalidId(InvalidReason),
    /// The id names a live lease of another identity (section 5).
    #[error("Invalid id: it is held by another identity")]
    IdHeldByAnother,
    /// Authentication is on and the join's token does not entitle it.
    #[error("Unauthorized: {0}")]
    Unauthorized(AuthError),
    /// The space already holds `MAX_CLIENTS_PER_SPACE` leases; closed 1013
    /// so the client knows to try again later rather than fix its request.
    #[error("Space is full")]
    SpaceFull,
    /// The presence store (Redis) could not serve the join: closed 1011,
    /// as an internal error, so the client retries.
    #[error("Presence store unavailable, try again shortly")]
    StoreUnavailable,
}

impl JoinError {
    /// The close that follows the error message: 1013 for a full space,
    /// 1011 when the store failed, 1008 for everything the client got
    /// wrong.
    pub fn close_code(&self) -> CloseCode {
        match self {
            JoinError::SpaceFull => CloseCode::TryAgainLater,
            JoinError::StoreUnavailable => CloseCode::InternalError,
            _ => CloseCode::PolicyViolation,
        }
    }
}

impl JoinRequest {
    /// Parses a join from the raw request path (`/space`, still
    /// percent-encoded) and raw query string. Checks run in the order of
    /// section 1: space, identity, id.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Self, JoinError> {
        Self::parse_with(path, query, &Auth::off(), UnixMillis(0))
    }

    /// Parses and authorizes a join under `auth` at time `now`. Checks run
    /// in this order: space, identity limits (when the parameter is given),
    /// token (when auth is on: present, valid, admits the space, `sub`
    /// equals any `identity` given), identity present, id. A join with a
    /// token needs no `identity`: the token's `sub` is the identity.
    pub fn parse_with(
        path: &str,
        query: Option<&str>,
        auth: &Auth,
        now: UnixMillis,
    ) -> Result<Self, JoinError> {
        let raw_space = path.strip_prefix('/').unwrap_or(path);
        let space = SpaceName::parse(&decode_path(raw_space).map_err(JoinError::InvalidSpace)?)?;

        let mut identity: Option<Cow<'_, str>> = None;
        let mut id: Option<Cow<'_, str>> = None;
        let mut token: Option<Cow<'_, str>> = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match key.as_ref() {
                "identity" => &mut identity,
                "id" => &mut id,
                "token" => &mut token,
                _ => continue,
            };
            // The first of repeated parameters wins; an empty value is absent.
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value);
            }
        }

        if let Some(identity) = &identity {
            check_identity(identity).map_err(JoinError::InvalidIdentity)?;
        }
        let identity = auth
            .authorize(&space, identity.as_deref(), token.as_deref(), now)
            .map_err(JoinError::Unauthorized)?
            .ok_or(JoinError::MissingIdentity)?;
        let id = id
            .map(|raw| ClientId::parse(&raw).map_err(JoinError::InvalidId))
            .transpose()?;
        Ok(JoinRequest {
            space,
            identity,
            id,
        })
    }
}

/// Percent-decodes a path once, refusing malformed `%` sequences and
/// non-UTF-8 results (`+` stays `+`).
fn decode_path(raw: &str) -> Result<String, InvalidReason> {
    let bytes = raw.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return Err(InvalidReason::MalformedPercent);
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| InvalidReason::NotUtf8)
}

/// The identity rule of section 1, shared with token subjects.
pub(crate) fn check_identity(s: &str) -> Result<(), InvalidReason> {
    check_text(s, MAX_IDENTITY_CHARS)
}

/// The shared rule for spaces and identities: 1 to `max` characters, none of
/// them a control character.
fn check_text(s: &str, max: usize) -> Result<(), InvalidReason> {
    if s.is_empty() {
        return Err(InvalidReason::Empty);
    }
    if s.chars().count() > max {
        return Err(InvalidReason::TooLong { max });
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidReason::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(path: &str, query: &str) -> Result<JoinRequest, JoinError> {
        JoinRequest::parse(path, Some(query))
    }

    fn ok(path: &str, query: &str) -> JoinRequest {
        join(path, query).unwrap_or_else(|e| panic!("{path}?{query}: {e}"))
    }

    #[test]
    fn plain_join() {
        let j = ok("/room", "identity=a%40example.com");
        assert_eq!(j.space.as_str(), "room");
        assert_eq!(j.identity, "a@example.com");
        assert_eq!(j.id, None);
    }

    #[test]
    fn space_is_the_whole_path_decoded_once() {
        assert_eq!(
            ok("/a%2Fb", "identity=x").space,
            ok("/a/b", "identity=x").space
        );
        assert_eq!(ok("/a+b", "identity=x").space.as_str(), "a+b");
        assert_eq!(ok("/%2541", "identity=x").space.as_str(), "%41");
        assert_eq!(ok("/%5Bx%5D", "identity=x").space.as_str(), "[x]");
        assert_eq!(ok("/Zo%C3%AB", "identity=x").space.as_str(), "Zoë");
        assert_eq!(ok("/health", "identity=x").space.as_str(), "health");
    }

    #[test]
    fn malformed_percent_in_path_is_invalid() {
        for path in ["/a%", "/a%4", "/a%zz", "/%G1"] {
            assert_eq!(
                join(path, "identity=x"),
                Err(JoinError::InvalidSpace(InvalidReason::MalformedPercent)),
                "{path}"
            );
        }
        assert_eq!(
            join("/%FF", "identity=x"),
            Err(JoinError::InvalidSpace(InvalidReason::NotUtf8))
        );
    }

    #[test]
    fn missing_space() {
        assert_eq!(join("/", "identity=x"), Err(JoinError::MissingSpace));
        assert_eq!(join("", "identity=x"), Err(JoinError::MissingSpace));
        assert_eq!(JoinError::MissingSpace.to_string(), "Space ID is required");
    }

    #[test]
    fn query_decodes_like_url_search_params() {
        assert_eq!(ok("/s", "identity=a+b").identity, "a b");
        assert_eq!(ok("/s", "identity=a%2Bb").identity, "a+b");
        assert_eq!(ok("/s", "identity=first&identity=second").identity, "first");
        assert_eq!(ok("/s", "foo=bar&identity=x&baz").identity, "x");
        assert_eq!(ok("/s", "identity=%7C%2A%3A%2F").identity, "|*:/");
        assert_eq!(ok("/s", "identity=%2541").identity, "%41");
        assert_eq!(ok("/s", "identity=x&id=").id, None);
    }

    #[test]
    fn missing_identity() {
        for q in ["", "identity=", "identity", "id=abc", "Identity=x"] {
            assert_eq!(join("/s", q), Err(JoinError::MissingIdentity), "{q}");
        }
        assert_eq!(
            JoinRequest::parse("/s", None),
            Err(JoinError::MissingIdentity)
        );
        assert_eq!(
            JoinError::MissingIdentity.to_string(),
            "No identity parameter was supplied"
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let space = "é".repeat(MAX_SPACE_CHARS);
        let encoded: String =
            percent_encoding::utf8_percent_encode(&space, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        assert_eq!(
            ok(&format!("/{encoded}"), "identity=x").space.as_str(),
            space
        );
        assert_eq!(
            join(
                &format!("/{}", "a".repeat(MAX_SPACE_CHARS + 1)),
                "identity=x"
            ),
            Err(JoinError::InvalidSpace(InvalidReason::TooLong { max: 128 }))
        );
        let identity = "🦀".repeat(MAX_IDENTITY_CHARS);
        let q: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("identity", &identity)
            .finish();
        assert_eq!(ok("/s", &q).identity, identity);
        assert_eq!(
            join(
                "/s",
                &format!("identity={}", "a".repeat(MAX_IDENTITY_CHARS + 1))
            ),
            Err(JoinError::InvalidIdentity(InvalidReason::TooLong {
                max: 256
            }))
        );
    }

    #[test]
    fn control_characters_are_invalid() {
        for c in ["%09", "%7F", "%C2%85", "%00"] {
            assert_eq!(
                join(&format!("/a{c}"), "identity=x"),
                Err(JoinError::InvalidSpace(InvalidReason::ControlCharacter)),
                "{c}"
            );
            assert_eq!(
                join("/s", &format!("identity=a{c}")),
                Err(JoinError::InvalidIdentity(InvalidReason::ControlCharacter)),
                "{c}"
            );
        }
    }

    #[test]
    fn id_is_checked_last() {
        assert_eq!(
            ok("/s", "identity=x&id=abc_-09").id.unwrap().as_str(),
            "abc_-09"
        );
        assert_eq!(
            join("/s", "identity=x&id=a.b"),
            Err(JoinError::InvalidId(InvalidReason::BadIdCharacter))
        );
        assert_eq!(
            join("/s", &format!("identity=x&id={}", "a".repeat(65))),
            Err(JoinError::InvalidId(InvalidReason::TooLong { max: 64 }))
        );
        // Order: space, then identity, then id.
        assert_eq!(
            join("/a%", "id=a.b"),
            Err(JoinError::InvalidSpace(InvalidReason::MalformedPercent))
        );
        assert_eq!(join("/s", "id=a.b"), Err(JoinError::MissingIdentity));
        assert_eq!(join("/", "id=a.b"), Err(JoinError::MissingSpace));
    }

    #[test]
    fn with_auth_the_token_sub_is_the_identity() {
        let secret: &[u8] = b"k";
        let auth = Auth::hs256(Some(secret), None);
        let now = UnixMillis(1_800_000_000_000);
        let token = crate::token::sign(r#"{"sub":"a@x","exp":1800000060}"#, secret);
        let parse = |q: &str| JoinRequest::parse_with("/s", Some(q), &auth, now);
        assert_eq!(parse(&format!("token={token}")).unwrap().identity, "a@x");
        assert_eq!(
            parse(&format!("identity=a%40x&token={token}&id=q"))
                .unwrap()
                .identity,
            "a@x"
        );
        assert_eq!(
            parse(&format!("identity=b&token={token}")),
            Err(JoinError::Unauthorized(AuthError::IdentityMismatch))
        );
        assert_eq!(
            parse("identity=a%40x"),
            Err(JoinError::Unauthorized(AuthError::MissingToken))
        );
        assert_eq!(
            parse("token=abc").unwrap_err().to_string(),
            "Unauthorized: malformed token"
        );
        // Order: space, identity limits, token, id.
        assert_eq!(
            JoinRequest::parse_with("/", Some("token=x"), &auth, now),
            Err(JoinError::MissingSpace)
        );
        assert!(matches!(
            parse(&format!("identity={}&token=x", "a".repeat(300))),
            Err(JoinError::InvalidIdentity(_))
        ));
        assert_eq!(
            parse("token=x&id=a.b"),
            Err(JoinError::Unauthorized(AuthError::Malformed))
        );
        assert!(matches!(
            parse(&format!("token={token}&id=a.b")),
            Err(JoinError::InvalidId(_))
        ));
        // Without auth a token is just an unknown parameter.
        assert_eq!(
            JoinRequest::parse("/s", Some("token=x")),
            Err(JoinError::MissingIdentity)
        );
        assert_eq!(
            JoinError::Unauthorized(AuthError::Expired).close_code(),
            CloseCode::PolicyViolation
        );
    }

    #[test]
    fn every_invalid_message_starts_with_invalid() {
        let errors = [
            JoinError::InvalidSpace(InvalidReason::Empty),
            JoinError::InvalidIdentity(InvalidReason::ControlCharacter),
            JoinError::InvalidId(InvalidReason::BadIdCharacter),
            JoinError::IdHeldByAnother,
        ];
        for e in errors {
            assert!(e.to_string().starts_with("Invalid"), "{e}");
        }
        assert!(JoinError::IdHeldByAnother
            .to_string()
            .starts_with("Invalid id"));
    }
}
