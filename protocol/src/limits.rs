//! Limits, defaults and version constants both ends agree on.

/// The protocol version this crate implements.
///
/// Version 2 numbers stored events (`seq` on `chat:message` and `chat:read`) and lets a
/// reconnecting client resume where it stopped ([`RESUME_PARAM`]). Version 3 lets
/// several messages travel in one frame ([`split_batch`](crate::split_batch)), both
/// ways, and the sender's own copy of an event its message stored carries that
/// message's acknowledgement ([`with_ack`](crate::with_ack)) instead of a separate
/// `ack`: one frame per message for the sender, fewer under load. Version 4 lets the
/// server wait for the client to speak: the client opens every connection with a frame
/// (`auth`, or else `ping`), and a server that cannot send before the client has (AWS API
/// Gateway, whose `$connect` route cannot post to the connection it is accepting) sends
/// `connected`, and what the client missed, in answer to it.
pub const PROTOCOL_VERSION: u32 = 4;

/// The WebSocket subprotocol a client offers for [`PROTOCOL_VERSION`].
pub const SUBPROTOCOL: &str = "relaywire.v4";

/// The subprotocol of version 3: batches, acknowledgements in the sender's copy; the
/// server speaks first.
pub const SUBPROTOCOL_V3: &str = "relaywire.v3";

/// The subprotocol of version 2: no batches, an `ack` for every message.
pub const SUBPROTOCOL_V2: &str = "relaywire.v2";

/// What a client offers, in its order of preference: the current version, and the ones
/// before, so that a client upgraded before its servers still connects (a server
/// picks the first it speaks).
pub const CLIENT_SUBPROTOCOLS: &[&str] = &[SUBPROTOCOL, SUBPROTOCOL_V3, SUBPROTOCOL_V2];

/// Every subprotocol a server built from this crate accepts, newest first. A client
/// offering none of them is refused with close code 4005, so a peer of another
/// version is turned away cleanly instead of misunderstood. Version 1 clients simply
/// never resume; version 2 clients get no batches and an `ack` for every message.
pub const SUPPORTED_SUBPROTOCOLS: &[&str] =
    &[SUBPROTOCOL, SUBPROTOCOL_V3, SUBPROTOCOL_V2, "relaywire.v1"];

/// The protocol version a subprotocol names (`relaywire.v3` is 3); `None` for another.
///
/// ```
/// assert_eq!(relaywire_protocol::version_of("relaywire.v3"), Some(3));
/// assert_eq!(relaywire_protocol::version_of("graphql-ws"), None);
/// ```
pub fn version_of(subprotocol: &str) -> Option<u32> {
    subprotocol.strip_prefix("relaywire.v")?.parse().ok()
}

/// What the protocol version a connection speaks changes on it: the one place both
/// ends ask.
///
/// ```
/// use relaywire_protocol::Wire;
///
/// let wire = Wire::negotiated(Some("relaywire.v4"));
/// assert!(wire.batches() && wire.client_opens());
/// // A handshake that names no subprotocol speaks the documented wire, version 2.
/// assert_eq!(Wire::negotiated(None).version(), 2);
/// assert_eq!(Wire::negotiated(Some("")).version(), 2);
/// assert!(!Wire::negotiated(Some("relaywire.v3")).client_opens());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    version: u32,
}

impl Wire {
    /// The wire of this version.
    pub const fn new(version: u32) -> Self {
        Self { version }
    }

    /// The wire of the subprotocol a handshake chose; version 2 when it named none
    /// (`None`, or the browser's empty string) or one that is not Relaywire's.
    pub fn negotiated(subprotocol: Option<&str>) -> Self {
        Self::new(subprotocol.and_then(version_of).unwrap_or(2))
    }

    /// Its version.
    pub const fn version(self) -> u32 {
        self.version
    }

    /// Whether several messages may travel in one frame, both ways (version 3 on).
    pub const fn batches(self) -> bool {
        self.version >= 3
    }

    /// Whether the sender's copy of an event its message stored carries that message's
    /// acknowledgement (version 3 on).
    pub const fn answers_in_copies(self) -> bool {
        self.version >= 3
    }

    /// Whether the client opens the connection with a frame (`auth`, or else `ping`),
    /// so a server may send `connected` only in answer to it (version 4 on).
    pub const fn client_opens(self) -> bool {
        self.version >= 4
    }
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
