//! Section 13 on one hub fed by a shared store's channel: a relayed
//! message (broadcast, cursor) is shown only once the hub has applied the
//! space's history as far as it stood when the message was published, so
//! nobody gets a message from someone it has not seen join; never to the
//! sender, never from someone who left.

use std::sync::Arc;

use longhouse_core::{
    ClientId, ClientInfo, ConnId, Hub, Output, RosterEvent, Sequenced, UnixMillis,
};

fn client(id: &str) -> ClientInfo {
    ClientInfo::new(ClientId::parse(id).unwrap(), id, UnixMillis(1_000))
}

fn joined(seq: u64, id: &str, holder: u64) -> Sequenced {
    Sequenced {
        seq,
        event: RosterEvent::Joined {
            client: client(id),
            holder: ConnId(holder),
        },
    }
}

fn sends(out: &[Output]) -> Vec<(u64, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn, text } => Some((conn.0, text.to_string())),
            Output::Close { .. } => None,
        })
        .collect()
}

/// A hub with sockets 1 (`a`) and 2 (`b`) welcomed, at sequence 2.
fn hub() -> Hub {
    let mut hub = Hub::new(4096, 0);
    let mut out = Vec::new();
    hub.open(ConnId(1), ClientId::parse("a").unwrap());
    hub.open(ConnId(2), ClientId::parse("b").unwrap());
    hub.apply(joined(1, "a", 1), &mut out);
    hub.apply(joined(2, "b", 2), &mut out);
    hub
}

const TEXT: &str = r#"{"event":"broadcast","from":"c","data":1}"#;

#[test]
fn a_relay_ahead_of_the_view_waits_for_its_senders_join() {
    let mut hub = hub();
    let mut out = Vec::new();
    // `c` joined elsewhere at 3 and broadcast right away; its join is late.
    hub.relayed(3, ClientId::parse("c").ok(), Arc::from(TEXT), &mut out);
    assert!(out.is_empty(), "shown before c's join: {out:?}");
    hub.apply(joined(3, "c", 9), &mut out);
    let got = sends(&out);
    assert_eq!(got.len(), 4, "{got:?}");
    // The joins first, then the message, to both.
    assert!(got[..2].iter().all(|(_, t)| t.contains("remote join")));
    let mut relayed = got[2..].to_vec();
    relayed.sort();
    assert_eq!(relayed, vec![(1, TEXT.to_owned()), (2, TEXT.to_owned())]);
}

#[test]
fn a_relay_is_never_shown_to_its_sender_nor_from_someone_gone() {
    let mut hub = hub();
    let mut out = Vec::new();
    hub.relayed(2, ClientId::parse("a").ok(), Arc::from(TEXT), &mut out);
    assert_eq!(sends(&out), vec![(2, TEXT.to_owned())], "not to a itself");
    out.clear();
    hub.relayed(2, ClientId::parse("nobody").ok(), Arc::from(TEXT), &mut out);
    assert!(out.is_empty(), "from someone not in view: {out:?}");
    // The server API's (`from: None`) reach everyone.
    hub.relayed(0, None, Arc::from(TEXT), &mut out);
    let mut got: Vec<u64> = sends(&out).into_iter().map(|(c, _)| c).collect();
    got.sort();
    assert_eq!(got, vec![1, 2]);
}

#[test]
fn a_resync_past_a_held_relay_releases_it() {
    let mut hub = hub();
    let mut out = Vec::new();
    hub.relayed(5, ClientId::parse("a").ok(), Arc::from(TEXT), &mut out);
    assert!(out.is_empty());
    let snapshot = vec![(client("a"), ConnId(1)), (client("b"), ConnId(2))];
    hub.resync(snapshot, 6, &mut out);
    assert_eq!(sends(&out), vec![(2, TEXT.to_owned())]);
}
