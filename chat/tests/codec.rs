//! Decoder behaviour beyond the vectors: leniency that is deliberate, limits, and the
//! error replies a server sends.

use relaywire_chat::{ClientMessage, ServerMessage, decode_client_message, decode_server_message};
use relaywire_protocol::{DecodeErrorKind, ErrorCode, Limits, Messages, Ping, encode};

#[test]
fn missing_or_null_payload_counts_as_empty() {
    for text in [r#"{"type":"ping"}"#, r#"{"type":"ping","payload":null}"#] {
        let envelope = decode_client_message(text, &Limits::default()).unwrap();
        assert_eq!(envelope.message, ClientMessage::Ping(Ping {}));
    }
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    let text = r#"{"type":"chat:join","v":2,"payload":{"chatId":"general","extra":[1,2]}}"#;
    let envelope = decode_client_message(text, &Limits::default()).unwrap();
    assert_eq!(envelope.message.type_name(), "chat:join");

    let text = r#"{"type":"user:online","payload":{"userId":"u","online":true,"since":"x"}}"#;
    assert!(matches!(
        decode_server_message(text).unwrap(),
        ServerMessage::UserOnline(_)
    ));
}

#[test]
fn limits_are_configurable() {
    let limits = Limits {
        max_message_bytes: 128,
        max_content_chars: 3,
        max_id_bytes: 4,
    };
    let text = r#"{"type":"chat:message","payload":{"chatId":"c","content":"abcd"}}"#;
    let err = decode_client_message(text, &limits).unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::ContentTooLong { len: 4, limit: 3 }
    );
    let err = decode_client_message(&format!("{text}{}", " ".repeat(128)), &limits).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MessageTooLarge);
    let text = r#"{"type":"chat:join","payload":{"chatId":"abcde"}}"#;
    let err = decode_client_message(text, &limits).unwrap_err();
    assert!(matches!(
        err.kind(),
        DecodeErrorKind::IdTooLong {
            field: "chatId",
            ..
        }
    ));
}

#[test]
fn content_limit_counts_characters_not_bytes() {
    let content = "é".repeat(4_000);
    let text =
        format!(r#"{{"type":"chat:message","payload":{{"chatId":"c","content":"{content}"}}}}"#);
    assert!(decode_client_message(&text, &Limits::default()).is_ok());
}

#[test]
fn unknown_type_in_error_is_cut_to_the_id_limit() {
    let long_type = "x".repeat(5_000);
    let text = format!(r#"{{"type":"{long_type}","payload":{{}}}}"#);
    let err = decode_client_message(&text, &Limits::default()).unwrap_err();
    let DecodeErrorKind::UnknownType { type_name } = err.kind() else {
        panic!("{err:?}");
    };
    assert_eq!(type_name.len(), Limits::default().max_id_bytes);
}

#[test]
fn the_error_reply_is_a_valid_server_message() {
    let err = decode_client_message(
        r#"{"type":"chat:typing","id":"t1","payload":{"chatId":"c"}}"#,
        &Limits::default(),
    )
    .unwrap_err();
    let reply = encode(&ServerMessage::Error(err.to_error_payload())).unwrap();
    let ServerMessage::Error(decoded) = decode_server_message(&reply).unwrap() else {
        panic!("{reply}");
    };
    assert_eq!(decoded.code, ErrorCode::ValidationError);
    assert_eq!(decoded.id.as_deref(), Some("t1"));
    assert!(decoded.message.contains("isTyping"), "{}", decoded.message);
}

#[test]
fn deeply_nested_json_never_overflows_the_stack() {
    let depth = 100_000;
    let text = format!(
        r#"{{"type":"chat:message","payload":{{"chatId":"c","content":"x","extra":{}{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let limits = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    // An unknown field is skipped without recursion, however deep.
    assert!(decode_client_message(&text, &limits).is_ok());
    // Kept JSON stops at serde_json's depth limit.
    let server = format!(
        r#"{{"type":"newer","payload":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(decode_server_message(&server).is_err());
}
