//! Relaywire's client for browsers (wasm-bindgen) and Rust services.
//!
//! The browser client lands on top of this crate; for now it exposes the protocol
//! version it speaks, so that the wasm build, its bindings and its tests are wired up.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::*;

/// The protocol version this client speaks.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen(js_name = protocolVersion))]
pub fn protocol_version() -> u32 {
    relaywire_protocol::PROTOCOL_VERSION
}
