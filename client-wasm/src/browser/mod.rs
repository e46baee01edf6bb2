//! The browser client: `RelaywireClient`, wasm-bindgen over the browser's WebSocket.
//!
//! Frames are parsed with the browser's own `JSON.parse` and routed on `type`; the core
//! reads the few fields it acts on (of `connected`, `ack`, `error`, `user:online`, and
//! the `seq` of numbered events) through [`fields`]. Payloads reach handlers as the JS objects they are, never
//! copied into wasm memory. Nothing here formats strings or uses serde.

mod client;
mod driver;
mod errors;
mod fields;
mod js;
mod options;
mod snapshot;
mod typescript;

pub use client::RelaywireClient;

// dlmalloc, Rust's default on wasm32, is a third of the client's own code size; Talc is
// a fraction of it and faster on this allocation pattern (`cargo xtask bench`).
#[cfg(all(feature = "small-allocator", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
