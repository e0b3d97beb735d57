//! Who may use the API: the holder of `ADMIN_TOKEN`. The token is compared
//! in constant time: both sides are hashed (SHA-256) first, so neither the
//! position of the first wrong byte nor the token's length shows in the
//! time a refusal takes.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, MISSING_TOKEN, WRONG_TOKEN};

/// `ADMIN_TOKEN`, kept only as its digest. Unset: the API is off.
#[derive(Clone, Default)]
pub struct AdminToken(Option<[u8; 32]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_on() {
            "AdminToken(set)"
        } else {
            "AdminToken(unset)"
        })
    }
}

impl AdminToken {
    /// The API's token; `None` or empty turns the API off.
    pub fn new(token: Option<&str>) -> Self {
        AdminToken(token.filter(|t| !t.is_empty()).map(digest))
    }

    /// Whether `ADMIN_TOKEN` is set.
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `presented` is the token, in time independent of both.
    fn matches(&self, presented: &str) -> bool {
        match &self.0 {
            Some(expected) => bool::from(expected.ct_eq(&digest(presented))),
            None => false,
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The API's methods on `/{space}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The roster.
    Get,
    /// A server broadcast.
    Post,
    /// A kick.
    Delete,
}

/// What a request may do once let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It carried the admin token: anything, in any space.
    Admin,
    /// A `GET` without an `Authorization` header: the join rules decide
    /// (`?token=` when `AUTH_SECRET` is set, open otherwise).
    JoinRules,
}

/// Section 14's rules for a request with `authorization` (the header's
/// value, if any):
/// - `ADMIN_TOKEN` unset: `POST` and `DELETE` are 404; a `GET` follows the
///   join rules (an `Authorization` header means nothing then).
/// - set: `Authorization: Bearer <ADMIN_TOKEN>` is [`Access::Admin`];
///   any other `Authorization` header is 401, whatever the method; no
///   header is 401 for `POST` and `DELETE`, the join rules for a `GET`.
pub fn authorize(
    admin: &AdminToken,
    method: Method,
    authorization: Option<&str>,
) -> Result<Access, ApiError> {
    if !admin.is_on() {
        return match method {
            Method::Get => Ok(Access::JoinRules),
            Method::Post | Method::Delete => Err(ApiError::NotFound),
        };
    }
    match authorization {
        Some(value) => match bearer(value) {
            Some(token) if admin.matches(token) => Ok(Access::Admin),
            _ => Err(ApiError::Unauthorized(WRONG_TOKEN)),
        },
        None => match method {
            Method::Get => Ok(Access::JoinRules),
            Method::Post | Method::Delete => Err(ApiError::Unauthorized(MISSING_TOKEN)),
        },
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Method; 3] = [Method::Get, Method::Post, Method::Delete];

    #[test]
    fn unset_post_and_delete_are_404_get_follows_the_join_rules() {
        let off = AdminToken::new(None);
        assert!(!off.is_on());
        assert!(!AdminToken::new(Some("")).is_on());
        for auth in [None, Some("Bearer x")] {
            assert_eq!(authorize(&off, Method::Get, auth), Ok(Access::JoinRules));
            assert_eq!(authorize(&off, Method::Post, auth), Err(ApiError::NotFound));
            assert_eq!(
                authorize(&off, Method::Delete, auth),
                Err(ApiError::NotFound)
            );
        }
    }

    #[test]
    fn set_the_bearer_token_is_admin_for_every_method() {
        let on = AdminToken::new(Some("s3cret"));
        for m in ALL {
            assert_eq!(authorize(&on, m, Some("Bearer s3cret")), Ok(Access::Admin));
            assert_eq!(authorize(&on, m, Some("bearer  s3cret")), Ok(Access::Admin));
        }
    }

    #[test]
    fn set_a_wrong_token_is_401_even_for_a_get() {
        let on = AdminToken::new(Some("s3cret"));
        for m in ALL {
            for wrong in [
                "Bearer s3cre",
                "Bearer s3cret2",
                "Bearer S3CRET",
                "Basic s3cret",
                "s3cret",
                "Bearer",
                "",
            ] {
                assert_eq!(
                    authorize(&on, m, Some(wrong)),
                    Err(ApiError::Unauthorized(WRONG_TOKEN)),
                    "{m:?} {wrong:?}"
                );
            }
        }
    }

    #[test]
    fn set_no_header_is_401_for_post_and_delete_and_join_rules_for_get() {
        let on = AdminToken::new(Some("s3cret"));
        assert_eq!(authorize(&on, Method::Get, None), Ok(Access::JoinRules));
        for m in [Method::Post, Method::Delete] {
            assert_eq!(
                authorize(&on, m, None),
                Err(ApiError::Unauthorized(MISSING_TOKEN))
            );
        }
    }

    #[test]
    fn the_token_is_not_in_its_debug_form() {
        assert_eq!(
            format!("{:?}", AdminToken::new(Some("s3cret"))),
            "AdminToken(set)"
        );
    }
}
