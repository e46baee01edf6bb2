#![doc = include_str!("../README.md")]

mod batch;
mod catalogue;
mod close_code;
mod codec;
pub mod control;
mod error_code;
pub mod http;
mod limits;
pub mod policy;
mod seq;
#[cfg(feature = "typescript")]
pub mod typescript;
mod validate;

pub use batch::{ACK_FIELD, join_batches, split_batch, with_ack};
pub use catalogue::{ClientMessages, Messages, Numbered, Protocol, ServerMessages};
pub use close_code::{CloseAction, CloseCode};
pub use codec::{
    ClientEnvelope, DecodeError, DecodeErrorKind, EncodeError, WireMessage, decode_client_message,
    decode_server_message, encode,
};
pub use control::{
    Ack, Authenticate, Connected, ErrorPayload, Ping, Pong, PresenceChange, UnknownMessage,
};
pub use error_code::{ClientErrorCode, ErrorCode};
pub use limits::{
    AUTH_BY_MESSAGE, AUTH_TIMEOUT_MS, CLIENT_SUBPROTOCOLS, CONNECTION_TIMEOUT_MS,
    HEARTBEAT_INTERVAL_MS, Limits, MAX_BATCH_BYTES, MAX_CONTENT_CHARS, MAX_ID_BYTES,
    MAX_MESSAGE_SIZE, PROTOCOL_VERSION, RESUME_PARAM, SUBPROTOCOL, SUBPROTOCOL_V2, SUBPROTOCOL_V3,
    SUPPORTED_SUBPROTOCOLS, TYPING_TIMEOUT_MS, Wire, version_of,
};
pub use seq::{Seq, SeqOutOfRange};
pub use validate::{Validate, check_id, check_ids, check_text};

/// What the code [`catalogue!`] generates calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    #[cfg(feature = "typescript")]
    pub use ts_rs;

    pub use crate::codec::{deserialize_client, deserialize_server};
    use crate::policy::ClientPolicy;

    /// `{"type": wire, "payload": payload}`, as serde writes an adjacently tagged enum.
    pub fn serialize_tagged<S: serde::Serializer, P: serde::Serialize + ?Sized>(
        serializer: S,
        name: &'static str,
        wire: &'static str,
        payload: &P,
    ) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut tagged = serializer.serialize_struct(name, 2)?;
        tagged.serialize_field("type", wire)?;
        tagged.serialize_field("payload", payload)?;
        tagged.end()
    }

    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Fails compilation when a catalogue names a wire type twice.
    pub const fn assert_unique_types(types: &[&str]) {
        let mut i = 0;
        while i < types.len() {
            let mut j = i + 1;
            while j < types.len() {
                assert!(
                    !same(types[i], types[j]),
                    "a catalogue names a wire type twice"
                );
                j += 1;
            }
            i += 1;
        }
    }

    /// Makes the compiler evaluate (and so check) every line's policy.
    pub const fn assert_policies(policies: &[ClientPolicy]) {
        let _ = policies.len();
    }
}
