//! [`GatewayServer`]: an app served where a gateway holds the connections.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use relaywire_protocol::control::ClientControl;
use relaywire_protocol::{
    Ack, ClientEnvelope, ClientMessages, CloseCode, ErrorCode, ErrorPayload, PresenceChange,
    Protocol, Seq, Wire, decode_client_message,
};
use tokio::sync::watch;

use crate::ServerError;
use crate::app::{App, Failure};
use crate::auth::Identity;
use crate::bus::BusMessage;
use crate::config::Config;
use crate::connection::{Detached, Opening};
use crate::rate_limit::{Limits, RateLimiter};
use crate::relay::{Relay, encoded};
use crate::store::Store;

use super::bus::{CloseText, GatewayBus, PresenceText, closing_error, now_ms};
use super::{ConnectionTable, GATEWAY_PROTOCOL, Gateway, GatewayConnection, gateway_subprotocol};

/// How long a frame that arrived before its connection opened waits for the opening
/// (well within API Gateway's 29-second integration timeout).
const OPENING_WAIT: Duration = Duration::from_secs(5);

/// How often it looks.
const OPENING_POLL: Duration = Duration::from_millis(25);

/// Why a connection was refused at the handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRefused {
    /// The HTTP status the handshake is answered with.
    pub status: u16,
    /// Why, as the error the socket server would have sent.
    pub error: ErrorPayload,
}

/// An app served behind a gateway. Built once per process (a Lambda function's
/// instance) and used by every invocation.
pub struct GatewayServer<A: App> {
    app: Arc<A>,
    relay: Relay<A::Protocol>,
    table: Arc<dyn ConnectionTable>,
    gateway: Arc<dyn Gateway>,
    bus: Arc<GatewayBus>,
    _shutdown: watch::Sender<bool>,
}

impl<A: App> std::fmt::Debug for GatewayServer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayServer").finish_non_exhaustive()
    }
}

impl<A: App> GatewayServer<A> {
    /// The app over `store`, its connections in `table`, reached through `gateway`.
    /// Runs the app's `start`.
    pub async fn start(
        config: Config,
        app: A,
        store: Arc<dyn Store>,
        table: Arc<dyn ConnectionTable>,
        gateway: Arc<dyn Gateway>,
    ) -> Result<Self, ServerError> {
        let presence: PresenceText = Box::new(|user_id, online| {
            encoded(&<A::Protocol as Protocol>::Server::from(PresenceChange {
                user_id: user_id.to_owned(),
                online,
            }))
        });
        let announce: CloseText = Box::new(|code| {
            encoded(&<A::Protocol as Protocol>::Server::from(closing_error(
                code,
            )))
        });
        let bus = GatewayBus::new(
            Arc::clone(&store),
            Arc::clone(&table),
            Arc::clone(&gateway),
            presence,
            announce,
        );
        let (relay, shutdown) = Relay::on_gateway(config, store, Arc::clone(&bus));
        app.start(&relay).await?;
        bus.settle().await;
        Ok(Self {
            app: Arc::new(app),
            relay,
            table,
            gateway,
            bus,
            _shutdown: shutdown,
        })
    }

    /// The relay, for what the app does outside a message.
    pub fn relay(&self) -> &Relay<A::Protocol> {
        &self.relay
    }

    /// The HTTP API (the socket server's routes and the app's), on this server: what
    /// it sends goes through the gateway; [`GatewayServer::settle`] before answering.
    pub fn router(&self) -> axum::Router {
        crate::server::router(&self.relay, Arc::clone(&self.app))
    }

    /// Waits until everything sent so far reached the gateway: call before an
    /// invocation returns.
    pub async fn settle(&self) {
        self.bus.settle().await;
    }

    /// A connection opened (`$connect`): `identity` when the handshake carried a
    /// verified token (`None` when the client sends an `auth` message first),
    /// `offered` its `Sec-WebSocket-Protocol`. The subprotocol to answer with.
    pub async fn connect(
        &self,
        connection_id: &str,
        identity: Option<Identity>,
        offered: &str,
        resume_after: Option<Seq>,
    ) -> Result<&'static str, ConnectRefused> {
        let Some(subprotocol) = gateway_subprotocol(offered) else {
            return Err(ConnectRefused {
                status: 426,
                error: ErrorPayload::new(
                    ErrorCode::InvalidMessage,
                    "this server speaks relaywire.v4 and later: update the client",
                ),
            });
        };
        let now = now_ms();
        let connection = GatewayConnection {
            connection_id: connection_id.to_owned(),
            identity,
            resume_after,
            sent: None,
            connected_at_ms: now,
            last_activity_ms: now,
        };
        self.table
            .insert(connection)
            .await
            .map_err(|err| ConnectRefused {
                status: 503,
                error: Failure::from(err).0,
            })?;
        Ok(subprotocol)
    }

    /// A connection closed (`$disconnect`): it leaves the table, and when it was its
    /// user's last, their peers see them go offline.
    pub async fn disconnect(&self, connection_id: &str) {
        let connection = match self.table.get(connection_id.to_owned()).await {
            Ok(Some(connection)) => connection,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, connection_id, "reading a closed connection failed");
                return;
            }
        };
        if let Err(err) = self.table.remove(connection_id.to_owned()).await {
            tracing::warn!(error = %err, connection_id, "forgetting a closed connection failed");
        }
        tracing::info!(
            connection_id,
            user_id = connection.user_id(),
            "connection closed"
        );
        if connection.is_open()
            && let Some(user) = connection.user_id()
        {
            self.tell_presence(user, false).await;
        }
        self.settle().await;
    }

    /// Their peers learn that a user came online (their first connection) or went
    /// offline (their last).
    async fn tell_presence(&self, user: &str, online: bool) {
        let others = match self.table.of_user(user.to_owned()).await {
            Ok(connections) => connections.into_iter().filter(|c| c.is_open()).count(),
            Err(_) => return,
        };
        let alone = if online { others <= 1 } else { others == 0 };
        if !alone {
            return;
        }
        let rooms = self
            .relay
            .store()
            .user_rooms(user.to_owned())
            .await
            .unwrap_or_default();
        self.relay.bus().send(BusMessage::Presence {
            user: user.to_owned(),
            online,
            rooms,
            already: Vec::new(),
        });
    }

    /// A frame arrived on a connection (the `$default` route). Everything it causes
    /// has reached the gateway when this returns.
    pub async fn receive(&self, connection_id: &str, text: &str) {
        let connection = match self.table.get(connection_id.to_owned()).await {
            Ok(Some(connection)) => connection,
            Ok(None) => {
                // Not in the table (forgotten as gone, or past its row's lifetime): a
                // new connection starts clean.
                let error = closing_error(CloseCode::GoingAway);
                self.refuse(connection_id, error, CloseCode::GoingAway)
                    .await;
                return;
            }
            Err(err) => {
                // Nothing was read, nothing handled: the client sends it again after
                // reconnecting.
                self.refuse_for_store(connection_id, err).await;
                return;
            }
        };
        let connection = if connection.is_open() {
            if let Err(err) = self.table.touch(connection_id.to_owned(), now_ms()).await {
                tracing::warn!(error = %err, "noting a connection's activity failed");
            }
            Some(connection)
        } else {
            self.opening(connection, text).await
        };
        if let Some(connection) = connection {
            self.handle(connection, text).await;
        }
        self.settle().await;
    }

    /// A frame of a connection not open yet. The client's next frames may already be
    /// on their way in other invocations: one frame that can open the connection (any,
    /// when the handshake authenticated it; else only an `auth`) claims the opening and
    /// sends `connected`; the others wait until it is open, then are handled as usual.
    /// The connection when this frame still needs handling.
    async fn opening(
        &self,
        connection: GatewayConnection,
        text: &str,
    ) -> Option<GatewayConnection> {
        let connection_id = connection.connection_id.clone();
        let can_open = connection.identity.is_some() || is_auth(text);
        if can_open {
            match self.table.claim(connection_id.clone()).await {
                Ok(true) => return self.open(connection, text).await,
                Ok(false) => {}
                Err(err) => {
                    self.refuse_for_store(&connection_id, err).await;
                    return None;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + OPENING_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(OPENING_POLL).await;
            match self.table.get(connection_id.clone()).await {
                Ok(Some(connection)) if connection.is_open() => return Some(connection),
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(err) => {
                    self.refuse_for_store(&connection_id, err).await;
                    return None;
                }
            }
        }
        let (code, error) = if connection.identity.is_some() {
            (
                CloseCode::TryAgainLater,
                closing_error(CloseCode::TryAgainLater),
            )
        } else {
            let err = crate::auth::AuthError::Missing;
            let code = err.close_code(self.relay.config().auth_close_code);
            (code, ErrorPayload::new(err.code(), err.to_string()))
        };
        self.refuse(&connection_id, error, code).await;
        None
    }

    async fn refuse_for_store(&self, connection_id: &str, err: crate::store::StoreError) {
        let failure = Failure::from(err);
        let code = if failure.retry_later() {
            CloseCode::TryAgainLater
        } else {
            CloseCode::InternalError
        };
        self.refuse(connection_id, failure.0, code).await;
    }

    async fn post(&self, connection_id: &str, frame: String) -> bool {
        self.bus.post(connection_id, frame).await.is_ok()
    }

    async fn refuse(&self, connection_id: &str, error: ErrorPayload, code: CloseCode) {
        // The gateway's close cannot carry a code of ours: the error announces it.
        tracing::info!(connection_id, close_code = code.code(), reason = %error.message, "closing a connection");
        let error = error.closing(code);
        self.post(
            connection_id,
            encoded(&<A::Protocol as Protocol>::Server::from(error)),
        )
        .await;
        let _ = self.gateway.close(connection_id.to_owned()).await;
        let _ = self.table.remove(connection_id.to_owned()).await;
    }

    /// The client's first frame: authenticates it if the handshake did not, sends
    /// `connected` and the replay, and marks the connection open; then what happened
    /// meanwhile follows. The connection, when it opened and the frame still needs
    /// handling (an `auth` that opened it was its answer already, short of its `ack`).
    async fn open(
        &self,
        mut connection: GatewayConnection,
        text: &str,
    ) -> Option<GatewayConnection> {
        let config = self.relay.config().clone();
        let connection_id = connection.connection_id.clone();
        let decoded: Result<ClientEnvelope<<A::Protocol as Protocol>::Client>, _> =
            decode_client_message(text, &config.limits);
        let mut answered_auth = None;
        let identity = match connection.identity.clone() {
            Some(identity) => identity,
            None => {
                let (id, token) = match &decoded {
                    Ok(envelope) => match envelope.message.control() {
                        Some(ClientControl::Auth(auth)) => {
                            (envelope.id.clone(), Some(auth.token.clone()))
                        }
                        _ => (envelope.id.clone(), None),
                    },
                    Err(err) => (err.id().map(str::to_owned), None),
                };
                let verified = match token {
                    Some(token) => self.relay.verifier().verify(&token).await,
                    None => Err(crate::auth::AuthError::Missing),
                };
                match verified {
                    Ok(identity) => {
                        answered_auth = Some(id);
                        identity
                    }
                    Err(err) => {
                        self.relay.metrics().auth_failure(err.reason());
                        let code = err.close_code(config.auth_close_code);
                        let error = ErrorPayload::new(err.code(), err.to_string()).answering(id);
                        self.refuse(&connection_id, error, code).await;
                        return None;
                    }
                }
            }
        };
        if connection.identity.is_none() {
            // Known from now on: live messages reach it from here.
            connection.identity = Some(identity.clone());
            // The row written whole drops the claim: claimed again, or another
            // frame opens it.
            let written = match self.table.replace(connection.clone(), None).await {
                Ok(true) => self.table.claim(connection_id.clone()).await,
                Ok(false) => Ok(false),
                Err(err) => Err(err),
            };
            match written {
                Ok(true) => {}
                // Closed, or claimed by another frame, meanwhile.
                Ok(false) => return None,
                Err(err) => {
                    self.refuse_for_store(&connection_id, err).await;
                    return None;
                }
            }
        }
        let replay_limit = (config.outbound_queue / 2).max(1);
        let start = match self
            .relay
            .store()
            .open_session(
                identity.user_id.clone(),
                identity.name.clone(),
                connection.resume_after,
                replay_limit,
                Box::new(|_| {}),
            )
            .await
        {
            Ok(start) => start,
            Err(err) => {
                self.refuse_for_store(&connection_id, err).await;
                return None;
            }
        };
        let peers = self
            .relay
            .store()
            .peers(identity.user_id.clone())
            .await
            .unwrap_or_default();
        let online = self.relay.online_among(&peers).await;
        let opening = Opening {
            user_id: &identity.user_id,
            name: &identity.name,
            online,
            resume_after: connection.resume_after,
            wire: Wire::new(GATEWAY_PROTOCOL),
        };
        for frame in opening.frames::<<A::Protocol as Protocol>::Server>(&config, &start) {
            if !self.post(&connection_id, frame).await {
                return None;
            }
        }
        connection.identity = Some(identity.clone());
        connection.sent = Some(start.head);
        connection.last_activity_ms = now_ms();
        match self.table.replace(connection.clone(), None).await {
            Ok(true) => {}
            // Another frame opened it first (or it closed): that one sent `connected`.
            Ok(false) => {
                return match self.table.get(connection_id.clone()).await {
                    Ok(Some(connection)) if connection.is_open() && answered_auth.is_none() => {
                        Some(connection)
                    }
                    _ => None,
                };
            }
            Err(err) => {
                self.refuse_for_store(&connection_id, err).await;
                return None;
            }
        }
        tracing::info!(
            connection_id = %connection_id,
            user_id = %identity.user_id,
            head = start.head.get(),
            replayed = start.missed.len(),
            "connection opened"
        );
        // What was stored while it opened: events its mark did not cover yet.
        self.bus.deliver(connection.clone(), None, None).await;
        self.tell_presence(&identity.user_id, true).await;
        match answered_auth {
            Some(id) => {
                if let Some(id) = id {
                    self.post(
                        &connection_id,
                        encoded(&<A::Protocol as Protocol>::Server::from(Ack {
                            id,
                            message_id: None,
                        })),
                    )
                    .await;
                }
                None
            }
            None => Some(connection),
        }
    }

    /// Handles a frame of an open connection, as the socket server's read loop does.
    async fn handle(&self, connection: GatewayConnection, text: &str) {
        let Some(identity) = connection.identity.clone() else {
            return;
        };
        let connection_id = connection.connection_id.clone();
        if identity
            .expires_at
            .is_some_and(|expires_at| expires_at <= SystemTime::now())
            && !is_auth(text)
        {
            let error = ErrorPayload::new(
                ErrorCode::AuthFailed,
                "token expired: send a fresh token in an auth message",
            );
            self.refuse(&connection_id, error, CloseCode::TokenExpired)
                .await;
            return;
        }
        let config = self.relay.config();
        // Nothing outlives the invocation to count a rate: API Gateway's route
        // throttling is the limit here.
        let unlimited = || RateLimiter::new(u32::MAX, u32::MAX);
        let limits = Limits::new(unlimited(), Arc::new(Mutex::new(unlimited())));
        let (replies, queue) = tokio::sync::mpsc::channel(config.outbound_queue);
        let close = Arc::new(watch::channel(None).0);
        let mut detached = Detached::new(
            Arc::clone(&self.app),
            self.relay.clone(),
            identity.clone(),
            (0, Wire::new(GATEWAY_PROTOCOL)),
            limits,
            (replies, queue),
            close,
        );
        let closing = detached.frame(text).await;
        // The events it stored reach their recipients, the sender's copy included,
        // before its answers.
        self.settle().await;
        for frame in detached.drain() {
            if !self.post(&connection_id, frame).await {
                return;
            }
        }
        if detached.identity() != &identity {
            // Only the identity: a delivery may have moved the row's mark meanwhile.
            match self
                .table
                .renew(connection_id.clone(), detached.identity().clone())
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::debug!(connection_id, "renewed a connection that is gone"),
                Err(err) => tracing::warn!(error = %err, "recording a renewed token failed"),
            }
        }
        if let Some(code) = closing {
            tracing::info!(
                connection_id,
                close_code = code.code(),
                "closing a connection"
            );
            self.refuse(&connection_id, closing_error(code), code).await;
        }
    }
}

/// Whether a frame is an `auth` message, the one an expired connection may still send.
fn is_auth(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|value| value.get("type").and_then(|kind| kind.as_str()) == Some("auth"))
}
