//! Which space a plain HTTP request on `/{space}` names, and whether a
//! roster `GET` without the admin token may see it: the join's rules, so
//! that every target refuses the same requests with the same answers.

use super::auth::Access;
use super::error::ApiError;
use crate::roster_view::roster_token;
use crate::time::UnixMillis;
use crate::token::Auth;
use crate::SpaceName;

/// The space named by `path`, checked as a join's is; a bad one is a 400
/// with the join's error text.
pub fn request_space(path: &str) -> Result<SpaceName, ApiError> {
    SpaceName::from_path(path).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A roster `GET` with [`Access::JoinRules`] needs what a join into
/// `space` needs (`?token=` when `AUTH_SECRET` is set); with the admin
/// token it needs nothing more.
pub fn admit_roster(
    access: Access,
    auth: &Auth,
    space: &SpaceName,
    query: Option<&str>,
    now: UnixMillis,
) -> Result<(), ApiError> {
    if access == Access::Admin {
        return Ok(());
    }
    let token = roster_token(query);
    auth.authorize(space, None, token.as_deref(), now)
        .map(|_| ())
        .map_err(|e| ApiError::NotAdmitted(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_space_is_a_400_with_the_joins_text() {
        let e = request_space("/").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            crate::ServerMessage::Error(crate::join::JoinError::MissingSpace.to_string())
                .encode()
                .to_string()
        );
        assert_eq!(request_space("/a%2Fb").unwrap().as_str(), "a/b");
    }

    #[test]
    fn join_rules_need_a_token_when_auth_is_on_the_admin_does_not() {
        let space = request_space("/room").unwrap();
        let on = Auth::hs256(Some(b"secret"), None);
        let e = admit_roster(Access::JoinRules, &on, &space, None, UnixMillis(0)).unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(e.to_string().starts_with("Unauthorized: "), "{e}");
        assert_eq!(
            admit_roster(Access::Admin, &on, &space, None, UnixMillis(0)),
            Ok(())
        );
        let off = Auth::off();
        assert_eq!(
            admit_roster(Access::JoinRules, &off, &space, None, UnixMillis(0)),
            Ok(())
        );
    }
}
