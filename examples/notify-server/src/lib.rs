//! A user-messaging and notification service on Relaywire's server library: the
//! Socket.IO service's direct messages, multi-user messages, broadcasts, notifications
//! and custom events, and its HTTP API under `/websocket/`, with one connection per user.
//!
//! Unlike the service it replaces, every message and notification is stored and numbered
//! before it is delivered: a user who is offline gets it when they come back, and a
//! resent message is stored once. The library does that; this crate declares the
//! messages and says what each does.
//!
//! ```no_run
//! # async fn run() -> Result<(), relaywire_server::ServerError> {
//! use relaywire_notify_server::{NotifyApp, single_connection};
//! use relaywire_server::Config;
//!
//! let mut config = Config::local("a-secret-of-sixteen-bytes");
//! single_connection(&mut config);
//! let server = relaywire_server::start(config, NotifyApp).await?;
//! println!("listening on ws://{}/ws", server.addr());
//! server.shutdown().await
//! # }
//! ```

pub mod http;

use relaywire_protocol::{
    DecodeErrorKind, Limits, Seq, Validate, catalogue, check_id, check_ids, numbered,
};
use relaywire_server::config::{ConnectionPolicy, Env};
use relaywire_server::{Answer, App, Config, Context, Event, Failure, Relay, now_rfc3339};
use serde::{Deserialize, Serialize};

catalogue! {
    /// The notification service's protocol.
    pub protocol NotifyProtocol;

    /// What a client of the service sends.
    pub client NotifyClient {
        /// A message of the app's own `type` to one or more users; stored once, however
        /// often it is sent.
        "message:send" => SendMessage(SendMessage) as durable,
    }

    /// What the service sends.
    pub server NotifyServer {
        /// A message from a user or a service, of the app's own `type`.
        "message" => Message(UserMessage) as numbered,
        /// A notification: a title and a body.
        "notification" => Notification(Notification) as numbered,
        /// An announcement from the operators to everyone connected.
        "system" => System(SystemMessage) as live,
    }
}

/// The most recipients one message may name.
pub const MAX_RECIPIENTS: usize = 100;

/// Payload of `message:send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    /// The recipients' user ids: one to [`MAX_RECIPIENTS`].
    pub to: Vec<String>,
    /// The app's own message type (`chat`, `invite`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// The app's data, any JSON (`null` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
}

impl Validate for SendMessage {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_ids("to", &self.to, MAX_RECIPIENTS, limits)?;
        check_id("type", &self.kind, limits)
    }
}

/// Payload of `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct UserMessage {
    /// The message's id, the server's.
    pub id: String,
    /// The sender's user id; absent when a service sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The app's own message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The app's data, any JSON.
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: serde_json::Value,
    /// When it was stored (RFC 3339).
    pub timestamp: String,
    /// Its number in the receiver's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

numbered!(UserMessage);

/// Payload of `notification`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The notification's id.
    pub id: String,
    /// Short title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// The app's data, any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "typescript", ts(type = "unknown"))]
    pub data: Option<serde_json::Value>,
    /// When it was stored (RFC 3339).
    pub timestamp: String,
    /// Its number in the receiver's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

numbered!(Notification);

/// How serious a system message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// For information.
    Info,
    /// Something to be aware of.
    Warning,
    /// Something is wrong.
    Error,
}

/// Payload of `system`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct SystemMessage {
    /// What to tell users.
    pub message: String,
    /// How serious it is.
    pub level: Level,
    /// When it was sent (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The service: what `message:send` does, and the HTTP API under `/websocket/`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotifyApp;

/// The service's default: one connection per user, as the Socket.IO service keeps (a
/// new connection closes the older with 4003). `CONNECTION_POLICY=multiple` overrides it.
pub fn single_connection(config: &mut Config) {
    config.connection_policy = ConnectionPolicy::Single;
}

/// Applies the service's defaults where the operator set nothing.
pub fn apply_defaults(env: &Env, config: &mut Config) {
    if env.get("CONNECTION_POLICY").is_none() {
        single_connection(config);
    }
}

/// A message to store for its recipients (each once) and deliver to those online.
/// `from` is the sending user, `None` for a service.
pub(crate) fn message_event(
    from: Option<&str>,
    mut to: Vec<String>,
    kind: String,
    data: Option<serde_json::Value>,
) -> Event<NotifyServer> {
    to.sort();
    to.dedup();
    let id = uuid::Uuid::now_v7().to_string();
    let message = UserMessage {
        id: id.clone(),
        from: from.map(str::to_owned),
        kind,
        data: data.unwrap_or_default(),
        timestamp: now_rfc3339(),
        seq: None,
    };
    let event = Event::to_users(to, id, message);
    match from {
        Some(user) => event.from(user),
        None => event,
    }
}

impl App for NotifyApp {
    type Protocol = NotifyProtocol;

    async fn handle(
        &self,
        ctx: Context<NotifyProtocol>,
        message: NotifyClient,
    ) -> Result<Answer, Failure> {
        match message {
            NotifyClient::SendMessage(send) => {
                let event = message_event(Some(&ctx.user().user_id), send.to, send.kind, send.data);
                Ok(Answer::from(&ctx.publish(event).await?))
            }
            NotifyClient::Auth(_) | NotifyClient::Ping(_) => Err(Failure::unsupported()),
        }
    }

    fn routes(&self) -> axum::Router<Relay<NotifyProtocol>> {
        http::routes()
    }
}

/// The service's TypeScript (`bindings/notify.ts`).
#[cfg(feature = "typescript")]
pub fn typescript() -> String {
    relaywire_protocol::typescript::Bindings::of::<NotifyProtocol>()
        .with::<http::SendToUser>()
        .with::<http::SendToUsers>()
        .with::<http::BroadcastMessage>()
        .with::<relaywire_protocol::http::NotifyUser>()
        .with::<http::Sent>()
        .render()
}
