//! The roster as a plain HTTP request sees it (`GET /{space}` with
//! `Accept: application/json`): who is present, without a socket.

use serde::Serialize;

use crate::join::SpaceName;
use crate::wire::ClientInfo;

#[derive(Serialize)]
struct RosterDocument<'a> {
    space: &'a str,
    clients: &'a [ClientInfo],
}

/// `{"space":"…","clients":[…]}`, the clients in welcome order (by
/// `joinedAt`, then id) and shaped as in the welcome.
pub fn roster_json(space: &SpaceName, clients: impl IntoIterator<Item = ClientInfo>) -> String {
    let mut clients: Vec<ClientInfo> = clients.into_iter().collect();
    clients.sort_by(|a, b| (a.joined_at, &a.id).cmp(&(b.joined_at, &b.id)));
    clients.dedup_by(|a, b| a.id == b.id);
    serde_json::to_string(&RosterDocument {
        space: space.as_str(),
        clients: &clients,
    })
    .expect("rosters serialize")
}

/// The `token` parameter of a roster request's query, read as a join's
/// (the first non-empty one wins).
pub fn roster_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, value)| key == "token" && !value.is_empty())
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientId, UnixMillis};

    fn client(id: &str, identity: &str, at: u64) -> ClientInfo {
        ClientInfo::new(ClientId::parse(id).unwrap(), identity, UnixMillis(at))
    }

    #[test]
    fn sorted_by_join_time_and_shaped_like_the_welcome() {
        let space = SpaceName::from_path("/team%2F42").unwrap();
        let json = roster_json(
            &space,
            [client("b", "bob", 2_000), client("a", "ann|1", 1_000)],
        );
        assert_eq!(
            json,
            r#"{"space":"team/42","clients":[{"id":"a","identity":"ann|1","joinedAt":"1970-01-01T00:00:01.000Z"},{"id":"b","identity":"bob","joinedAt":"1970-01-01T00:00:02.000Z"}]}"#
        );
        assert_eq!(
            roster_json(&space, []),
            r#"{"space":"team/42","clients":[]}"#
        );
    }

    #[test]
    fn token_is_the_first_non_empty() {
        assert_eq!(
            roster_token(Some("token=&token=a%2Bb&token=c")).as_deref(),
            Some("a+b")
        );
        assert_eq!(roster_token(Some("identity=x")), None);
        assert_eq!(roster_token(None), None);
    }

    #[test]
    fn from_path_decodes_like_a_join() {
        assert_eq!(SpaceName::from_path("/a+b").unwrap().as_str(), "a+b");
        assert!(SpaceName::from_path("/").is_err());
        assert!(SpaceName::from_path("/bad%zz").is_err());
    }
}
