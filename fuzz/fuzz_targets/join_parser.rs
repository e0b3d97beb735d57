//! The join parser on arbitrary paths and query strings, with auth off and
//! on: it must never panic, and what it accepts must be within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhouse_core::{Auth, JoinRequest, UnixMillis, MAX_IDENTITY_CHARS, MAX_SPACE_CHARS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    let auth = Auth::hs256(Some(b"fuzz-secret"), None);
    for policy in [Auth::off(), auth] {
        if let Ok(j) = JoinRequest::parse_with(path, query, &policy, UnixMillis(1_800_000_000_000)) {
            let n = j.space.as_str().chars().count();
            assert!((1..=MAX_SPACE_CHARS).contains(&n));
            let n = j.identity.chars().count();
            assert!((1..=MAX_IDENTITY_CHARS).contains(&n));
            assert!(!j.identity.chars().any(char::is_control));
        }
    }
});
