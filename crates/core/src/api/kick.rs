//! What a kick does to a whole space (the in-process targets): the leases
//! it names end now, with `removed` (the sockets get `Removed` and close
//! 4003, everyone else a leave), and the answer counts them.

use super::request::KickTarget;
use crate::roster::{LeaveCause, RosterEvent};
use crate::space::{Space, Step};
use crate::time::UnixMillis;

/// Removes the leases `target` names from `space`; returns what to carry
/// out and how many leases ended (`{"removed":N}`).
pub fn kick(space: &mut Space, target: &KickTarget, now: UnixMillis) -> (Step, usize) {
    let step = match target {
        KickTarget::Client(id) => space.remove_client(id, now),
        KickTarget::Identity(identity) => space.remove_identity(identity, now),
    };
    (step.clone(), removed(&step))
}

/// The leases a step ended by removal.
pub fn removed(step: &Step) -> usize {
    step.events
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                RosterEvent::Left {
                    cause: LeaveCause::Removed,
                    ..
                }
            )
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientId, ConnId, JoinRequest, Output, SpaceConfig};

    const REMOVED: &str = r#"{"error":"Removed"}"#;

    fn join(space: &mut Space, conn: u64, identity: &str, id: &str) {
        let q = format!("identity={identity}&id={id}");
        let request = JoinRequest::parse("/s", Some(&q)).unwrap();
        space.join(ConnId(conn), &request, || unreachable!(), UnixMillis(1));
    }

    fn texts(step: &Step, conn: u64) -> Vec<String> {
        step.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send { conn: c, text } if c.0 == conn => Some(text.to_string()),
                Output::Close { conn: c, code } if c.0 == conn => {
                    Some(format!("close {}", code.code()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_kick_by_identity_ends_every_lease_of_it_and_counts_them() {
        let mut space = Space::new(SpaceConfig::default());
        join(&mut space, 1, "ann", "a1");
        join(&mut space, 2, "ann", "a2");
        join(&mut space, 3, "bob", "b1");
        let target = KickTarget::Identity("ann".into());
        let (step, n) = kick(&mut space, &target, UnixMillis(2));
        assert_eq!(n, 2);
        assert_eq!(texts(&step, 1), [REMOVED.to_owned(), "close 4003".into()]);
        // The second tab saw the first one go before it went itself.
        let tab = texts(&step, 2);
        assert!(tab[0].contains(r#""id":"a1""#), "{tab:?}");
        assert_eq!(tab[1..], [REMOVED.to_owned(), "close 4003".into()]);
        let bob = texts(&step, 3);
        assert_eq!(bob.len(), 2, "{bob:?}");
        assert!(bob
            .iter()
            .all(|t| t.contains("remote leave") && t.contains(r#""reason":"removed""#)));
        // Nobody is left to remove; bob stays.
        assert_eq!(kick(&mut space, &target, UnixMillis(3)).1, 0);
        assert_eq!(space.roster().leases().count(), 1);
    }

    #[test]
    fn a_kick_by_id_ends_that_lease_only() {
        let mut space = Space::new(SpaceConfig::default());
        join(&mut space, 1, "ann", "a1");
        join(&mut space, 2, "ann", "a2");
        let target = KickTarget::Client(ClientId::parse("a2").unwrap());
        let (step, n) = kick(&mut space, &target, UnixMillis(2));
        assert_eq!(n, 1);
        assert_eq!(texts(&step, 2), [REMOVED.to_owned(), "close 4003".into()]);
        let missing = KickTarget::Client(ClientId::parse("zz").unwrap());
        assert_eq!(kick(&mut space, &missing, UnixMillis(3)).1, 0);
    }
}
