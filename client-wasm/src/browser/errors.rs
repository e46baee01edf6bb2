//! Rejections and exceptions: `Error` objects named `RelaywireError` with a `code`.

use relaywire_protocol::ClientErrorCode;
use wasm_bindgen::JsValue;

use super::js::put;

/// A `RelaywireError` with a code and a message. Not inlined: it is called from many
/// error paths, and one copy is smaller than one per path.
#[inline(never)]
pub(crate) fn error(code: &str, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("RelaywireError");
    let error = JsValue::from(error);
    put(&error, "code", &JsValue::from_str(code));
    error
}

/// The error for a failure the client raises by itself.
#[inline(never)]
pub(crate) fn client_error(code: ClientErrorCode, message: &str) -> JsValue {
    error(code.as_str(), message)
}

/// The standard message of a client failure.
pub(crate) fn describe(code: ClientErrorCode) -> &'static str {
    match code {
        ClientErrorCode::Timeout => "no reply arrived within the request timeout",
        ClientErrorCode::QueueFull => "too many messages are waiting for the connection",
        ClientErrorCode::ClientClosed => "the client was closed",
        ClientErrorCode::ConnectionFailed => "the client stopped connecting",
        ClientErrorCode::InvalidOptions => "invalid options",
        ClientErrorCode::ConnectionClosed => "the server closed the connection",
        _ => "the client failed",
    }
}
