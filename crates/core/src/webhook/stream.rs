//! Member events as a shared store keeps them: one stream entry per event,
//! written by the script that changed the roster (fields `t` type, `a`
//! when in ms, `e` the space's history, `i` identity, `r` reason), read
//! back into [`WebhookEvent`]s by whichever instance delivers them.

use super::event::{EventType, WebhookEvent};
use crate::time::UnixMillis;

/// The event of stream entry `entry_id` of `space`'s stream. Its `id` is
/// the history's epoch and the entry's id, unique across spaces and
/// histories. `None` for an entry this version cannot read.
pub fn from_stream_entry(
    space: &str,
    entry_id: &str,
    fields: &[(String, String)],
) -> Option<WebhookEvent> {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let kind = EventType::parse(&get("t")?)?;
    let at = UnixMillis(get("a")?.parse().ok()?);
    let epoch = get("e")?;
    Some(WebhookEvent {
        id: format!("{epoch}-{entry_id}"),
        kind,
        space: space.to_owned(),
        identity: get("i"),
        reason: get("r"),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_what_the_scripts_write() {
        let e = from_stream_entry(
            "room",
            "1700000000000-0",
            &fields(&[
                ("t", "member.left"),
                ("a", "1700000000000"),
                ("e", "00ab"),
                ("i", "ann"),
                ("r", "expired"),
            ]),
        )
        .unwrap();
        assert_eq!(e.id, "00ab-1700000000000-0");
        assert_eq!(e.kind, EventType::MemberLeft);
        assert_eq!(e.identity.as_deref(), Some("ann"));
        assert_eq!(e.reason.as_deref(), Some("expired"));
        assert_eq!(e.at, UnixMillis(1_700_000_000_000));
        let occupied = from_stream_entry(
            "room",
            "1-1",
            &fields(&[("t", "space.occupied"), ("a", "5"), ("e", "00ab")]),
        )
        .unwrap();
        assert_eq!((occupied.identity, occupied.reason), (None, None));
        assert_eq!(
            from_stream_entry(
                "room",
                "1-2",
                &fields(&[("t", "member.renamed"), ("a", "5"), ("e", "x")])
            ),
            None
        );
        assert_eq!(
            from_stream_entry("room", "1-2", &fields(&[("t", "space.vacated")])),
            None
        );
    }
}
