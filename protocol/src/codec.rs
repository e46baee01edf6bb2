//! Decoding frames into messages and encoding messages into frames.
//!
//! Decoding happens in two steps: the envelope (`type`, `id`, `payload` kept as raw
//! JSON text), then the payload of the one type named. That keeps every failure
//! precise (malformed JSON, unknown type, bad payload) and never builds a
//! `serde_json::Value` for a known message.

use std::borrow::Cow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::{ClientMessages, ErrorCode, ErrorPayload, Limits, ServerMessages, UnknownMessage};

/// Why a frame could not be decoded.
///
/// [`DecodeError::code`] gives the [`ErrorCode`] to answer with, and
/// [`DecodeError::to_error_payload`] the whole `error` message, including the `id` of
/// the client message when the envelope was readable.
///
/// ```
/// use relaywire_protocol::{decode_client_message, DecodeErrorKind, ErrorCode, Limits};
/// # relaywire_protocol::catalogue! { pub protocol P; pub client C {} pub server S {} }
///
/// let err = decode_client_message::<C>(r#"{"type":"auth","id":"c1","payload":{}}"#, &Limits::default())
///     .unwrap_err();
/// assert!(matches!(err.kind(), DecodeErrorKind::InvalidPayload { .. }));
/// assert_eq!(err.code(), ErrorCode::ValidationError);
/// assert_eq!(err.id(), Some("c1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    id: Option<String>,
}

/// The kinds of [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The frame is longer than [`Limits::max_message_bytes`]; it was not parsed.
    #[error("frame of {size} bytes is over the {limit}-byte limit")]
    FrameTooLarge {
        /// Frame length in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The frame is not valid JSON.
    #[error("malformed JSON: {reason}")]
    MalformedJson {
        /// The parser's explanation, with line and column.
        reason: String,
    },
    /// The frame is JSON but not `{"type": string, "id"?: string, "payload"?: object}`.
    #[error("not a message envelope: {reason}")]
    InvalidEnvelope {
        /// What is wrong with it.
        reason: String,
    },
    /// The `type` is not one this side accepts.
    #[error("unknown message type `{type_name}`")]
    UnknownType {
        /// The `type` received, cut to [`Limits::max_id_bytes`].
        type_name: String,
    },
    /// The payload is missing a field, has a field of the wrong type, or is not an object.
    #[error("invalid `{type_name}` payload: {reason}")]
    InvalidPayload {
        /// The message type.
        type_name: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// A field that must not be empty is empty.
    #[error("`{field}` must not be empty")]
    EmptyField {
        /// The field, as named on the wire.
        field: &'static str,
    },
    /// An id is longer than [`Limits::max_id_bytes`].
    #[error("`{field}` is {len} bytes, over the {limit}-byte limit")]
    IdTooLong {
        /// The field, as named on the wire.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A list has more items than its limit.
    #[error("`{field}` has {len} items, over the limit of {limit}")]
    TooMany {
        /// The field, as named on the wire.
        field: &'static str,
        /// How many it has.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Text content is longer than [`Limits::max_content_chars`].
    #[error("content is {len} characters, over the {limit}-character limit")]
    ContentTooLong {
        /// Its length in characters.
        len: usize,
        /// The limit in characters.
        limit: usize,
    },
}

impl DecodeErrorKind {
    /// The error code a server answers this failure with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeErrorKind::FrameTooLarge { .. } | DecodeErrorKind::ContentTooLong { .. } => {
                ErrorCode::MessageTooLarge
            }
            DecodeErrorKind::MalformedJson { .. }
            | DecodeErrorKind::InvalidEnvelope { .. }
            | DecodeErrorKind::UnknownType { .. } => ErrorCode::InvalidMessage,
            DecodeErrorKind::InvalidPayload { .. }
            | DecodeErrorKind::EmptyField { .. }
            | DecodeErrorKind::IdTooLong { .. }
            | DecodeErrorKind::TooMany { .. } => ErrorCode::ValidationError,
        }
    }
}

impl DecodeError {
    fn new(kind: DecodeErrorKind) -> Self {
        Self { kind, id: None }
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// The client-assigned `id` of the rejected message, when its envelope was readable.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The `error` message that answers this failure.
    pub fn to_error_payload(&self) -> ErrorPayload {
        ErrorPayload::new(self.code(), self.kind.to_string()).answering(self.id.clone())
    }
}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        Self::new(kind)
    }
}

/// Why a message could not be encoded. Relaywire's own messages always encode; this
/// exists so that no code path has to assume it.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// The envelope as read before the payload's type is known.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    type_name: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

const EMPTY_PAYLOAD: &str = "{}";

fn read_envelope<'a>(text: &'a str, limits: &Limits) -> Result<RawEnvelope<'a>, DecodeError> {
    if text.len() > limits.max_message_bytes {
        return Err(DecodeErrorKind::FrameTooLarge {
            size: text.len(),
            limit: limits.max_message_bytes,
        }
        .into());
    }
    // Derived struct decoding also accepts arrays; an envelope must be an object.
    let first = text.trim_start().as_bytes().first();
    if first != Some(&b'{') {
        let kind = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Err(err) => DecodeErrorKind::MalformedJson {
                reason: err.to_string(),
            },
            Ok(_) => DecodeErrorKind::InvalidEnvelope {
                reason: "expected a JSON object".to_owned(),
            },
        };
        return Err(kind.into());
    }
    serde_json::from_str::<RawEnvelope<'a>>(text).map_err(|err| {
        let reason = err.to_string();
        match err.classify() {
            serde_json::error::Category::Data => DecodeErrorKind::InvalidEnvelope { reason },
            _ => DecodeErrorKind::MalformedJson { reason },
        }
        .into()
    })
}

/// The payload text, `{}` when absent or `null`, or an error when it is not an object.
fn payload_text<'a>(
    payload: Option<&'a RawValue>,
    type_name: &'static str,
) -> Result<&'a str, DecodeErrorKind> {
    let text = payload.map_or(EMPTY_PAYLOAD, RawValue::get);
    match text.as_bytes().first() {
        Some(b'{') => Ok(text),
        _ if text == "null" => Ok(EMPTY_PAYLOAD),
        _ => Err(DecodeErrorKind::InvalidPayload {
            type_name,
            reason: "payload must be an object".to_owned(),
        }),
    }
}

/// Syntax errors the envelope pass let through (escapes inside strings) stay
/// malformed JSON; everything else is a payload that does not fit its type.
fn payload_error(type_name: &'static str, err: &serde_json::Error) -> DecodeErrorKind {
    let reason = err.to_string();
    match err.classify() {
        serde_json::error::Category::Data => DecodeErrorKind::InvalidPayload { type_name, reason },
        _ => DecodeErrorKind::MalformedJson { reason },
    }
}

fn truncated(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn static_type_name(types: &'static [&'static str], name: &str) -> Option<&'static str> {
    types.iter().copied().find(|known| *known == name)
}

/// A client message as it travels: the message plus an optional client-assigned `id`.
///
/// When `id` is present the server answers with an `ack` (or an `error`) carrying the
/// same `id`, which is how requests are matched to their replies.
///
/// ```json
/// {"type": "chat:join", "id": "k3f9-2", "payload": {"chatId": "general"}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientEnvelope<C> {
    /// Client-assigned id, unique per client; echoed by `ack` and `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The message itself.
    #[serde(flatten)]
    pub message: C,
}

impl<C> ClientEnvelope<C> {
    /// Wraps a message that needs no reply.
    pub fn new(message: impl Into<C>) -> Self {
        Self {
            id: None,
            message: message.into(),
        }
    }

    /// Wraps a message whose `ack` or `error` the sender waits for.
    pub fn with_id(id: impl Into<String>, message: impl Into<C>) -> Self {
        Self {
            id: Some(id.into()),
            message: message.into(),
        }
    }
}

/// Decodes a text frame received from a client and checks it against `limits`: the
/// envelope, the payload of the one type named, then the payload's
/// [`Validate`](crate::Validate) rules.
///
/// Never panics, whatever `text` holds. The error names the [`ErrorCode`] to answer with.
///
/// ```
/// use relaywire_protocol::{decode_client_message, Limits};
/// # relaywire_protocol::catalogue! { pub protocol P; pub client ClientMessage {} pub server S {} }
///
/// let frame = r#"{"type":"auth","id":"c1","payload":{"token":"eyJ.x.y"}}"#;
/// let envelope = decode_client_message::<ClientMessage>(frame, &Limits::default())?;
/// assert_eq!(envelope.id.as_deref(), Some("c1"));
/// assert!(matches!(envelope.message, ClientMessage::Auth(ref auth) if auth.token == "eyJ.x.y"));
/// # Ok::<(), relaywire_protocol::DecodeError>(())
/// ```
pub fn decode_client_message<C: ClientMessages>(
    text: &str,
    limits: &Limits,
) -> Result<ClientEnvelope<C>, DecodeError> {
    let raw = read_envelope(text, limits)?;
    let id = match raw.id {
        None => None,
        Some(id) => {
            crate::check_id("id", &id, limits)?;
            Some(id.into_owned())
        }
    };
    let with_id = |kind: DecodeErrorKind| DecodeError {
        kind,
        id: id.clone(),
    };
    let Some(type_name) = static_type_name(C::TYPES, &raw.type_name) else {
        return Err(with_id(DecodeErrorKind::UnknownType {
            type_name: truncated(&raw.type_name, limits.max_id_bytes),
        }));
    };
    let payload = payload_text(raw.payload, type_name).map_err(with_id)?;
    let mut payload = serde_json::Deserializer::from_str(payload);
    let message = match C::decode_payload(type_name, &mut payload) {
        Some(Ok(message)) => message,
        Some(Err(err)) => return Err(with_id(payload_error(type_name, &err))),
        None => {
            return Err(with_id(DecodeErrorKind::UnknownType {
                type_name: type_name.to_owned(),
            }));
        }
    };
    message.validate(limits).map_err(with_id)?;
    Ok(ClientEnvelope { id, message })
}

/// Decodes a text frame received from a server.
///
/// A `type` this version does not know becomes the catalogue's `Unknown`; unknown
/// fields are ignored. Never panics, whatever `text` holds.
///
/// ```
/// use relaywire_protocol::{decode_server_message, Messages};
/// # relaywire_protocol::catalogue! { pub protocol P; pub client C {} pub server ServerMessage {} }
///
/// let known: ServerMessage = decode_server_message(r#"{"type":"pong","payload":{"timestamp":"2024-01-01T12:00:00.000Z"}}"#)?;
/// assert!(matches!(known, ServerMessage::Pong(_)));
///
/// let newer: ServerMessage = decode_server_message(r#"{"type":"poll:created","payload":{"question":"Lunch?"}}"#)?;
/// assert_eq!(newer.type_name(), "poll:created");
/// assert!(matches!(newer, ServerMessage::Unknown(_)));
/// # Ok::<(), relaywire_protocol::DecodeError>(())
/// ```
pub fn decode_server_message<S: ServerMessages>(text: &str) -> Result<S, DecodeError> {
    let unlimited = Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    };
    let raw = read_envelope(text, &unlimited)?;
    let Some(type_name) = static_type_name(S::TYPES, &raw.type_name) else {
        let payload = match raw.payload {
            None => serde_json::Value::Null,
            Some(raw_payload) => serde_json::from_str(raw_payload.get()).map_err(|err| {
                DecodeError::new(DecodeErrorKind::MalformedJson {
                    reason: err.to_string(),
                })
            })?,
        };
        return Ok(S::unknown(UnknownMessage {
            type_name: raw.type_name.into_owned(),
            payload,
        }));
    };
    let payload = payload_text(raw.payload, type_name)?;
    let mut payload = serde_json::Deserializer::from_str(payload);
    match S::decode_payload(type_name, &mut payload) {
        Some(Ok(message)) => Ok(message),
        Some(Err(err)) => Err(payload_error(type_name, &err).into()),
        None => Err(DecodeErrorKind::UnknownType {
            type_name: type_name.to_owned(),
        }
        .into()),
    }
}

/// A message that can be written to the wire: a catalogue's messages and
/// [`ClientEnvelope`]s of them.
pub trait WireMessage: Serialize {}

impl<C: ClientMessages> WireMessage for ClientEnvelope<C> {}

/// Encodes a message as the text of one frame.
///
/// ```
/// use relaywire_protocol::{encode, PresenceChange};
/// # relaywire_protocol::catalogue! { pub protocol P; pub client C {} pub server ServerMessage {} }
///
/// let text = encode(&ServerMessage::from(PresenceChange { user_id: "u1".into(), online: true }))?;
/// assert_eq!(text, r#"{"type":"user:online","payload":{"userId":"u1","online":true}}"#);
/// # Ok::<(), relaywire_protocol::EncodeError>(())
/// ```
pub fn encode<M: WireMessage>(message: &M) -> Result<String, EncodeError> {
    Ok(serde_json::to_string(message)?)
}

/// `{"type", "payload"}` read by any serde format, for the `Deserialize` impls.
#[derive(Deserialize)]
struct TaggedValue {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

impl TaggedValue {
    fn payload_or_empty(&mut self) -> serde_json::Value {
        match self.payload.take() {
            None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
            Some(payload) => payload,
        }
    }

    fn client<C: ClientMessages, E: serde::de::Error>(mut self) -> Result<ClientEnvelope<C>, E> {
        let payload = self.payload_or_empty();
        match C::decode_payload(&self.type_name, payload) {
            None => Err(E::unknown_variant(&self.type_name, C::TYPES)),
            Some(result) => result
                .map(|message| ClientEnvelope {
                    id: self.id,
                    message,
                })
                .map_err(E::custom),
        }
    }
}

/// Accepts the same shapes as [`decode_client_message`] but checks no [`Limits`]: use
/// the decoder for untrusted input.
impl<'de, C: ClientMessages> Deserialize<'de> for ClientEnvelope<C> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        TaggedValue::deserialize(deserializer)?.client()
    }
}

/// What the `Deserialize` impls of a catalogue's enums call.
#[doc(hidden)]
pub fn deserialize_client<'de, C: ClientMessages, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<C, D::Error> {
    TaggedValue::deserialize(deserializer)?
        .client()
        .map(|envelope: ClientEnvelope<C>| envelope.message)
}

#[doc(hidden)]
pub fn deserialize_server<'de, S: ServerMessages, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<S, D::Error> {
    let mut tagged = TaggedValue::deserialize(deserializer)?;
    if !S::TYPES.contains(&tagged.type_name.as_str()) {
        return Ok(S::unknown(UnknownMessage {
            type_name: tagged.type_name,
            payload: tagged.payload.unwrap_or(serde_json::Value::Null),
        }));
    }
    let payload = tagged.payload_or_empty();
    match S::decode_payload(&tagged.type_name, payload) {
        Some(result) => result.map_err(D::Error::custom),
        None => Err(D::Error::unknown_variant(&tagged.type_name, S::TYPES)),
    }
}
