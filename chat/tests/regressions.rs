//! Every input in `tests/vectors/regressions/` goes through both decoders: no panic,
//! every failure has a code, and whatever decodes encodes back to itself.

use std::path::PathBuf;

use relaywire_chat::{decode_client_message, decode_server_message};
use relaywire_protocol::{Limits, encode};

fn inputs() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/regressions");
    let mut inputs: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().is_some_and(|name| name != "README.md"))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no regression inputs");
    inputs
}

#[test]
fn regression_inputs_decode_or_fail_with_a_code() {
    for (name, text) in inputs() {
        match decode_client_message(&text, &Limits::default()) {
            Ok(envelope) => {
                let again = encode(&envelope).unwrap();
                let unlimited = Limits {
                    max_message_bytes: usize::MAX,
                    ..Limits::default()
                };
                assert_eq!(
                    decode_client_message(&again, &unlimited).unwrap(),
                    envelope,
                    "{name}"
                );
            }
            Err(err) => assert!(!err.to_error_payload().message.is_empty(), "{name}"),
        }
        if let Ok(message) = decode_server_message(&text) {
            assert_eq!(
                decode_server_message(&encode(&message).unwrap()).unwrap(),
                message,
                "{name}"
            );
        }
    }
}
