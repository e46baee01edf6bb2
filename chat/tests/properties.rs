//! Property tests: random bytes, random JSON and mutated frames never panic either
//! decoder, and every message that encodes decodes back to itself.

use proptest::prelude::*;
use relaywire_chat::{
    AppEvent, ChatMessage, ClientEnvelope, ClientMessage, JoinChat, LeaveChat, MarkRead,
    MessageCreated, Notification, ReadReceipt, SendMessage, ServerMessage, SetTyping, SystemLevel,
    SystemNotice, TypingIndicator, decode_client_message, decode_server_message,
};
use relaywire_protocol::{
    Ack, Authenticate, Connected, ErrorCode, ErrorPayload, Limits, Messages, Ping, Pong,
    PresenceChange, Seq, encode,
};
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Type names the decoders know, plus arbitrary ones.
fn type_name() -> impl Strategy<Value = String> {
    let known: Vec<String> = ClientMessage::TYPES
        .iter()
        .chain(ServerMessage::TYPES)
        .map(|t| t.to_string())
        .collect();
    prop_oneof![prop::sample::select(known), ".{0,16}"]
}

/// Payloads shaped like real ones, with fields that may be missing or of any type.
fn payload() -> impl Strategy<Value = Value> {
    let field_names = prop::sample::select(vec![
        "chatId",
        "content",
        "messageId",
        "isTyping",
        "token",
        "userId",
        "chatIds",
        "message",
        "code",
        "id",
        "level",
        "name",
        "data",
        "title",
        "body",
        "timestamp",
        "online",
    ]);
    prop_oneof![
        json_value(),
        prop::collection::btree_map(field_names, json_value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
    ]
}

fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_-]{1,40}"
}

fn text() -> impl Strategy<Value = String> {
    "[^\\s]\\PC{0,60}"
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        text().prop_map(|token| Authenticate { token }.into()),
        (id(), text()).prop_map(|(chat_id, content)| SendMessage { chat_id, content }.into()),
        (id(), id()).prop_map(|(chat_id, message_id)| MarkRead {
            chat_id,
            message_id
        }
        .into()),
        (id(), any::<bool>())
            .prop_map(|(chat_id, is_typing)| SetTyping { chat_id, is_typing }.into()),
        id().prop_map(|chat_id| JoinChat { chat_id }.into()),
        id().prop_map(|chat_id| LeaveChat { chat_id }.into()),
        Just(Ping {}.into()),
    ]
}

fn seq() -> impl Strategy<Value = Option<Seq>> {
    prop::option::of((0..=Seq::MAX).prop_map(|n| Seq::new(n).unwrap()))
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let chat_message = (id(), id(), id(), text(), text(), text()).prop_map(
        |(id, chat_id, sender_id, sender_name, content, created_at)| ChatMessage {
            id,
            chat_id,
            sender_id,
            sender_name,
            content,
            created_at,
        },
    );
    let code = prop::sample::select(ErrorCode::ALL.to_vec());
    prop_oneof![
        (
            id(),
            prop::collection::vec(id(), 0..4),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(user_id, chat_ids, heartbeat_interval_ms)| Connected {
                user_id,
                chat_ids,
                heartbeat_interval_ms,
                ..Connected::default()
            }
            .into()),
        (chat_message, seq()).prop_map(|(message, seq)| MessageCreated {
            chat_id: message.chat_id.clone(),
            message,
            seq,
        }
        .into()),
        (id(), id(), id(), text(), seq()).prop_map(
            |(chat_id, message_id, user_id, read_at, seq)| {
                ReadReceipt {
                    chat_id,
                    message_id,
                    user_id,
                    read_at,
                    seq,
                }
                .into()
            }
        ),
        (id(), id(), text(), any::<bool>()).prop_map(|(chat_id, user_id, user_name, is_typing)| {
            TypingIndicator {
                chat_id,
                user_id,
                user_name,
                is_typing,
            }
            .into()
        }),
        (id(), any::<bool>())
            .prop_map(|(user_id, online)| PresenceChange { user_id, online }.into()),
        text().prop_map(|timestamp| Pong { timestamp }.into()),
        (text(), text(), prop::option::of(json_value()))
            .prop_filter("null data is absent data", |(_, _, d)| d
                != &Some(Value::Null))
            .prop_map(|(title, body, data)| Notification { title, body, data }.into()),
        (
            text(),
            prop::sample::select(vec![
                SystemLevel::Info,
                SystemLevel::Warning,
                SystemLevel::Error
            ])
        )
            .prop_map(|(message, level)| SystemNotice { message, level }.into()),
        (text(), json_value()).prop_map(|(name, data)| AppEvent { name, data }.into()),
        (id(), prop::option::of(id())).prop_map(|(id, message_id)| Ack { id, message_id }.into()),
        (code, text(), prop::option::of(id())).prop_map(|(code, message, id)| {
            ErrorPayload::new(code, message).answering(id).into()
        }),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_message(&text, &Limits::default());
        let _ = decode_server_message(&text);
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        let text = value.to_string();
        let _ = decode_client_message(&text, &Limits::default());
        let _ = decode_server_message(&text);
    }

    #[test]
    fn random_envelopes_decode_or_fail_cleanly(
        type_name in type_name(),
        id in prop::option::of(".{0,8}"),
        payload in payload(),
    ) {
        let mut frame = json!({"type": type_name, "payload": payload});
        if let Some(id) = id {
            frame["id"] = json!(id);
        }
        let text = frame.to_string();
        match decode_client_message(&text, &Limits::default()) {
            Ok(envelope) => {
                let again = decode_client_message(&encode(&envelope).unwrap(), &Limits::default()).unwrap();
                prop_assert_eq!(again, envelope);
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
        if let Ok(message) = decode_server_message(&text) {
            let again = decode_server_message(&encode(&message).unwrap()).unwrap();
            prop_assert_eq!(again, message);
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        message in client_message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut bytes = encode(&ClientEnvelope::new(message)).unwrap().into_bytes();
        for (at, byte, op) in edits {
            let at = at.index(bytes.len() + 1);
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_message(&text, &Limits::default());
        let _ = decode_server_message(&text);
    }

    #[test]
    fn client_messages_round_trip(message in client_message(), id in prop::option::of(id())) {
        let envelope = ClientEnvelope { id, message };
        let text = encode(&envelope).unwrap();
        prop_assert_eq!(decode_client_message(&text, &Limits::default()).unwrap(), envelope);
    }

    #[test]
    fn server_messages_round_trip(message in server_message()) {
        let text = encode(&message).unwrap();
        prop_assert_eq!(decode_server_message(&text).unwrap(), message);
    }
}
