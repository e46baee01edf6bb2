//! The typed Rust client for Rust browser apps (Leptos, Yew, Dioxus, plain
//! wasm-bindgen), behind the `web` feature on wasm32.
//!
//! It is the native client's API on the browser: the same [`Client`], [`Options`],
//! [`RequestError`] and [`Snapshot`], driven by the same connection core (reconnect
//! with backoff, heartbeat, token refresh, outbox, acks, resume), with the browser's
//! WebSocket (`web-sys`), its online, offline and visibility events (`gloo-events`),
//! its timers (`gloo-timers`) and a task on the page's event loop. Messages are
//! decoded with serde into the protocol's `ServerMessage` enum and arrive on
//! [`Messages`], a `futures::Stream`; [`Client::states`] is the connection state as a
//! stream, for a UI to bind. Dropping every handle closes the socket and removes every
//! listener and timer.
//!
//! The npm package does not use it: its `RelaywireClient` hands payloads to JavaScript
//! untouched and carries no serde. A Rust app adds the crate with
//! `default-features = false, features = ["web", "chat"]`, so that JavaScript API is
//! not linked into it.
//!
//! Join a chat, say hello and read it back (the browser tests run this against a chat
//! server):
//!
//! ```rust,ignore
#![doc = include_str!("../../tests/support/web_quick_start.rs")]
//! ```

mod driver;

use relaywire_protocol::Protocol;

pub use crate::typed::{
    Client, InvalidOptions, MaybeSend, MaybeSync, Messages, Options, RequestError, Snapshot,
    TokenFuture, TokenProvider, TokenResult, TokenUnavailable,
};

impl<P: Protocol> Client<P> {
    /// Starts a client on the page's event loop (`spawn_local`). Messages the server
    /// sends arrive on the returned stream, each once: replayed events it has seen are
    /// dropped.
    ///
    /// The URL is `ws:`, `wss:`, `http:` or `https:` (the last two connect with `ws:`
    /// and `wss:`), or a path such as `/ws`, resolved against the page.
    pub fn connect(
        options: Options<P>,
    ) -> Result<(Client<P>, Messages<P::Server>), InvalidOptions> {
        driver::start(options)
    }
}
