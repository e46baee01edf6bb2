//! Conformance vectors in `tests/vectors/`: every valid frame decodes to its variant
//! and re-encodes to equal JSON; every invalid frame fails with its error code.

use std::path::PathBuf;

use relaywire_chat::{
    ClientEnvelope, ClientMessage, ServerMessage, decode_client_message, decode_server_message,
};
use relaywire_protocol::{ClientMessages, DecodeError, Limits, Messages, encode};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Valid {
    name: String,
    #[serde(default)]
    newer: bool,
    frame: Value,
}

#[derive(Deserialize)]
struct Invalid {
    name: String,
    text: String,
    code: String,
    kind: String,
    #[serde(default)]
    id: Option<String>,
}

fn load<T: for<'de> Deserialize<'de>>(file: &str) -> Vec<T> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vectors: Vec<T> = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert!(!vectors.is_empty(), "{file} holds no vectors");
    vectors
}

fn kind_name(err: &DecodeError) -> String {
    format!("{:?}", err.kind())
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

#[test]
fn valid_client_frames_decode_and_re_encode_to_equal_json() {
    let mut seen = std::collections::BTreeSet::new();
    for vector in load::<Valid>("client-valid.json") {
        let text = vector.frame.to_string();
        let envelope = decode_client_message(&text, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(
            envelope.message.type_name(),
            vector.frame["type"],
            "{}",
            vector.name
        );
        assert_eq!(
            envelope.id.as_deref(),
            vector.frame["id"].as_str(),
            "{}",
            vector.name
        );
        let again: Value = serde_json::from_str(&encode(&envelope).unwrap()).unwrap();
        assert_eq!(again, vector.frame, "{}", vector.name);

        // The serde impl accepts what the decoder accepts.
        let via_serde: ClientEnvelope = serde_json::from_value(vector.frame.clone()).unwrap();
        assert_eq!(via_serde, envelope, "{}", vector.name);
        seen.insert(envelope.message.type_name().to_owned());
    }
    let all: std::collections::BTreeSet<_> =
        ClientMessage::TYPES.iter().map(|t| t.to_string()).collect();
    assert_eq!(seen, all, "every client message type has a valid vector");
}

#[test]
fn valid_server_frames_decode_and_re_encode_to_equal_json() {
    let mut seen = std::collections::BTreeSet::new();
    for vector in load::<Valid>("server-valid.json") {
        let text = vector.frame.to_string();
        let message =
            decode_server_message(&text).unwrap_or_else(|e| panic!("{}: {e}", vector.name));
        assert_eq!(message.type_name(), vector.frame["type"], "{}", vector.name);
        let is_unknown = matches!(message, ServerMessage::Unknown(_));
        let type_is_known = ServerMessage::TYPES.contains(&message.type_name());
        assert_eq!(is_unknown, !type_is_known, "{}", vector.name);
        if !type_is_known {
            assert!(
                vector.newer,
                "{}: unknown types must be marked newer",
                vector.name
            );
        }
        let again: Value = serde_json::from_str(&encode(&message).unwrap()).unwrap();
        assert_eq!(again, vector.frame, "{}", vector.name);

        let via_serde: ServerMessage = serde_json::from_value(vector.frame.clone()).unwrap();
        assert_eq!(via_serde, message, "{}", vector.name);
        seen.insert(message.type_name().to_owned());
    }
    for known in ServerMessage::TYPES {
        assert!(
            seen.contains(*known),
            "no valid vector for server `{known}`"
        );
    }
}

#[test]
fn invalid_client_frames_fail_with_their_code() {
    for vector in load::<Invalid>("client-invalid.json") {
        let err = decode_client_message(&vector.text, &Limits::default())
            .err()
            .unwrap_or_else(|| panic!("{} decoded", vector.name));
        assert_eq!(err.code().as_str(), vector.code, "{}: {err}", vector.name);
        assert_eq!(kind_name(&err), vector.kind, "{}: {err}", vector.name);
        assert_eq!(err.id(), vector.id.as_deref(), "{}", vector.name);

        let reply = err.to_error_payload();
        assert_eq!(reply.code.as_str(), vector.code);
        assert_eq!(reply.id, vector.id);
        assert!(!reply.message.is_empty());
    }
}

#[test]
fn invalid_server_frames_fail_with_their_code() {
    for vector in load::<Invalid>("server-invalid.json") {
        let err = decode_server_message(&vector.text)
            .err()
            .unwrap_or_else(|| panic!("{} decoded", vector.name));
        assert_eq!(err.code().as_str(), vector.code, "{}: {err}", vector.name);
        assert_eq!(kind_name(&err), vector.kind, "{}: {err}", vector.name);
    }
}

#[derive(Deserialize)]
struct Encoding {
    side: String,
    name: String,
    encoded: String,
}

/// `tests/vectors/encodings.json` holds, for every valid vector, the exact text the
/// encoder wrote before the chat messages became a catalogue of their own: the wire
/// form may not move by one byte.
#[test]
fn every_valid_frame_encodes_byte_for_byte_as_before() {
    let valid: Vec<(String, Valid)> = load::<Valid>("client-valid.json")
        .into_iter()
        .map(|vector| ("client".to_owned(), vector))
        .chain(
            load::<Valid>("server-valid.json")
                .into_iter()
                .map(|vector| ("server".to_owned(), vector)),
        )
        .collect();
    let encodings = load::<Encoding>("encodings.json");
    assert_eq!(
        encodings.len(),
        valid.len(),
        "one encoding per valid vector"
    );
    let unlimited = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    for ((side, vector), expected) in valid.iter().zip(&encodings) {
        assert_eq!((side, &vector.name), (&expected.side, &expected.name));
        let text = vector.frame.to_string();
        let encoded = if side == "client" {
            encode(&decode_client_message(&text, &unlimited).unwrap())
        } else {
            encode(&decode_server_message(&text).unwrap())
        }
        .unwrap();
        assert_eq!(encoded, expected.encoded, "{}", vector.name);
    }
}

/// Protocol 3's vectors: batches and the copies that carry an acknowledgement.
#[derive(Deserialize)]
struct Batches {
    valid: Vec<ValidBatch>,
    invalid: Vec<Invalid>,
    element_errors: Vec<ElementErrors>,
    answering: Vec<Answering>,
}

#[derive(Deserialize)]
struct ValidBatch {
    name: String,
    text: String,
    messages: Vec<String>,
}

#[derive(Deserialize)]
struct ElementErrors {
    name: String,
    text: String,
    codes: Vec<Option<String>>,
}

#[derive(Deserialize)]
struct Answering {
    name: String,
    frame: String,
    ack: relaywire_protocol::Ack,
    encoded: String,
}

fn batches() -> Batches {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/batches.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("batches.json: {e}"))
}

#[test]
fn batches_split_into_their_messages_in_order() {
    let limits = Limits::default();
    for vector in batches().valid {
        let types: Vec<String> = relaywire_protocol::split_batch(&vector.text, &limits)
            .unwrap_or_else(|err| panic!("{}: {err}", vector.name))
            .into_iter()
            .map(|text| {
                let envelope: ClientEnvelope = decode_client_message(text, &limits)
                    .unwrap_or_else(|err| panic!("{}: {err}", vector.name));
                envelope.message.type_name().to_owned()
            })
            .collect();
        assert_eq!(types, vector.messages, "{}", vector.name);
    }
}

#[test]
fn batches_that_are_no_batch_fail_with_their_code() {
    let limits = Limits::default();
    for vector in batches().invalid {
        let err = relaywire_protocol::split_batch(&vector.text, &limits).expect_err(&vector.name);
        assert_eq!(err.code().as_str(), vector.code, "{}", vector.name);
        assert_eq!(kind_name(&err), vector.kind, "{}", vector.name);
    }
    for vector in batches().element_errors {
        let codes: Vec<Option<String>> = relaywire_protocol::split_batch(&vector.text, &limits)
            .unwrap_or_else(|err| panic!("{}: {err}", vector.name))
            .into_iter()
            .map(|text| {
                decode_client_message(text, &limits)
                    .err()
                    .map(|err| err.code().as_str().to_owned())
            })
            .collect();
        assert_eq!(codes, vector.codes, "{}", vector.name);
    }
}

#[test]
fn the_senders_copy_carries_its_acknowledgement_and_still_decodes() {
    for vector in batches().answering {
        let encoded = relaywire_protocol::with_ack(&vector.frame, &vector.ack);
        assert_eq!(encoded, vector.encoded, "{}", vector.name);
        // A client that knows nothing of it reads the same message.
        let plain: ServerMessage = decode_server_message(&vector.frame).expect("the frame");
        let answering: ServerMessage = decode_server_message(&encoded).expect("the copy");
        assert_eq!(plain, answering, "{}", vector.name);
        let value: Value = serde_json::from_str(&encoded).expect("JSON");
        assert_eq!(
            value["ack"],
            serde_json::to_value(&vector.ack).expect("an ack"),
            "{}",
            vector.name
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_offers: Vec<String>,
    wires: Vec<WireVector>,
    openings: Vec<Opening>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireVector {
    subprotocol: Option<String>,
    version: u32,
    batches: bool,
    answers_in_copies: bool,
    client_opens: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Opening {
    name: String,
    version: u32,
    client: Vec<String>,
    /// What a server that waits for the client (API Gateway) answers, in order; `None`
    /// where the client does not open.
    waiting_server: Option<Vec<String>>,
}

fn versions() -> Versions {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/versions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("versions.json: {e}"))
}

#[test]
fn each_version_changes_what_its_vector_says() {
    let versions = versions();
    assert_eq!(
        versions.client_offers,
        relaywire_protocol::CLIENT_SUBPROTOCOLS
    );
    for vector in versions.wires {
        let wire = relaywire_protocol::Wire::negotiated(vector.subprotocol.as_deref());
        let name = vector.subprotocol.as_deref().unwrap_or("none");
        assert_eq!(wire.version(), vector.version, "{name}");
        assert_eq!(wire.batches(), vector.batches, "{name}");
        assert_eq!(wire.answers_in_copies(), vector.answers_in_copies, "{name}");
        assert_eq!(wire.client_opens(), vector.client_opens, "{name}");
    }
}

#[test]
fn openings_are_control_messages_and_only_opening_versions_have_them() {
    let limits = Limits::default();
    for opening in versions().openings {
        let wire = relaywire_protocol::Wire::new(opening.version);
        assert_eq!(
            wire.client_opens(),
            !opening.client.is_empty(),
            "{}",
            opening.name
        );
        assert_eq!(
            wire.client_opens(),
            opening.waiting_server.is_some(),
            "{}",
            opening.name
        );
        for frame in &opening.client {
            let envelope: ClientEnvelope = decode_client_message(frame, &limits)
                .unwrap_or_else(|err| panic!("{}: {err}", opening.name));
            assert!(envelope.message.control().is_some(), "{}", opening.name);
        }
        for kind in opening.waiting_server.iter().flatten() {
            assert!(
                relaywire_protocol::control::SERVER_CONTROL_TYPES.contains(&kind.as_str()),
                "{}: {kind}",
                opening.name
            );
        }
    }
}
