//! The reference server, started for real on 127.0.0.1 and driven over real sockets.
//! One test binary, one module per area.

mod support;

mod auth;
mod chat;
mod delivery;
mod http_api;
mod lifecycle;
mod regressions;
mod robustness;
mod verifiers;
mod version3;
