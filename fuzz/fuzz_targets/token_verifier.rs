//! The token verifier on arbitrary text, and on validly signed tokens with
//! arbitrary claims: never a panic; a forged token never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhouse_core::token::{sign, verify};
use longhouse_core::UnixMillis;

const SECRET: &[u8] = b"fuzz-secret";
const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Arbitrary text as a token: it was not signed with SECRET, so it can
    // only verify if it is a genuinely signed one (astronomically unlikely).
    let _ = verify(&text, &[SECRET, b""], NOW);
    // Arbitrary claims, correctly signed: the claim checks must hold up.
    let token = sign(&text, SECRET);
    if let Ok(claims) = verify(&token, &[SECRET], NOW) {
        assert!(claims.exp.is_some());
    }
    assert!(verify(&token, &[b"other"], NOW).is_err());
});
