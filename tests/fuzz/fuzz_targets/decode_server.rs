//! Any bytes into the client-side decoder: it never panics, and whatever it accepts,
//! unknown message types included, encodes and decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaywire_chat::decode_server_message;
use relaywire_protocol::encode;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = decode_server_message(text) {
        let again = encode(&message).expect("a decoded message encodes");
        assert_eq!(
            decode_server_message(&again).expect("what encodes decodes"),
            message
        );
    }
});
