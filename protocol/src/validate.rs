//! The rules serde cannot express, checked on every client message a server decodes.
//!
//! Each payload type of a catalogue's client messages implements [`Validate`]; the
//! helpers check the usual rules with the error kinds (and so the error codes) clients
//! expect.
//!
//! ```
//! use relaywire_protocol::{Limits, Validate, check_id, check_text, DecodeErrorKind};
//!
//! struct Post { room: String, text: String }
//!
//! impl Validate for Post {
//!     fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
//!         check_id("roomId", &self.room, limits)?;
//!         check_text("text", &self.text, limits)
//!     }
//! }
//!
//! let empty = Post { room: "r".into(), text: " ".into() };
//! assert_eq!(empty.validate(&Limits::default()), Err(DecodeErrorKind::EmptyField { field: "text" }));
//! ```

use crate::{Authenticate, DecodeErrorKind, Limits, Ping};

/// Checks what a payload's type cannot: ids not empty and not too long, text within
/// its limit. The default accepts everything.
pub trait Validate {
    /// `Ok` when the payload may be handled.
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        let _ = limits;
        Ok(())
    }
}

/// An id: not blank, at most [`Limits::max_id_bytes`] bytes. `field` is its wire name.
pub fn check_id(field: &'static str, value: &str, limits: &Limits) -> Result<(), DecodeErrorKind> {
    if value.trim().is_empty() {
        return Err(DecodeErrorKind::EmptyField { field });
    }
    if value.len() > limits.max_id_bytes {
        return Err(DecodeErrorKind::IdTooLong {
            field,
            len: value.len(),
            limit: limits.max_id_bytes,
        });
    }
    Ok(())
}

/// Text content: not blank, at most [`Limits::max_content_chars`] characters.
pub fn check_text(
    field: &'static str,
    value: &str,
    limits: &Limits,
) -> Result<(), DecodeErrorKind> {
    if value.trim().is_empty() {
        return Err(DecodeErrorKind::EmptyField { field });
    }
    let len = value.chars().count();
    if len > limits.max_content_chars {
        return Err(DecodeErrorKind::ContentTooLong {
            len,
            limit: limits.max_content_chars,
        });
    }
    Ok(())
}

/// A list of ids (recipients, say): at least one, at most `max`, each a valid id.
/// `field` is its wire name.
pub fn check_ids(
    field: &'static str,
    values: &[String],
    max: usize,
    limits: &Limits,
) -> Result<(), DecodeErrorKind> {
    if values.is_empty() {
        return Err(DecodeErrorKind::EmptyField { field });
    }
    if values.len() > max {
        return Err(DecodeErrorKind::TooMany {
            field,
            len: values.len(),
            limit: max,
        });
    }
    values
        .iter()
        .try_for_each(|value| check_id(field, value, limits))
}

impl Validate for Authenticate {
    fn validate(&self, _: &Limits) -> Result<(), DecodeErrorKind> {
        if self.token.trim().is_empty() {
            return Err(DecodeErrorKind::EmptyField { field: "token" });
        }
        Ok(())
    }
}

impl Validate for Ping {}
