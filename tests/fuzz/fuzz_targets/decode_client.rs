//! Any bytes into the server-side decoder: it never panics, and whatever it accepts
//! encodes and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaywire_chat::decode_client_message;
use relaywire_protocol::{Limits, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client_message(text, &Limits::default()) {
        Ok(envelope) => {
            let again = encode(&envelope).expect("a decoded message encodes");
            let unlimited = Limits {
                max_message_bytes: usize::MAX,
                ..Limits::default()
            };
            let decoded = decode_client_message(&again, &unlimited).expect("what encodes decodes");
            assert_eq!(decoded, envelope);
        }
        Err(err) => {
            let reply = err.to_error_payload();
            assert!(!reply.message.is_empty());
        }
    }
});
