//! The client message decoder on arbitrary frames: never a panic, and the
//! size limit always holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhouse_core::{decode, Frame, MessageError};

fuzz_target!(|data: &[u8]| {
    for limit in [64, 4096] {
        match decode(Frame::Text(data), limit) {
            // Every accepted message (ping, update, broadcast, cursor) is
            // within the limit.
            Ok(_) => assert!(data.len() <= limit),
            Err(MessageError::TooLarge { .. }) => assert!(data.len() > limit),
            Err(e) => {
                let _ = (e.close_code(), e.has_message(), e.to_string());
            }
        }
    }
});
