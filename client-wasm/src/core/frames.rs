//! The control frames the core writes itself (`auth`, `ping`), without serde: the
//! browser build must not carry a JSON serializer. A test decodes each with the
//! protocol crate, so they cannot drift from the one definition.

/// `{"type":"ping","payload":{}}`
pub(crate) const PING: &str = r#"{"type":"ping","payload":{}}"#;

/// Appends `value` as a JSON string literal.
pub(crate) fn push_json_string(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let code = c as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[code >> 4]));
                out.push(char::from(HEX[code & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"type":"auth","payload":{"token":"..."}}`
pub(crate) fn auth(token: &str) -> String {
    let mut out = String::with_capacity(token.len() + 40);
    out.push_str(r#"{"type":"auth","payload":{"token":"#);
    push_json_string(&mut out, token);
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use relaywire_chat::{ClientMessage, decode_client_message};
    use relaywire_protocol::Limits;

    fn decode(text: &str) -> ClientMessage {
        decode_client_message(text, &Limits::default())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .message
    }

    #[test]
    fn control_frames_are_valid_protocol_messages() {
        assert!(matches!(decode(PING), ClientMessage::Ping(_)));
        let tricky = "a\"b\\c\nd\u{1}é😀";
        match decode(&auth(tricky)) {
            ClientMessage::Auth(auth) => assert_eq!(auth.token, tricky),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let mut out = String::new();
        push_json_string(&mut out, &all);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, all);
    }
}
