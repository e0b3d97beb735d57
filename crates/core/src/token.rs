//! Signed identities: HS256 join tokens (JWT) and the rule that turns a
//! token into the identity a join may use.
//!
//! An application backend that already knows who its user is mints a short
//! token with the shared secret; the service then trusts `sub` as the
//! identity instead of whatever the client claims. The check is pure (time
//! and secrets are passed in) so every target runs the same code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::Deserialize;
use thiserror::Error;

use crate::join::SpaceName;
use crate::time::UnixMillis;

/// Longest token accepted, in bytes: a real one is a few hundred; anything
/// far larger is refused before any decoding or hashing.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 30;

/// Why a join's token (or its absence) is refused. `Display` is the text
/// after `Unauthorized: ` on the wire; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// Authentication is on and the join has no `token` parameter.
    #[error("a token is required")]
    MissingToken,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token too long")]
    TooLong,
    /// Not three base64url parts of JSON objects.
    #[error("malformed token")]
    Malformed,
    /// A header `alg` other than `HS256`.
    #[error("unsupported token algorithm (HS256 only)")]
    Algorithm,
    /// Signed with none of the configured secrets (or altered).
    #[error("bad token signature")]
    Signature,
    /// No `exp` claim: tokens must expire.
    #[error("token has no exp claim")]
    MissingExpiry,
    /// `exp` is in the past (beyond the skew).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the skew).
    #[error("token not valid yet")]
    NotYetValid,
    /// `sub` is missing or outside the identity limits.
    #[error("token sub is not a valid identity")]
    BadSubject,
    /// The `identity` parameter differs from the token's `sub`.
    #[error("identity does not match the token")]
    IdentityMismatch,
    /// The `spaces` claim does not admit the space.
    #[error("token does not admit this space")]
    SpaceNotAdmitted,
    /// The `info` claim is not a JSON object of at most `MAX_STATE_BYTES`
    /// bytes (section 11).
    #[error("invalid info")]
    InvalidInfo,
}

/// The claims Longhouse reads; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The identity.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<u64>,
    /// Not before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// The spaces admitted: exact names, or prefixes ending in `*`. Absent:
    /// every space.
    #[serde(default)]
    pub spaces: Option<Vec<String>>,
    /// Facts the backend vouches for (section 11), shown in client objects;
    /// checked by [`Claims::info_object`]. `null` is the same as absent.
    #[serde(default)]
    pub info: Option<serde_json::Value>,
}

impl Claims {
    /// Whether the `spaces` claim admits `space` (absent admits all).
    pub fn admits(&self, space: &SpaceName) -> bool {
        let Some(patterns) = &self.spaces else {
            return true;
        };
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => space.as_str().starts_with(prefix),
            None => p == space.as_str(),
        })
    }
}

impl Claims {
    /// The `info` claim as a compact object of at most `max_bytes` bytes
    /// (`None` if absent).
    pub fn info_object(&self, max_bytes: usize) -> Result<Option<crate::Json>, AuthError> {
        let Some(info) = &self.info else {
            return Ok(None);
        };
        let info = crate::Json::from_value(info).map_err(|_| AuthError::InvalidInfo)?;
        if info.len() > max_bytes {
            return Err(AuthError::InvalidInfo);
        }
        Ok(Some(info))
    }
}

/// What a token admits a join as: the identity (`None` with auth off and
/// no `identity` parameter) and the signed `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The identity the join may use.
    pub identity: Option<String>,
    /// The token's `info` claim, checked.
    pub info: Option<crate::Json>,
}

/// Checks an HS256 token against `secrets` (any one may have signed it, so
/// a secret can be rotated) at time `now`, and returns its claims.
///
/// The JWT itself is `jsonwebtoken`'s: three base64url parts, the header's
/// `alg` pinned to HS256 (an HS384 or RS256 header is refused before any
/// key is used; `none` is no algorithm it knows, so it is malformed), the
/// HMAC compared in constant time (RustCrypto's `hmac`, through
/// [`crate::hs256`]), and the claims decoded only once the signature holds. The time claims are checked here
/// against `now`, which the caller passes in (the core reads no clock).
pub fn verify(token: &str, secrets: &[&[u8]], now: UnixMillis) -> Result<Claims, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    crate::hs256::install();
    let mut validation = Validation::new(Algorithm::HS256);
    // Time, audience and the required claims are ours to check (below),
    // not the library's, which would read the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut claims = None;
    for secret in secrets {
        // An empty secret is no key (and `Auth` never holds one).
        let Ok(key) = DecodingKey::from_secret(secret) else {
            continue;
        };
        match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => match refusal(e.kind()) {
                AuthError::Signature => continue, // maybe the other secret
                other => return Err(other),
            },
        }
    }
    let claims = claims.ok_or(AuthError::Signature)?;
    let now_secs = now.0 / 1000;
    let exp = claims.exp.ok_or(AuthError::MissingExpiry)?;
    if now_secs >= exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if now_secs.saturating_add(CLOCK_SKEW_SECS) < nbf {
            return Err(AuthError::NotYetValid);
        }
    }
    Ok(claims)
}

/// The wire's reason for one of `jsonwebtoken`'s error kinds.
fn refusal(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthError::Algorithm,
        // Shape, base64, JSON and UTF-8 errors; with every time and claim
        // validation turned off, nothing else is left to go wrong.
        _ => AuthError::Malformed,
    }
}

/// Signs `claims_json` with `secret`: what an application backend does.
/// For tests, fuzzing and tools; servers only verify. The claims are taken
/// as given (not re-serialized), so a fuzzer can sign any text.
pub fn sign(claims_json: &str, secret: &[u8]) -> String {
    sign_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, claims_json, secret)
}

/// [`sign`] under any header text (always an HS256 signature): for tests
/// of what the verifier refuses.
pub fn sign_with_header(header_json: &str, claims_json: &str, secret: &[u8]) -> String {
    crate::hs256::install();
    let header = URL_SAFE_NO_PAD.encode(header_json.as_bytes());
    let payload = URL_SAFE_NO_PAD.encode(claims_json.as_bytes());
    let signed = format!("{header}.{payload}");
    let key = EncodingKey::from_secret(secret).expect("a non-empty secret");
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Algorithm::HS256)
        .expect("HS256 signs with any key");
    format!("{signed}.{signature}")
}

/// Whether and how joins are authenticated: `AUTH_SECRET` and
/// `AUTH_SECRET_PREVIOUS`. With no secret, identities are taken on trust
/// (section 1 unchanged).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.debug_struct("Auth")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Auth {
    /// No authentication: `identity` is trusted.
    pub fn off() -> Self {
        Auth::default()
    }

    /// HS256 with the current secret and, during a rotation, the previous
    /// one. Empty secrets are ignored; if none is left, auth is off.
    pub fn hs256(current: Option<&[u8]>, previous: Option<&[u8]>) -> Self {
        Auth {
            secrets: [current, previous]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect(),
        }
    }

    /// Whether joins need a token.
    pub fn is_on(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// The identity a join into `space` may use, given its `identity`
    /// parameter (already checked against the limits) and `token`
    /// parameter. With auth off the parameter is the identity (`None` if
    /// absent: the caller reports it missing). With auth on: the token must
    /// verify, admit the space, and its `sub` is the identity; a given
    /// `identity` must equal it.
    pub fn authorize(
        &self,
        space: &SpaceName,
        identity: Option<&str>,
        token: Option<&str>,
        now: UnixMillis,
    ) -> Result<Option<String>, AuthError> {
        self.authorize_join(space, identity, token, now, usize::MAX)
            .map(|a| a.identity)
    }

    /// [`Auth::authorize`], with the token's `info` claim checked against
    /// `max_info_bytes` (`MAX_STATE_BYTES`) and returned.
    pub fn authorize_join(
        &self,
        space: &SpaceName,
        identity: Option<&str>,
        token: Option<&str>,
        now: UnixMillis,
        max_info_bytes: usize,
    ) -> Result<Authorized, AuthError> {
        if !self.is_on() {
            return Ok(Authorized {
                identity: identity.map(str::to_owned),
                info: None,
            });
        }
        let token = token.ok_or(AuthError::MissingToken)?;
        let secrets: Vec<&[u8]> = self.secrets.iter().map(Vec::as_slice).collect();
        let claims = verify(token, &secrets, now)?;
        let sub = claims.sub.as_deref().ok_or(AuthError::BadSubject)?;
        if crate::join::check_identity(sub).is_err() {
            return Err(AuthError::BadSubject);
        }
        if !claims.admits(space) {
            return Err(AuthError::SpaceNotAdmitted);
        }
        if identity.is_some_and(|i| i != sub) {
            return Err(AuthError::IdentityMismatch);
        }
        let info = claims.info_object(max_info_bytes)?;
        Ok(Authorized {
            identity: Some(sub.to_owned()),
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret";
    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn claims(extra: &str) -> String {
        format!(r#"{{"sub":"alice","exp":{}{extra}}}"#, NOW.0 / 1000 + 60)
    }

    #[test]
    fn a_good_token_verifies() {
        let t = sign(&claims(""), SECRET);
        let c = verify(&t, &[SECRET], NOW).unwrap();
        assert_eq!(c.sub.as_deref(), Some("alice"));
    }

    #[test]
    fn any_configured_secret_verifies_for_rotation() {
        let t = sign(&claims(""), b"old");
        assert!(verify(&t, &[SECRET, b"old"], NOW).is_ok());
        assert_eq!(verify(&t, &[SECRET], NOW), Err(AuthError::Signature));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let t = sign(&claims(""), SECRET);
        let (head, _) = t.rsplit_once('.').unwrap();
        let other = sign(&claims(r#","admin":true"#), SECRET);
        let (_, sig) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{head}.{sig}"), &[SECRET], NOW),
            Err(AuthError::Signature)
        );
        let mut parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory","exp":9999999999}"#);
        parts[1] = &evil;
        assert_eq!(
            verify(&parts.join("."), &[SECRET], NOW),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn only_hs256() {
        let with_alg =
            |alg: &str| sign_with_header(&format!(r#"{{"alg":"{alg}"}}"#), &claims(""), SECRET);
        assert!(verify(&with_alg("HS256"), &[SECRET], NOW).is_ok());
        // Signed with the secret, but the header names another algorithm:
        // refused by name, before any key is used.
        for alg in ["HS512", "HS384", "RS256", "PS256", "ES256", "EdDSA"] {
            assert_eq!(
                verify(&with_alg(alg), &[SECRET], NOW),
                Err(AuthError::Algorithm),
                "{alg}"
            );
        }
        // `none` (any case) and made-up names are no algorithm at all.
        for alg in ["none", "None", "HS256 ", "hs256"] {
            assert_eq!(
                verify(&with_alg(alg), &[SECRET], NOW),
                Err(AuthError::Malformed),
                "{alg}"
            );
        }
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims(""));
        assert!(verify(&format!("{header}.{payload}."), &[SECRET], NOW).is_err());
    }

    #[test]
    fn an_empty_secret_verifies_nothing() {
        let t = sign(&claims(""), SECRET);
        assert_eq!(verify(&t, &[b""], NOW), Err(AuthError::Signature));
        assert!(verify(&t, &[b"", SECRET], NOW).is_ok());
    }

    #[test]
    fn tokens_from_other_encoders_verify() {
        // What PyJWT and the README's Node snippet mint: header keys in
        // another order, no `typ`, extra claims.
        for header in [r#"{"typ":"JWT","alg":"HS256"}"#, r#"{"alg":"HS256"}"#] {
            let t = sign_with_header(header, &claims(r#","iat":1,"aud":"x","iss":"y""#), SECRET);
            assert!(verify(&t, &[SECRET], NOW).is_ok(), "{header}");
        }
    }

    #[test]
    fn malformed_tokens() {
        for t in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(verify(t, &[SECRET], NOW).is_err(), "{t}");
        }
        assert_eq!(verify("a.b", &[SECRET], NOW), Err(AuthError::Malformed));
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify(&long, &[SECRET], NOW), Err(AuthError::TooLong));
    }

    #[test]
    fn expiry_with_thirty_seconds_of_skew() {
        let at = |exp: u64| sign(&format!(r#"{{"sub":"a","exp":{exp}}}"#), SECRET);
        let now_s = NOW.0 / 1000;
        assert!(verify(&at(now_s - 29), &[SECRET], NOW).is_ok());
        assert_eq!(
            verify(&at(now_s - 30), &[SECRET], NOW),
            Err(AuthError::Expired)
        );
        assert_eq!(
            verify(&sign(r#"{"sub":"a"}"#, SECRET), &[SECRET], NOW),
            Err(AuthError::MissingExpiry)
        );
        let nbf = |nbf: u64| {
            sign(
                &format!(r#"{{"sub":"a","exp":{},"nbf":{nbf}}}"#, now_s + 600),
                SECRET,
            )
        };
        assert!(verify(&nbf(now_s + 30), &[SECRET], NOW).is_ok());
        assert_eq!(
            verify(&nbf(now_s + 31), &[SECRET], NOW),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn spaces_claim_exact_and_prefix() {
        let c = Claims {
            sub: None,
            exp: None,
            nbf: None,
            info: None,
            spaces: Some(vec!["doc-1".into(), "team-7/*".into()]),
        };
        let s = |n: &str| SpaceName::parse(n).unwrap();
        assert!(c.admits(&s("doc-1")));
        assert!(!c.admits(&s("doc-10")));
        assert!(c.admits(&s("team-7/a")));
        assert!(c.admits(&s("team-7/")));
        assert!(!c.admits(&s("team-70")));
        let all = Claims { spaces: None, ..c };
        assert!(all.admits(&s("anything")));
    }

    #[test]
    fn authorize_rules() {
        let auth = Auth::hs256(Some(SECRET), None);
        let space = SpaceName::parse("doc-1").unwrap();
        let t = sign(&claims(""), SECRET);
        assert_eq!(
            auth.authorize(&space, None, Some(&t), NOW),
            Ok(Some("alice".into()))
        );
        assert_eq!(
            auth.authorize(&space, Some("alice"), Some(&t), NOW),
            Ok(Some("alice".into()))
        );
        assert_eq!(
            auth.authorize(&space, Some("bob"), Some(&t), NOW),
            Err(AuthError::IdentityMismatch)
        );
        assert_eq!(
            auth.authorize(&space, Some("alice"), None, NOW),
            Err(AuthError::MissingToken)
        );
        let narrow = sign(&claims(r#","spaces":["doc-2","x*"]"#), SECRET);
        assert_eq!(
            auth.authorize(&space, None, Some(&narrow), NOW),
            Err(AuthError::SpaceNotAdmitted)
        );
        let no_sub = sign(&format!(r#"{{"exp":{}}}"#, NOW.0 / 1000 + 9), SECRET);
        assert_eq!(
            auth.authorize(&space, None, Some(&no_sub), NOW),
            Err(AuthError::BadSubject)
        );
        let off = Auth::off();
        assert_eq!(
            off.authorize(&space, Some("x"), Some("garbage"), NOW),
            Ok(Some("x".into()))
        );
        assert!(!Auth::hs256(Some(b""), None).is_on());
        assert!(!format!("{auth:?}").contains("s3cret"));
    }
}
