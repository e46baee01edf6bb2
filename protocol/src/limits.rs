//! Limits, defaults and version constants both ends agree on.

/// The protocol version this crate implements.
///
/// Version 2 numbers stored events (`seq` on `chat:message` and `chat:read`) and lets a
/// reconnecting client resume where it stopped ([`RESUME_PARAM`]). Version 3 lets
/// several messages travel in one frame ([`split_batch`](crate::split_batch)), both
/// ways, and the sender's own copy of an event its message stored carries that
/// message's acknowledgement ([`with_ack`](crate::with_ack)) instead of a separate
/// `ack`: one frame per message for the sender, fewer under load.
pub const PROTOCOL_VERSION: u32 = 3;

/// The WebSocket subprotocol a client offers for [`PROTOCOL_VERSION`].
pub const SUBPROTOCOL: &str = "relaywire.v3";

/// The subprotocol of version 2: no batches, an `ack` for every message.
pub const SUBPROTOCOL_V2: &str = "relaywire.v2";

/// What a client offers, in its order of preference: the current version, and the one
/// before, so that a client upgraded before its servers still connects (a server
/// picks the first it speaks).
pub const CLIENT_SUBPROTOCOLS: &[&str] = &[SUBPROTOCOL, SUBPROTOCOL_V2];

/// Every subprotocol a server built from this crate accepts, newest first. A client
/// offering none of them is refused with close code 4005, so a peer of another
/// version is turned away cleanly instead of misunderstood. Version 1 clients simply
/// never resume; version 2 clients get no batches and an `ack` for every message.
pub const SUPPORTED_SUBPROTOCOLS: &[&str] = &[SUBPROTOCOL, SUBPROTOCOL_V2, "relaywire.v1"];

/// The protocol version a subprotocol names (`relaywire.v3` is 3); `None` for another.
///
/// ```
/// assert_eq!(relaywire_protocol::version_of("relaywire.v3"), Some(3));
/// assert_eq!(relaywire_protocol::version_of("graphql-ws"), None);
/// ```
pub fn version_of(subprotocol: &str) -> Option<u32> {
    subprotocol.strip_prefix("relaywire.v")?.parse().ok()
}

/// The largest batch frame a server writes, in bytes: several messages queued for one
/// connection travel as one frame up to this size (a single larger message travels
/// alone). 32 KiB is the frame limit of AWS API Gateway's WebSocket APIs.
pub const MAX_BATCH_BYTES: usize = 32 * 1024;

/// The query parameter, `?lastSeq=<n>`, by which a reconnecting client says which
/// event it saw last: the server sends what it missed before anything new.
pub const RESUME_PARAM: &str = "lastSeq";

/// The query parameter, `?auth=message`, by which a client says it will authenticate
/// with a first `auth` message: the server then ignores ambient credentials (cookies,
/// headers) and waits for that message, so an explicit token always wins.
pub const AUTH_BY_MESSAGE: (&str, &str) = ("auth", "message");

/// Largest text frame a server accepts, in bytes (the chat server's `MAX_MESSAGE_SIZE`).
pub const MAX_MESSAGE_SIZE: usize = 10_000;

/// Longest chat message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 4_000;

/// Longest id (chat, message, client message id), in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// How often a client pings, in milliseconds (the chat server's `HEARTBEAT_INTERVAL`).
pub const HEARTBEAT_INTERVAL_MS: u32 = 30_000;

/// How long a typing indicator lasts without a stop, in milliseconds (`TYPING_TIMEOUT`).
pub const TYPING_TIMEOUT_MS: u32 = 3_000;

/// A connection silent for this long is closed, in milliseconds (`CONNECTION_TIMEOUT`).
pub const CONNECTION_TIMEOUT_MS: u32 = 60_000;

/// How long a server waits for the first `auth` message when the handshake carried no
/// token, in milliseconds.
pub const AUTH_TIMEOUT_MS: u32 = 5_000;

/// The limits a decoder enforces on what it receives.
///
/// ```
/// use relaywire_protocol::Limits;
///
/// let strict = Limits { max_message_bytes: 2_048, ..Limits::default() };
/// assert_eq!(strict.max_content_chars, relaywire_protocol::MAX_CONTENT_CHARS);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes. Default [`MAX_MESSAGE_SIZE`].
    pub max_message_bytes: usize,
    /// Longest chat message content, in characters. Default [`MAX_CONTENT_CHARS`].
    pub max_content_chars: usize,
    /// Longest id, in bytes. Default [`MAX_ID_BYTES`].
    pub max_id_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: MAX_MESSAGE_SIZE,
            max_content_chars: MAX_CONTENT_CHARS,
            max_id_bytes: MAX_ID_BYTES,
        }
    }
}
