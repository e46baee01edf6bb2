//! Protocol version 3 on the wire: several messages in one frame (a batch), and the
//! sender's own copy of an event that carries its message's acknowledgement.

use serde_json::value::RawValue;

use crate::{Ack, DecodeError, DecodeErrorKind, Limits};

/// The messages a frame carries, in order: a batch's elements, or the frame itself
/// when it is not a batch.
///
/// A batch is a JSON array of messages, each written as it would travel alone. Only
/// the whole frame is checked here (its size against `limits`, and that it is JSON);
/// each element is then decoded as one message, so a bad element is refused alone,
/// with its own `id`. An empty batch is refused.
///
/// ```
/// use relaywire_protocol::{split_batch, Limits};
///
/// let frame = r#"[{"type":"ping"},{"type":"chat:join","id":"j1","payload":{"chatId":"general"}}]"#;
/// let messages = split_batch(frame, &Limits::default())?;
/// assert_eq!(messages, [r#"{"type":"ping"}"#, r#"{"type":"chat:join","id":"j1","payload":{"chatId":"general"}}"#]);
/// assert_eq!(split_batch(r#"{"type":"ping"}"#, &Limits::default())?, [r#"{"type":"ping"}"#]);
/// # Ok::<(), relaywire_protocol::DecodeError>(())
/// ```
pub fn split_batch<'a>(text: &'a str, limits: &Limits) -> Result<Vec<&'a str>, DecodeError> {
    if text.len() > limits.max_message_bytes {
        return Err(DecodeErrorKind::FrameTooLarge {
            size: text.len(),
            limit: limits.max_message_bytes,
        }
        .into());
    }
    if !text.trim_start().starts_with('[') {
        return Ok(vec![text]);
    }
    let items: Vec<&'a RawValue> = serde_json::from_str(text).map_err(|err| {
        DecodeError::from(DecodeErrorKind::MalformedJson {
            reason: err.to_string(),
        })
    })?;
    if items.is_empty() {
        return Err(DecodeErrorKind::InvalidEnvelope {
            reason: "an empty batch".to_owned(),
        }
        .into());
    }
    Ok(items.into_iter().map(RawValue::get).collect())
}

/// Puts frames, in order, into as few frames as fit `max_bytes` each: consecutive
/// frames travel as one batch while it fits, and a frame that fits in no batch with
/// another travels alone, as it is.
///
/// ```
/// use relaywire_protocol::join_batches;
///
/// let frames = [r#"{"type":"a"}"#, r#"{"type":"b"}"#, r#"{"type":"c"}"#];
/// assert_eq!(join_batches(frames, 30), [r#"[{"type":"a"},{"type":"b"}]"#, r#"{"type":"c"}"#]);
/// assert_eq!(join_batches(frames, 1000), [r#"[{"type":"a"},{"type":"b"},{"type":"c"}]"#]);
/// ```
pub fn join_batches<S: AsRef<str>>(
    frames: impl IntoIterator<Item = S>,
    max_bytes: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    // The batch being filled: its text without the closing bracket, and how many
    // frames it holds.
    let mut open = String::new();
    let mut count = 0;
    let close = |open: &mut String, count: &mut usize, out: &mut Vec<String>| {
        match *count {
            0 => {}
            // One frame travels as itself.
            1 => out.push(open[1..].to_owned()),
            _ => {
                open.push(']');
                out.push(std::mem::take(open));
            }
        }
        open.clear();
        *count = 0;
    };
    for frame in frames {
        let frame = frame.as_ref();
        // `[`, the frames so far, `,`, this one, `]`.
        if count > 0 && open.len() + 1 + frame.len() + 1 > max_bytes {
            close(&mut open, &mut count, &mut out);
        }
        open.push(if count == 0 { '[' } else { ',' });
        open.push_str(frame);
        count += 1;
    }
    close(&mut open, &mut count, &mut out);
    out
}

/// The name of the envelope field by which a server message acknowledges the client
/// message that caused it.
pub const ACK_FIELD: &str = "ack";

/// `frame`, a server message as the server encodes it (a JSON object), carrying `ack`:
/// the sender's own copy of what its message stored serves as that message's
/// acknowledgement.
///
/// ```
/// use relaywire_protocol::{with_ack, Ack};
///
/// let ack = Ack { id: "c-1".into(), message_id: Some("m-9".into()) };
/// assert_eq!(
///     with_ack(r#"{"type":"chat:read","payload":{"seq":4}}"#, &ack),
///     r#"{"type":"chat:read","payload":{"seq":4},"ack":{"id":"c-1","messageId":"m-9"}}"#,
/// );
/// ```
pub fn with_ack(frame: &str, ack: &Ack) -> String {
    let (Some(body), Ok(ack)) = (frame.strip_suffix('}'), serde_json::to_string(ack)) else {
        return frame.to_owned();
    };
    format!("{body},\"{ACK_FIELD}\":{ack}}}")
}
