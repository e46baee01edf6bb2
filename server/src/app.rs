//! What an app writes: an [`App`], whose `handle` says what each of its client messages
//! does, through the [`Context`] it is given.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use relaywire_protocol::http::{ApiError, NotifyUser};
use relaywire_protocol::{DecodeErrorKind, ErrorCode, ErrorPayload, Protocol, ServerMessages};
use tokio::sync::watch;

use crate::auth::{AuthError, Identity};
use crate::relay::{Answering, Event, Relay, answered};
use crate::store::{AnswerKey, Published, StoreError, StoreResult};

/// A protocol's client messages.
pub type Client<A> = <<A as App>::Protocol as Protocol>::Client;
/// A protocol's server messages.
pub type Server<A> = <<A as App>::Protocol as Protocol>::Server;

/// An application on the server library: its protocol, and what each of its client
/// messages does. The library does everything else: authentication, the control
/// messages, deduplication of durable messages, numbering and replay, fan-out,
/// presence, ephemeral states, limits, and the admin HTTP API.
pub trait App: Send + Sync + 'static {
    /// The app's protocol, from its catalogue.
    type Protocol: Protocol;

    /// Handles one client message of the protocol's own types (never `auth` or
    /// `ping`, which the library answers). `Ok` is acknowledged when the message had
    /// an id; `Err` is answered with its `error`.
    ///
    /// A durable message (its catalogue line says `durable`) reaches `handle` once per
    /// client id: a message sent again is answered with the first answer. Events it
    /// publishes through `ctx` are stored in the same transaction as that record.
    fn handle(
        &self,
        ctx: Context<Self::Protocol>,
        message: Client<Self>,
    ) -> impl Future<Output = Result<Answer, Failure>> + Send;

    /// Runs once before the server accepts connections: seeding data, say.
    fn start(&self, relay: &Relay<Self::Protocol>) -> impl Future<Output = StoreResult<()>> + Send {
        let _ = relay;
        async { Ok(()) }
    }

    /// The app's own HTTP routes, merged with the library's.
    fn routes(&self) -> Router<Relay<Self::Protocol>> {
        Router::new()
    }

    /// Whether an admin may push this message through the HTTP API. By default, any
    /// live message of the app's own (not a control message, not a numbered event).
    fn pushable(&self, message: &Server<Self>) -> bool {
        use relaywire_protocol::Messages as _;
        let policy = Server::<Self>::TYPES
            .iter()
            .zip(<Server<Self> as ServerMessages>::POLICIES)
            .find(|(name, _)| **name == message.type_name());
        message.control().is_none()
            && message.as_unknown().is_none()
            && policy.is_some_and(|(_, policy)| !policy.numbered)
    }

    /// The message `POST /api/notifications` sends, when the app has notifications.
    fn notification(&self, notify: NotifyUser) -> Option<Server<Self>> {
        let _ = notify;
        None
    }
}

/// What a handled message is acknowledged with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The id of what the message created (the `ack`'s `messageId`).
    pub message_id: Option<String>,
}

impl Answer {
    /// A plain acknowledgement.
    pub fn ok() -> Self {
        Self::default()
    }

    /// An acknowledgement naming what the message created.
    pub fn created(id: impl Into<String>) -> Self {
        Self {
            message_id: Some(id.into()),
        }
    }
}

/// A refusal: the `error` a client message is answered with, or an HTTP API error
/// (the body `{"error": {...}}` with the status of its code).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure(pub ErrorPayload, pub(crate) Retry);

/// Whether what failed may succeed if the client sends it again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Retry {
    /// No: the answer stands.
    #[default]
    Final,
    /// Yes: nothing was stored (the store is unavailable); the client keeps the
    /// message and sends it again after reconnecting.
    Later,
}

impl Failure {
    /// A failure with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorPayload::new(code, message), Retry::Final)
    }

    /// A final failure with this payload.
    pub(crate) fn from_payload(payload: ErrorPayload) -> Self {
        Self(payload, Retry::Final)
    }

    /// Whether the client should send the message again later rather than take this
    /// as its answer.
    pub(crate) fn retry_later(&self) -> bool {
        self.1 == Retry::Later
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.0.code
    }

    /// For a message of a type the app does not handle (the control messages, which
    /// never reach `handle`, or a type it chose to refuse).
    pub fn unsupported() -> Self {
        Self::new(
            ErrorCode::InvalidMessage,
            "this server does not handle that message type",
        )
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        if err.code() == ErrorCode::InternalError {
            tracing::error!(error = %err, "store operation failed");
        }
        let retry = if err.is_transient() {
            Retry::Later
        } else {
            Retry::Final
        };
        Self(ErrorPayload::new(err.code(), err.public_message()), retry)
    }
}

impl From<AuthError> for Failure {
    fn from(err: AuthError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

impl From<DecodeErrorKind> for Failure {
    fn from(kind: DecodeErrorKind) -> Self {
        Self::new(kind.code(), kind.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ApiError { error: self.0 })).into_response()
    }
}

/// Everything `handle` needs about the message it handles: who sent it, and the relay
/// to act through.
pub struct Context<P: Protocol> {
    relay: Relay<P>,
    user: Identity,
    answer_key: Option<AnswerKey>,
    answered: Arc<AtomicBool>,
    /// For a protocol 3 connection's message with an id: its first publish's copy
    /// carries its acknowledgement.
    answering: std::sync::Mutex<Option<Answering>>,
    turn: Turn,
}

/// A message's place in its connection's line: its publishes reach the store after
/// those of the messages read before it, so a client's messages are stored in the
/// order sent, while their handlers still run side by side.
#[derive(Debug)]
pub(crate) struct Turn {
    /// Done once the message ahead has handed its events to the store in order, or
    /// has ended (its sender dropped).
    ahead: std::sync::Mutex<Option<watch::Receiver<bool>>>,
    /// Tells the message behind that this one has.
    done: watch::Sender<bool>,
}

impl Turn {
    /// The next place after `last` (the connection's end of the line), which it
    /// becomes.
    pub(crate) fn after(last: &mut Option<watch::Receiver<bool>>) -> Self {
        let (done, mine) = watch::channel(false);
        Self {
            ahead: std::sync::Mutex::new(last.replace(mine)),
            done,
        }
    }

    async fn wait(&self) {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mut ahead) = ahead {
            let _ = ahead.wait_for(|done| *done).await;
        }
    }

    fn pass(&self) {
        self.done.send_replace(true);
    }
}

impl<P: Protocol> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("user", &self.user.user_id)
            .field("answer_key", &self.answer_key)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Context<P> {
    /// A context for `user`'s message; a durable message with an id is keyed by it.
    pub(crate) fn new(
        relay: Relay<P>,
        user: Identity,
        answer_key: Option<AnswerKey>,
        answering: Option<Answering>,
        turn: Turn,
    ) -> (Self, Arc<AtomicBool>) {
        let answered = Arc::new(AtomicBool::new(false));
        let context = Self {
            relay,
            user,
            answer_key,
            answered: Arc::clone(&answered),
            answering: std::sync::Mutex::new(answering),
            turn,
        };
        (context, answered)
    }

    /// Who sent the message.
    pub fn user(&self) -> &Identity {
        &self.user
    }

    /// The relay, for everything else.
    pub fn relay(&self) -> &Relay<P> {
        &self.relay
    }

    /// Publishes an event as [`Relay::publish`] does; for a durable message, in the
    /// same transaction as the record that deduplicates it. When the message was
    /// handled before, nothing new is stored and [`Published::Duplicate`] carries the
    /// first answer.
    pub async fn publish(&self, event: Event<P::Server>) -> StoreResult<Published> {
        let key = if self.answered.load(Ordering::Relaxed) {
            None
        } else {
            self.answer_key.clone()
        };
        let keyed = key.is_some();
        let answering = self
            .answering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            // The test hook that withholds acknowledgements withholds these too.
            .filter(|_| !self.relay.acks_paused());
        self.turn.wait().await;
        let stored = self.relay.publish_keyed(event, key, answering);
        // A store that commits in the order it is handed events (SQLite) lets the
        // next message go on now; one that commits concurrently, once this commits.
        if self.relay.store().orders_follow_ups() {
            self.turn.pass();
        }
        let published = stored.await;
        self.turn.pass();
        let published = published?;
        if keyed && !matches!(published, Published::CursorUnchanged(_)) {
            self.answered.store(true, Ordering::Relaxed);
        }
        Ok(published)
    }
}

/// The answer a publish gives, for an `ack`: the event's id, or the first answer of a
/// duplicate.
impl From<&Published> for Answer {
    fn from(published: &Published) -> Self {
        Self {
            message_id: answered(published),
        }
    }
}
