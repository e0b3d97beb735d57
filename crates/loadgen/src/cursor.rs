//! The presence state the storms send: what a live-cursor app keeps per
//! user (a name, a colour, a pointer position), plus the sender's number and
//! a sequence so that receivers can tell which update they are seeing.

use serde::Deserialize;

/// Client `n`'s state number `seq` (0 is the one it joins with), about 90
/// bytes of JSON.
pub fn state(n: u64, seq: u32) -> String {
    let x = (n * 37 + u64::from(seq) * 7) % 1280;
    let y = (n * 53 + u64::from(seq) * 5) % 720;
    let color = (n.wrapping_mul(0x9e37_79b9) >> 8) & 0xff_ffff;
    format!(
        r##"{{"name":"user{n}","color":"#{color:06x}","cursor":{{"x":{x},"y":{y}}},"n":{n},"seq":{seq}}}"##
    )
}

#[derive(Deserialize)]
struct Probe {
    n: u32,
    seq: u32,
}

/// The sender and sequence of a state sent by [`state`], if it is one.
pub fn probe(state: &str) -> Option<(u32, u32)> {
    let p: Probe = serde_json::from_str(state).ok()?;
    Some((p.n, p.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_an_object_that_probes_back_to_its_sender_and_sequence() {
        let s = state(17, 42);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert!(v.is_object());
        assert_eq!(v["name"], "user17");
        assert_eq!(probe(&s), Some((17, 42)));
        assert!(s.len() > 60 && s.len() < 120, "{} bytes", s.len());
        assert_ne!(state(17, 42), state(17, 43));
        assert_eq!(probe(r#"{"x":1}"#), None);
    }
}
