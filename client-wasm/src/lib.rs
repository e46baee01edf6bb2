//! Relaywire's client: a sans-I/O connection core ([`core`]) driven by the browser
//! (`RelaywireClient`, the JavaScript API of the npm package), by tokio (`native`)
//! and by Rust browser apps (`web`).
//!
//! The two Rust clients share one API: `native::Client` and `web::Client` are the
//! same type, connected by each platform's driver, with the same options, errors,
//! snapshot and stream of typed messages.

pub mod core;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
mod browser;

#[cfg(any(
    all(feature = "native", not(target_arch = "wasm32")),
    all(feature = "web", target_arch = "wasm32")
))]
mod typed;

#[cfg(all(
    feature = "chat",
    any(
        all(feature = "native", not(target_arch = "wasm32")),
        all(feature = "web", target_arch = "wasm32")
    )
))]
mod chat;

#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
pub mod native;

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub use browser::RelaywireClient;
