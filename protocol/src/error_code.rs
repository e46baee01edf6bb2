//! Machine-readable error codes: on the wire in `error` messages, and in the rejections
//! a client raises by itself.
//!
//! ```
//! use relaywire_protocol::{ClientErrorCode, ErrorCode};
//!
//! assert_eq!(ErrorCode::NotParticipant.as_str(), "NOT_PARTICIPANT");
//! assert_eq!(ErrorCode::from_wire("RATE_LIMITED"), ErrorCode::RateLimited);
//! assert!(ErrorCode::RateLimited.is_retryable());
//! assert_eq!(ClientErrorCode::QueueFull.as_str(), "QUEUE_FULL");
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The code of an `error` message, and of HTTP API error bodies.
///
/// Serialized as its wire string, e.g. `"NOT_PARTICIPANT"`. A code this version does
/// not know decodes to `Other` (Rust only) so that servers can add codes without
/// breaking older clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(rename_all = "SCREAMING_SNAKE_CASE")
)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The token is missing, invalid or expired.
    AuthFailed,
    /// The frame is not a message: malformed JSON, no `type`, or an unknown `type`.
    InvalidMessage,
    /// The user is not a participant of the chat the message names.
    NotParticipant,
    /// A service the server depends on over HTTP failed.
    HttpError,
    /// The server failed; the request may be retried.
    InternalError,
    /// The payload is missing a field, has a wrong one, or breaks a rule (empty id…).
    ValidationError,
    /// Too many messages; slow down.
    RateLimited,
    /// The frame or its content is over the size limit.
    MessageTooLarge,
    /// The caller is authenticated but not allowed to do this.
    Forbidden,
    /// The chat, user or resource named does not exist.
    NotFound,
    /// The message's `id` was used before, within the deduplication window, for a
    /// different message: a resend must be the same message, a new message needs a new
    /// id.
    IdReused,
    /// A code this version does not know, kept as received.
    #[cfg_attr(feature = "typescript", ts(skip))]
    Other(String),
}

impl ErrorCode {
    /// Every code this version knows, in declaration order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::AuthFailed,
        ErrorCode::InvalidMessage,
        ErrorCode::NotParticipant,
        ErrorCode::HttpError,
        ErrorCode::InternalError,
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::MessageTooLarge,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::IdReused,
    ];

    /// The wire string, e.g. `"AUTH_FAILED"`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::InvalidMessage => "INVALID_MESSAGE",
            ErrorCode::NotParticipant => "NOT_PARTICIPANT",
            ErrorCode::HttpError => "HTTP_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::IdReused => "ID_REUSED",
            ErrorCode::Other(code) => code,
        }
    }

    /// Parses a wire string; unknown strings become [`ErrorCode::Other`].
    pub fn from_wire(code: &str) -> ErrorCode {
        Self::ALL
            .into_iter()
            .find(|known| known.as_str() == code)
            .unwrap_or_else(|| ErrorCode::Other(code.to_owned()))
    }

    /// Whether sending the same request again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorCode::HttpError | ErrorCode::InternalError | ErrorCode::RateLimited
        )
    }

    /// The HTTP status an HTTP API answers with for this code.
    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::AuthFailed => 401,
            ErrorCode::NotParticipant | ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::IdReused => 422,
            ErrorCode::MessageTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::HttpError => 502,
            ErrorCode::InvalidMessage | ErrorCode::ValidationError => 400,
            ErrorCode::InternalError | ErrorCode::Other(_) => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::from_wire(&code))
    }
}

/// The code of a failure a client raises by itself, never sent on the wire: the
/// `code` of a rejected Promise in JavaScript, beside `ErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ClientErrorCode {
    /// No `ack` or `error` arrived within the request's timeout.
    Timeout,
    /// The offline queue is full; the message was not accepted.
    QueueFull,
    /// `close()` was called; the message will never be sent.
    ClientClosed,
    /// The client stopped connecting (unauthorized, a terminal close code, or out of
    /// attempts); the message will never be sent.
    ConnectionFailed,
    /// The client options are invalid.
    InvalidOptions,
    /// The server closed the connection; the close code says why.
    ConnectionClosed,
}

impl ClientErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ClientErrorCode; 6] = [
        ClientErrorCode::Timeout,
        ClientErrorCode::QueueFull,
        ClientErrorCode::ClientClosed,
        ClientErrorCode::ConnectionFailed,
        ClientErrorCode::InvalidOptions,
        ClientErrorCode::ConnectionClosed,
    ];

    /// The string a JavaScript rejection carries as `code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientErrorCode::Timeout => "TIMEOUT",
            ClientErrorCode::QueueFull => "QUEUE_FULL",
            ClientErrorCode::ClientClosed => "CLIENT_CLOSED",
            ClientErrorCode::ConnectionFailed => "CONNECTION_FAILED",
            ClientErrorCode::InvalidOptions => "INVALID_OPTIONS",
            ClientErrorCode::ConnectionClosed => "CONNECTION_CLOSED",
        }
    }

    /// Parses [`ClientErrorCode::as_str`].
    pub fn from_wire(code: &str) -> Option<ClientErrorCode> {
        Self::ALL.into_iter().find(|known| known.as_str() == code)
    }
}

impl fmt::Display for ClientErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip_and_match_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        for code in ClientErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        let code: ErrorCode = serde_json::from_str("\"QUOTA_EXCEEDED\"").unwrap();
        assert_eq!(code, ErrorCode::Other("QUOTA_EXCEEDED".into()));
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"QUOTA_EXCEEDED\"");
    }

    #[test]
    fn client_and_wire_codes_never_collide() {
        for client in ClientErrorCode::ALL {
            assert!(matches!(
                ErrorCode::from_wire(client.as_str()),
                ErrorCode::Other(_)
            ));
        }
    }
}
