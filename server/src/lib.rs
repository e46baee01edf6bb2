#![doc = include_str!("../README.md")]

mod accept;
mod app;
mod auth;
mod bus;
mod cluster;
pub mod config;
mod connection;
pub mod gateway;
pub mod http;
mod hub;
mod main_support;
mod metrics;
mod origin;
mod rate_limit;
mod relay;
mod server;
mod shutdown;
mod statics;
pub mod store;
mod time;

pub use app::{Answer, App, Client, Context, Failure, Server};
pub use auth::Identity;
pub use bus::{Bus, BusMessage};
pub use config::{Config, ConfigError};
pub use connection::FrameHarness;
pub use hub::{Origin, Reach};
pub use main_support::run;
pub use relay::{Event, Relay};
pub use server::{RunningServer, ServerError, start};
pub use time::{now_rfc3339, rfc3339};
