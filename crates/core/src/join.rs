//! Join parsing and validation: from a request path and query string to a
//! [`JoinRequest`], or the section 6 error that refuses it.

use std::borrow::Cow;

use thiserror::Error;

use crate::client_id::ClientId;
use crate::close::CloseCode;
use crate::defaults::DEFAULT_MAX_STATE_BYTES;
use crate::json::{Json, JsonError};
use crate::time::UnixMillis;
use crate::token::{Auth, AuthError};
use crate::wire::ClientInfo;

/// Longest space name, in Unicode scalar values.
pub const MAX_SPACE_CHARS: usize = 128;
/// Longest identity, in Unicode scalar values.
pub const MAX_IDENTITY_CHARS: usize = 256;
/// Longest 2015 `username`, in Unicode scalar values.
pub const MAX_USERNAME_CHARS: usize = 256;

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
    /// The 2015 `username` parameter (section 11).
    pub username: Option<String>,
    /// The token's signed `info` (section 11).
    pub info: Option<Json>,
    /// The `state` parameter, compact (section 10).
    pub state: Option<Json>,
}

impl JoinRequest {
    /// A request for `identity` in `space`, nothing else given.
    pub fn new(space: SpaceName, identity: impl Into<String>, id: Option<ClientId>) -> Self {
        JoinRequest {
            space,
            identity: identity.into(),
            id,
            username: None,
            info: None,
            state: None,
        }
    }

    /// The client record of a fresh lease `id` that begins at `now`.
    pub fn fresh_client(&self, id: ClientId, now: UnixMillis) -> ClientInfo {
        ClientInfo {
            id,
            identity: self.identity.clone(),
            joined_at: now,
            username: self.username.clone(),
            info: self.info.clone(),
            state: self.state.clone(),
        }
    }

    /// The record a resume of `old` leaves (section 10, 11); `None` if
    /// nothing changes, so that a plain resume makes no update.
    pub fn resumed_client(&self, old: &ClientInfo) -> Option<ClientInfo> {
        self.resume_changes().apply(old)
    }

    /// What this request changes in a lease it resumes.
    pub fn resume_changes(&self) -> ResumeChanges {
        ResumeChanges {
            username: self.username.clone(),
            info: self.info.clone(),
            state: self.state.clone(),
        }
    }
}

/// What a resume brings to the record it takes over (sections 10, 11):
/// `state=` replaces the state, `username=` the username, and the token's
/// `info` (or its absence) the info. Kept apart from the request so that a
/// hub can show a resumer its own record as the resume leaves it, even
/// while the store still holds the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeChanges {
    username: Option<String>,
    info: Option<Json>,
    state: Option<Json>,
}

impl ResumeChanges {
    /// The record a resume of `old` leaves; `None` if nothing changes.
    pub fn apply(&self, old: &ClientInfo) -> Option<ClientInfo> {
        let new = ClientInfo {
            username: self.username.clone().or_else(|| old.username.clone()),
            info: self.info.clone(),
            state: self.state.clone().or_else(|| old.state.clone()),
            ..old.clone()
        };
        (new != *old).then_some(new)
    }
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
    /// Not JSON.
    #[error("not valid JSON")]
    NotJson,
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// More bytes than the limit.
    #[error("larger than {max} bytes")]
    TooManyBytes {
        /// The limit, in bytes.
        max: usize,
    },
}

impl From<JsonError> for InvalidReason {
    fn from(e: JsonError) -> Self {
        match e {
            JsonError::NotJson => InvalidReason::NotJson,
            JsonError::NotObject => InvalidReason::NotObject,
        }
    }
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
    /// The `username` is outside the limits (section 11).
    #[error("Invalid username: {0}")]
    InvalidUsername(InvalidReason),
    /// The `state` is not a JSON object of at most `MAX_STATE_BYTES`
    /// bytes (section 10).
    #[error("Invalid state: {0}")]
    InvalidState(InvalidReason),
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
        Self::parse_limited(path, query, auth, now, DEFAULT_MAX_STATE_BYTES)
    }

    /// [`JoinRequest::parse_with`] under a `MAX_STATE_BYTES` of
    /// `max_state_bytes` (for `state` and the token's `info`). After the id
    /// come the v2 parameters: `state` (section 10: checked after `id`),
    /// then `username`; a token's `info` is checked with the token.
    pub fn parse_limited(
        path: &str,
        query: Option<&str>,
        auth: &Auth,
        now: UnixMillis,
        max_state_bytes: usize,
    ) -> Result<Self, JoinError> {
        let raw_space = path.strip_prefix('/').unwrap_or(path);
        let space = SpaceName::parse(&decode_path(raw_space).map_err(JoinError::InvalidSpace)?)?;

        let mut identity: Option<Cow<'_, str>> = None;
        let mut id: Option<Cow<'_, str>> = None;
        let mut token: Option<Cow<'_, str>> = None;
        let mut state: Option<Cow<'_, str>> = None;
        let mut username: Option<Cow<'_, str>> = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let slot = match key.as_ref() {
                "identity" => &mut identity,
                "id" => &mut id,
                "token" => &mut token,
                "state" => &mut state,
                "username" => &mut username,
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
        let authorized = auth
            .authorize_join(
                &space,
                identity.as_deref(),
                token.as_deref(),
                now,
                max_state_bytes,
            )
            .map_err(JoinError::Unauthorized)?;
        let identity = authorized.identity.ok_or(JoinError::MissingIdentity)?;
        let id = id
            .map(|raw| ClientId::parse(&raw).map_err(JoinError::InvalidId))
            .transpose()?;
        let state = state
            .map(|raw| parse_state(&raw, max_state_bytes).map_err(JoinError::InvalidState))
            .transpose()?;
        let username = username
            .map(|raw| {
                check_text(&raw, MAX_USERNAME_CHARS)
                    .map(|()| raw.into_owned())
                    .map_err(JoinError::InvalidUsername)
            })
            .transpose()?;
        Ok(JoinRequest {
            space,
            identity,
            id,
            username,
            info: authorized.info,
            state,
        })
    }
}

/// A `state` parameter's decoded value: a JSON object of at most
/// `max_bytes` UTF-8 bytes, kept compact.
fn parse_state(raw: &str, max_bytes: usize) -> Result<Json, InvalidReason> {
    if raw.len() > max_bytes {
        return Err(InvalidReason::TooManyBytes { max: max_bytes });
    }
    Ok(Json::object(raw)?)
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
    fn state_parameter_is_an_object_within_the_limit_checked_after_id() {
        let q = |state: &str| {
            form_urlencoded::Serializer::new(String::from("identity=x&"))
                .append_pair("state", state)
                .finish()
        };
        let j = ok("/s", &q(r#"{"b":1,"a":"é 🦀"}"#));
        assert_eq!(j.state.unwrap().as_str(), r#"{"a":"é 🦀","b":1}"#);
        assert_eq!(ok("/s", "identity=x&state=").state, None);
        assert_eq!(
            ok("/s", "identity=x&state=%7B%7D&state=junk")
                .state
                .unwrap()
                .as_str(),
            "{}"
        );
        for (state, reason) in [
            ("null", InvalidReason::NotObject),
            ("[1]", InvalidReason::NotObject),
            ("7", InvalidReason::NotObject),
            ("{", InvalidReason::NotJson),
            ("x", InvalidReason::NotJson),
        ] {
            let e = join("/s", &q(state)).unwrap_err();
            assert_eq!(e, JoinError::InvalidState(reason), "{state}");
            assert!(e.to_string().starts_with("Invalid state"), "{e}");
            assert_eq!(e.close_code(), CloseCode::PolicyViolation);
        }
        // The limit counts the decoded value's UTF-8 bytes, inclusive.
        let of = |n: usize| format!(r#"{{"p":"{}"}}"#, "é".repeat((n - 8) / 2));
        assert_eq!(of(1024).len(), 1024);
        assert!(ok("/s", &q(&of(1024))).state.is_some());
        assert_eq!(
            join("/s", &q(&of(1026))),
            Err(JoinError::InvalidState(InvalidReason::TooManyBytes {
                max: 1024
            }))
        );
        let small =
            JoinRequest::parse_limited("/s", Some(&q(&of(12))), &Auth::off(), UnixMillis(0), 11);
        assert!(matches!(small, Err(JoinError::InvalidState(_))));
        // After the id.
        assert!(matches!(
            join("/s", &format!("{}&id=a.b", q("null"))),
            Err(JoinError::InvalidId(_))
        ));
        assert_eq!(
            join("/s", &q("null").replace("identity=x&", "")),
            Err(JoinError::MissingIdentity)
        );
    }

    #[test]
    fn username_is_optional_and_limited_checked_after_state() {
        assert_eq!(ok("/s", "identity=x").username, None);
        assert_eq!(ok("/s", "identity=x&username=").username, None);
        assert_eq!(
            ok("/s", "identity=x&username=Ada+L%2B").username.as_deref(),
            Some("Ada L+")
        );
        assert_eq!(
            ok("/s", &format!("identity=x&username={}", "é".repeat(256)))
                .username
                .map(|u| u.chars().count()),
            Some(256)
        );
        for (q, reason) in [
            (
                format!("identity=x&username={}", "a".repeat(257)),
                InvalidReason::TooLong { max: 256 },
            ),
            (
                "identity=x&username=a%0Ab".to_owned(),
                InvalidReason::ControlCharacter,
            ),
        ] {
            let e = join("/s", &q).unwrap_err();
            assert_eq!(e, JoinError::InvalidUsername(reason));
            assert!(e.to_string().starts_with("Invalid username"), "{e}");
            assert_eq!(e.close_code(), CloseCode::PolicyViolation);
        }
        assert!(matches!(
            join("/s", "identity=x&username=a%0Ab&state=null"),
            Err(JoinError::InvalidState(_))
        ));
        assert!(matches!(
            join("/s", "identity=x&username=a%0Ab&id=a.b"),
            Err(JoinError::InvalidId(_))
        ));
    }

    #[test]
    fn token_info_is_an_object_within_the_limit() {
        let secret: &[u8] = b"k";
        let auth = Auth::hs256(Some(secret), None);
        let now = UnixMillis(1_800_000_000_000);
        let parse = |claims: &str, limit| {
            let token = crate::token::sign(claims, secret);
            JoinRequest::parse_limited("/s", Some(&format!("token={token}")), &auth, now, limit)
        };
        let j = parse(
            r#"{"sub":"a","exp":1800000060,"info":{"name":"Ada","n":1}}"#,
            1024,
        )
        .unwrap();
        assert_eq!(j.info.unwrap().as_str(), r#"{"n":1,"name":"Ada"}"#);
        assert_eq!(
            parse(r#"{"sub":"a","exp":1800000060}"#, 1024).unwrap().info,
            None
        );
        // A null claim is an absent one (what encoders write for unset).
        assert_eq!(
            parse(r#"{"sub":"a","exp":1800000060,"info":null}"#, 1024)
                .unwrap()
                .info,
            None
        );
        for claims in [
            r#"{"sub":"a","exp":1800000060,"info":[1]}"#,
            r#"{"sub":"a","exp":1800000060,"info":"x"}"#,
        ] {
            let e = parse(claims, 1024).unwrap_err();
            assert_eq!(
                e,
                JoinError::Unauthorized(AuthError::InvalidInfo),
                "{claims}"
            );
            assert_eq!(e.to_string(), "Unauthorized: invalid info");
        }
        // {"n":"xx"} is 10 bytes.
        assert!(parse(r#"{"sub":"a","exp":1800000060,"info":{"n":"xx"}}"#, 10).is_ok());
        assert_eq!(
            parse(r#"{"sub":"a","exp":1800000060,"info":{"n":"xxx"}}"#, 10),
            Err(JoinError::Unauthorized(AuthError::InvalidInfo))
        );
        // Without auth there is no info.
        assert_eq!(ok("/s", "identity=x&info=%7B%7D").info, None);
    }

    #[test]
    fn a_resume_changes_only_what_it_gives() {
        let mut req = ok("/s", "identity=x&id=c");
        let old = req.fresh_client(ClientId::parse("c").unwrap(), UnixMillis(5));
        assert_eq!(req.resumed_client(&old), None);
        let mut old2 = old.clone();
        old2.state = Json::object(r#"{"a":1}"#).ok();
        old2.username = Some("u".into());
        assert_eq!(req.resumed_client(&old2), None, "kept when not given");
        req.state = Json::object(r#"{"a":2}"#).ok();
        let new = req.resumed_client(&old2).unwrap();
        assert_eq!(new.state, req.state);
        assert_eq!(new.username.as_deref(), Some("u"));
        assert_eq!(new.joined_at, UnixMillis(5));
        req.state = old2.state.clone();
        assert_eq!(
            req.resumed_client(&old2),
            None,
            "the same state is no change"
        );
        old2.info = Json::object(r#"{"role":"x"}"#).ok();
        assert_eq!(
            req.resumed_client(&old2).unwrap().info,
            None,
            "the token's info, or its absence, replaces it"
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
