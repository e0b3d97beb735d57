//! The client message decoder on arbitrary frames: never a panic, and the
//! size limit always holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use longhouse_core::{decode, ClientMessage, Frame, MessageError};

fuzz_target!(|data: &[u8]| {
    for limit in [64, 4096] {
        match decode(Frame::Text(data), limit) {
            Ok(ClientMessage::Ping) => assert!(data.len() <= limit),
            Err(MessageError::TooLarge { .. }) => assert!(data.len() > limit),
            Err(e) => {
                let _ = (e.close_code(), e.has_message(), e.to_string());
            }
        }
    }
});
