//! Relaywire's reference chat server: the complete server side of the protocol.
//!
//! It authenticates WebSocket connections (cookie, `?token=`, `Authorization` header or
//! a first `auth` message; HS256, RS256 via JWKS, or an HTTP profile endpoint),
//! stores chats, messages and read receipts in SQLite, fans messages out to every
//! online participant, tracks presence and typing, and offers the Socket.IO service's
//! HTTP API. Every message shape comes from `relaywire-protocol`.
//!
//! ```no_run
//! # async fn run() -> Result<(), relaywire_chat_server::ServerError> {
//! use relaywire_chat_server::{Config, start};
//!
//! let server = start(Config::local("a-secret-of-sixteen-bytes")).await?;
//! println!("listening on ws://{}/ws", server.addr());
//! server.shutdown().await
//! # }
//! ```

mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod hub;
pub mod metrics;
mod rate_limit;
mod server;
pub mod shutdown;
pub mod store;
pub mod time;
mod ws;

pub use config::{Config, ConfigError};
pub use server::{RunningServer, ServerError, start};
pub use ws::FrameHarness;
