#![doc = include_str!("../README.md")]

mod catalogue;
mod client;
mod close_code;
mod codec;
mod error_code;
pub mod http;
mod limits;
mod seq;
mod server;
#[cfg(feature = "typescript")]
pub mod typescript;

pub use client::{
    Authenticate, ClientEnvelope, ClientMessage, JoinChat, LeaveChat, MarkRead, Ping, SendMessage,
    SetTyping,
};
pub use close_code::{CloseAction, CloseCode};
pub use codec::{
    DecodeError, DecodeErrorKind, EncodeError, WireMessage, decode_client_message,
    decode_server_message, encode,
};
pub use error_code::{ClientErrorCode, ErrorCode};
pub use limits::{
    AUTH_BY_MESSAGE, AUTH_TIMEOUT_MS, CONNECTION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS, Limits,
    MAX_CONTENT_CHARS, MAX_ID_BYTES, MAX_MESSAGE_SIZE, PROTOCOL_VERSION, RESUME_PARAM, SUBPROTOCOL,
    SUPPORTED_SUBPROTOCOLS, TYPING_TIMEOUT_MS,
};
pub use seq::{Seq, SeqOutOfRange};
pub use server::{
    Ack, AppEvent, ChatMessage, Connected, ErrorPayload, MessageCreated, Notification, Pong,
    PresenceChange, ReadReceipt, ServerMessage, SystemLevel, SystemNotice, TypingIndicator,
    UnknownMessage,
};

/// Compiles the Rust examples of the workspace README, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct WorkspaceReadme;
