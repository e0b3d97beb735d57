//! One webhook event, shaped as section 14 shows it, and the body of a
//! batch of them.

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// What happened to a member or a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// The identity's first lease in the space began.
    #[serde(rename = "member.joined")]
    MemberJoined,
    /// The identity's last lease in the space ended.
    #[serde(rename = "member.left")]
    MemberLeft,
    /// The space's first lease began.
    #[serde(rename = "space.occupied")]
    SpaceOccupied,
    /// The space's last lease ended.
    #[serde(rename = "space.vacated")]
    SpaceVacated,
}

impl EventType {
    /// The wire name (`member.joined`, …), for logs and stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MemberJoined => "member.joined",
            EventType::MemberLeft => "member.left",
            EventType::SpaceOccupied => "space.occupied",
            EventType::SpaceVacated => "space.vacated",
        }
    }

    /// The type of a wire name; `None` for anything else (a record written
    /// by a newer version).
    pub fn parse(s: &str) -> Option<Self> {
        [
            EventType::MemberJoined,
            EventType::MemberLeft,
            EventType::SpaceOccupied,
            EventType::SpaceVacated,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One event: `{"id","type","space","identity"?,"reason"?,"at"}`.
/// Receivers dedupe by `id`, so a retried batch carries the same ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// Unique; the target makes it (a UUID, a stream entry's id).
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The space, decoded.
    pub space: String,
    /// The member; absent for `space.*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why the member left (section 12); only on `member.left`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the roster changed, RFC 3339 with milliseconds.
    #[serde(serialize_with = "rfc3339")]
    pub at: UnixMillis,
}

fn rfc3339<S: serde::Serializer>(at: &UnixMillis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

#[derive(Serialize)]
struct Batch<'a> {
    events: &'a [WebhookEvent],
}

/// `{"events":[…]}`: the body of one POST.
pub fn batch_body(events: &[WebhookEvent]) -> String {
    serde_json::to_string(&Batch { events }).expect("webhook events serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_shaped_as_section_14_shows() {
        let left = WebhookEvent {
            id: "e1".into(),
            kind: EventType::MemberLeft,
            space: "team/42".into(),
            identity: Some("ann|1".into()),
            reason: Some("expired".into()),
            at: UnixMillis(1_433_538_566_480),
        };
        let vacated = WebhookEvent {
            id: "e2".into(),
            kind: EventType::SpaceVacated,
            space: "team/42".into(),
            identity: None,
            reason: None,
            at: UnixMillis(1_433_538_566_480),
        };
        assert_eq!(
            batch_body(&[left, vacated]),
            r#"{"events":[{"id":"e1","type":"member.left","space":"team/42","identity":"ann|1","reason":"expired","at":"2015-06-05T21:09:26.480Z"},{"id":"e2","type":"space.vacated","space":"team/42","at":"2015-06-05T21:09:26.480Z"}]}"#
        );
        assert_eq!(batch_body(&[]), r#"{"events":[]}"#);
    }

    #[test]
    fn type_names_round_trip() {
        for t in [
            EventType::MemberJoined,
            EventType::MemberLeft,
            EventType::SpaceOccupied,
            EventType::SpaceVacated,
        ] {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert_eq!(EventType::parse("member.updated"), None);
    }
}
