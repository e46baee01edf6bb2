//! Relaywire's client: a sans-I/O connection core ([`core`]) that the browser
//! (`RelaywireClient`, wasm-bindgen over the browser's WebSocket) and tokio drive.

pub mod core;

#[cfg(target_arch = "wasm32")]
mod browser;

#[cfg(feature = "native")]
pub mod native;

#[cfg(target_arch = "wasm32")]
pub use browser::RelaywireClient;
