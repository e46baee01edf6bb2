//! Serving connections that a gateway holds (an API Gateway WebSocket API): the
//! server keeps no socket and nothing between invocations. The gateway tells it that a
//! connection opened ([`GatewayServer::connect`]), sent a frame
//! ([`GatewayServer::receive`]) or closed ([`GatewayServer::disconnect`]); the server
//! answers through the gateway's API ([`Gateway`]), and remembers each connection in a
//! table ([`ConnectionTable`]) that every invocation shares.
//!
//! The guarantees are the socket server's: nothing is delivered or acknowledged before
//! it is stored, and every connection receives its user's events in order with no gap.
//! Invocations run side by side, so each connection's row says which event it was
//! sent last; an invocation sends a connection only what follows that, read from the
//! store when it lies further back than the event at hand, and moves the mark on only
//! if no other invocation moved it meanwhile. What two invocations both sent arrives
//! twice, and the client drops the second copy by its number.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use relaywire_protocol::control::ClientControl;
use relaywire_protocol::http::UserStatus;
use relaywire_protocol::{
    Ack, ClientEnvelope, ClientMessages, CloseCode, ErrorCode, ErrorPayload, PresenceChange,
    Protocol, SUPPORTED_SUBPROTOCOLS, Seq, Wire, decode_client_message,
};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ServerError;
use crate::app::{App, Failure};
use crate::auth::{Identity, Verifier, token_from_cookies};
use crate::bus::{Bus, BusMessage};
use crate::config::Config;
use crate::connection::{Detached, Opening};
use crate::hub::Reach;
use crate::rate_limit::{Limits, RateLimiter};
use crate::relay::{Relay, encoded};
use crate::store::{Store, StoreResult, with_seq};
use crate::time::rfc3339;

/// How many times a delivery reads a connection's mark again after another invocation
/// moved it first.
const DELIVERY_ATTEMPTS: usize = 8;

/// The pauses before a throttled post is tried again.
const THROTTLED_PAUSES: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(400),
];

/// How long a frame that arrived before its connection opened waits for the opening
/// (well within API Gateway's 29-second integration timeout).
const OPENING_WAIT: Duration = Duration::from_secs(5);

/// How often it looks.
const OPENING_POLL: Duration = Duration::from_millis(25);

/// The protocol version a gateway's connections speak: the first in which the client
/// sends first, since a gateway cannot send before the client has.
pub const GATEWAY_PROTOCOL: u32 = 4;

/// One connection the gateway holds, as its table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConnection {
    /// The gateway's id for it.
    pub connection_id: String,
    /// Who it is: known at connect when the handshake carried a token, else once its
    /// `auth` message is verified.
    pub identity: Option<Identity>,
    /// Where the client asked to resume (`?resume=`).
    pub resume_after: Option<Seq>,
    /// The number of the last event it was sent; `None` until `connected` was sent
    /// (on the client's first message).
    pub sent: Option<Seq>,
    /// When it connected, in milliseconds since the epoch.
    pub connected_at_ms: u64,
    /// When it last sent something, in milliseconds since the epoch.
    pub last_activity_ms: u64,
}

impl GatewayConnection {
    /// Whether `connected` was sent on it, so events may follow.
    pub fn is_open(&self) -> bool {
        self.sent.is_some() && self.identity.is_some()
    }

    fn user_id(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .map(|identity| identity.user_id.as_str())
    }
}

/// The table of connections every invocation shares (DynamoDB's, on AWS).
pub trait ConnectionTable: Send + Sync + 'static {
    /// Records a new connection.
    fn insert(&self, connection: GatewayConnection) -> BoxFuture<'static, StoreResult<()>>;

    /// A connection, if it is recorded.
    fn get(
        &self,
        connection_id: String,
    ) -> BoxFuture<'static, StoreResult<Option<GatewayConnection>>>;

    /// Forgets a connection.
    fn remove(&self, connection_id: String) -> BoxFuture<'static, StoreResult<()>>;

    /// Every connection of a user.
    fn of_user(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>>;

    /// Every connection.
    fn all(&self) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>>;

    /// Replaces a connection's row with `connection`, only if it is still recorded and
    /// its `sent` is still `expected`; whether it did.
    fn replace(
        &self,
        connection: GatewayConnection,
        expected: Option<Seq>,
    ) -> BoxFuture<'static, StoreResult<bool>>;

    /// Claims the opening of a connection (marks it, if no invocation did): whether
    /// this invocation has it.
    fn claim(&self, connection_id: String) -> BoxFuture<'static, StoreResult<bool>>;

    /// Notes that a connection sent something now.
    fn touch(&self, connection_id: String, at_ms: u64) -> BoxFuture<'static, StoreResult<()>>;
}

/// Why the gateway did not take a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The connection is gone (API Gateway's 410).
    #[error("the connection is gone")]
    Gone,
    /// The gateway is throttling (API Gateway's `LimitExceededException`): what was
    /// not sent stays in the store for the client's resume.
    #[error("the gateway is throttling")]
    Throttled,
    /// Anything else.
    #[error("the gateway failed: {0}")]
    Failed(String),
}

/// The gateway's API: what reaches its connections (API Gateway's Management API).
pub trait Gateway: Send + Sync + 'static {
    /// Sends one text frame to a connection.
    fn post(
        &self,
        connection_id: String,
        frame: String,
    ) -> BoxFuture<'static, Result<(), PostError>>;

    /// Closes a connection.
    fn close(&self, connection_id: String) -> BoxFuture<'static, Result<(), PostError>>;
}

/// A presence frame of the protocol: user, online.
type PresenceText = Box<dyn Fn(&str, bool) -> String + Send + Sync>;

/// The `error` frame of the protocol that announces a close.
type CloseText = Box<dyn Fn(CloseCode) -> String + Send + Sync>;

/// The error that announces a close the server decided, where nothing else said why.
fn closing_error(code: CloseCode) -> ErrorPayload {
    let error_code = match code {
        CloseCode::AuthFailed | CloseCode::TokenExpired | CloseCode::PolicyViolation => {
            ErrorCode::AuthFailed
        }
        CloseCode::RateLimited => ErrorCode::RateLimited,
        CloseCode::MessageTooBig => ErrorCode::MessageTooLarge,
        CloseCode::Kicked | CloseCode::SessionReplaced => ErrorCode::Forbidden,
        _ => ErrorCode::InternalError,
    };
    ErrorPayload::new(error_code, code.reason()).closing(code)
}

/// The bus behind a gateway: every message is looked up in the connection table and
/// posted to the connections it reaches, by tasks the invocation waits for
/// ([`GatewayBus::settle`]) before it ends.
pub(crate) struct GatewayBus {
    store: Arc<dyn Store>,
    table: Arc<dyn ConnectionTable>,
    gateway: Arc<dyn Gateway>,
    presence: PresenceText,
    /// The `error` that announces a close.
    announce: CloseText,
    in_flight: Mutex<JoinSet<()>>,
    /// Itself, for the tasks it spawns.
    me: Weak<GatewayBus>,
}

impl std::fmt::Debug for GatewayBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBus").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl GatewayBus {
    /// Waits until everything sent so far has reached the gateway (or failed).
    pub(crate) async fn settle(&self) {
        loop {
            let mut tasks = std::mem::take(
                &mut *self
                    .in_flight
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            if tasks.is_empty() {
                return;
            }
            while let Some(done) = tasks.join_next().await {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::error!(error = %err, "a delivery to the gateway panicked");
                }
            }
        }
    }

    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .spawn(work);
    }

    /// Statuses of these users (everyone connected, when `None`), from the table.
    pub(crate) async fn statuses(&self, users: Option<&[String]>) -> StoreResult<Vec<UserStatus>> {
        let connections = match users {
            Some(users) => {
                let mut all = Vec::new();
                for user in users {
                    all.extend(self.table.of_user(user.clone()).await?);
                }
                all
            }
            None => self.table.all().await?,
        };
        let mut statuses: Vec<UserStatus> = match users {
            Some(users) => users
                .iter()
                .map(|user| UserStatus {
                    user_id: user.clone(),
                    online: false,
                    connections: 0,
                    connected_since: None,
                })
                .collect(),
            None => Vec::new(),
        };
        let mut oldest: Vec<(String, u64)> = Vec::new();
        for connection in connections.iter().filter(|c| c.is_open()) {
            let Some(user) = connection.user_id() else {
                continue;
            };
            let status = match statuses.iter_mut().find(|status| status.user_id == user) {
                Some(status) => status,
                None => {
                    statuses.push(UserStatus {
                        user_id: user.to_owned(),
                        online: false,
                        connections: 0,
                        connected_since: None,
                    });
                    statuses.last_mut().expect("just pushed")
                }
            };
            status.online = true;
            status.connections += 1;
            match oldest.iter_mut().find(|(u, _)| u == user) {
                Some((_, at)) => *at = (*at).min(connection.connected_at_ms),
                None => oldest.push((user.to_owned(), connection.connected_at_ms)),
            }
        }
        for (user, at) in oldest {
            if let Some(status) = statuses.iter_mut().find(|status| status.user_id == user) {
                status.connected_since = Some(rfc3339(UNIX_EPOCH + Duration::from_millis(at)));
            }
        }
        Ok(statuses)
    }

    /// The open connections of these users.
    async fn open_connections(&self, users: &[String]) -> Vec<GatewayConnection> {
        let mut connections = Vec::new();
        for user in users {
            match self.table.of_user(user.clone()).await {
                Ok(found) => connections.extend(found.into_iter().filter(|c| c.is_open())),
                Err(err) => {
                    tracing::warn!(error = %err, user_id = %user, "reading a user's connections failed")
                }
            }
        }
        connections
    }

    /// Posts one frame; a connection that is gone leaves the table. A throttled post
    /// is tried again after a pause, a few times: throttling is backpressure, and what
    /// still does not go stays stored for the next delivery or the client's resume.
    async fn post(&self, connection_id: &str, frame: String) -> Result<(), PostError> {
        let mut posted = self
            .gateway
            .post(connection_id.to_owned(), frame.clone())
            .await;
        for pause in THROTTLED_PAUSES {
            if posted != Err(PostError::Throttled) {
                break;
            }
            tokio::time::sleep(pause).await;
            posted = self
                .gateway
                .post(connection_id.to_owned(), frame.clone())
                .await;
        }
        match &posted {
            Ok(()) => {}
            Err(PostError::Gone) => {
                tracing::info!(connection_id, "the gateway says the connection is gone");
                if let Err(err) = self.table.remove(connection_id.to_owned()).await {
                    tracing::warn!(error = %err, connection_id, "forgetting a gone connection failed");
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, connection_id, "the gateway did not take a frame");
            }
        }
        posted
    }

    async fn post_all(&self, connections: Vec<GatewayConnection>, frame: &str) {
        let posts = connections
            .iter()
            .map(|connection| self.post(&connection.connection_id, frame.to_owned()));
        futures_util::future::join_all(posts).await;
    }

    /// Sends a connection its user's events after its mark, up to `up_to` (all there
    /// are, when `None`); `known` is the frame (without `seq`) of event `up_to`, so
    /// the usual case, the next event, needs no store read.
    async fn deliver(
        &self,
        mut connection: GatewayConnection,
        up_to: Option<Seq>,
        known: Option<&str>,
    ) {
        for _ in 0..DELIVERY_ATTEMPTS {
            let (Some(sent), Some(user_id)) = (connection.sent, connection.user_id()) else {
                // Not open yet: its opening sends what it missed.
                return;
            };
            if up_to.is_some_and(|up_to| sent >= up_to) {
                return;
            }
            let frames = match (up_to, known) {
                (Some(up_to), Some(frame)) if sent.get() + 1 == up_to.get() => {
                    vec![(up_to, with_seq(frame, up_to))]
                }
                _ => {
                    let last = up_to.unwrap_or(Seq::new(Seq::MAX).unwrap_or(sent));
                    match self
                        .store
                        .events_between(user_id.to_owned(), sent, last)
                        .await
                    {
                        Ok(frames) => frames,
                        Err(err) => {
                            // The next delivery, or the client's resume, sends them.
                            tracing::warn!(error = %err, "reading missed events failed");
                            return;
                        }
                    }
                }
            };
            let Some(&(last, _)) = frames.last() else {
                return;
            };
            for (_, frame) in frames {
                if self.post(&connection.connection_id, frame).await.is_err() {
                    // Not moving the mark: the next delivery starts from it again.
                    return;
                }
            }
            let expected = connection.sent;
            connection.sent = Some(last);
            match self.table.replace(connection.clone(), expected).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "moving a connection's mark failed");
                    return;
                }
            }
            // Another invocation sent it something meanwhile: start from its mark.
            connection = match self.table.get(connection.connection_id.clone()).await {
                Ok(Some(connection)) => connection,
                _ => return,
            };
        }
        tracing::warn!(
            connection_id = %connection.connection_id,
            "gave up delivering after other invocations kept moving the mark; the next delivery sends the rest"
        );
    }

    async fn apply(self: Arc<Self>, message: BusMessage) {
        match message {
            BusMessage::Event {
                recipients, frame, ..
            } => {
                let deliveries = recipients.into_iter().map(|(user, seq)| {
                    let frame = Arc::clone(&frame);
                    let bus = Arc::clone(&self);
                    async move {
                        for connection in bus.open_connections(&[user]).await {
                            bus.deliver(connection, Some(seq), Some(&frame)).await;
                        }
                    }
                });
                futures_util::future::join_all(deliveries).await;
            }
            BusMessage::ToUsers { users, frame } => {
                let connections = self.open_connections(&users).await;
                self.post_all(connections, &frame).await;
            }
            BusMessage::ToRoom {
                room,
                frame,
                except,
            } => {
                let members = match self.store.room(room.clone()).await {
                    Ok(room) => room.members,
                    Err(err) => {
                        tracing::warn!(error = %err, room_id = %room, "reading a room's members failed");
                        return;
                    }
                };
                let members: Vec<String> = members
                    .into_iter()
                    .filter(|member| Some(member.as_str()) != except.as_deref())
                    .collect();
                let connections = self.open_connections(&members).await;
                self.post_all(connections, &frame).await;
            }
            BusMessage::Broadcast { frame } => {
                let connections = match self.table.all().await {
                    Ok(all) => all.into_iter().filter(|c| c.is_open()).collect(),
                    Err(err) => {
                        tracing::warn!(error = %err, "reading the connections failed");
                        return;
                    }
                };
                self.post_all(connections, &frame).await;
            }
            // Membership is the store's: every delivery reads it there.
            BusMessage::Joined { .. } | BusMessage::Left { .. } | BusMessage::CatchUp => {}
            BusMessage::CloseUser { user, code } => {
                // The gateway's close carries no code of ours: the error before it
                // names it.
                let frame = (self.announce)(code);
                for connection in self.open_connections(&[user]).await {
                    let _ = self.post(&connection.connection_id, frame.clone()).await;
                    let closed = self.gateway.close(connection.connection_id.clone()).await;
                    if let Err(err) = closed
                        && err != PostError::Gone
                    {
                        tracing::warn!(error = %err, "closing a connection failed");
                    }
                }
            }
            BusMessage::Presence {
                user,
                online,
                rooms,
                already,
            } => {
                let told = self.presence_audience(&user, &rooms, &already).await;
                let frame = (self.presence)(&user, online);
                let connections = self.open_connections(&told).await;
                self.post_all(connections, &frame).await;
            }
        }
    }

    /// The members of `rooms` but `user` and the members of `already`.
    async fn presence_audience(
        &self,
        user: &str,
        rooms: &[String],
        already: &[String],
    ) -> Vec<String> {
        let mut knew = Vec::new();
        for room in already {
            if let Ok(room) = self.store.room(room.clone()).await {
                knew.extend(room.members);
            }
        }
        let mut told = Vec::new();
        for room in rooms {
            if let Ok(room) = self.store.room(room.clone()).await {
                told.extend(room.members);
            }
        }
        told.sort();
        told.dedup();
        told.retain(|member| member != user && !knew.contains(member));
        told
    }
}

impl Bus for GatewayBus {
    fn send(&self, message: BusMessage) -> Reach {
        // The gateway counts nothing back; the HTTP API asks the table for the reach.
        if let Some(me) = self.me.upgrade() {
            me.spawn(Arc::clone(&me).apply(message));
        }
        Reach::default()
    }
}

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

/// The subprotocol of [`GATEWAY_PROTOCOL`], if the client offered it: older versions
/// wait for the server to speak first, which a gateway cannot.
pub fn gateway_subprotocol(offered: &str) -> Option<&'static str> {
    let wanted = SUPPORTED_SUBPROTOCOLS
        .iter()
        .find(|name| Wire::negotiated(Some(name)).version() == GATEWAY_PROTOCOL)?;
    offered
        .split(',')
        .map(str::trim)
        .any(|name| name == *wanted)
        .then_some(*wanted)
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
        let bus = Arc::new_cyclic(|me| GatewayBus {
            store: Arc::clone(&store),
            table: Arc::clone(&table),
            gateway: Arc::clone(&gateway),
            presence,
            announce: Box::new(|code| {
                encoded(&<A::Protocol as Protocol>::Server::from(closing_error(
                    code,
                )))
            }),
            in_flight: Mutex::new(JoinSet::new()),
            me: me.clone(),
        });
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
            let mut renewed = connection.clone();
            renewed.identity = Some(detached.identity().clone());
            if let Err(err) = self.table.replace(renewed, connection.sent).await {
                tracing::warn!(error = %err, "recording a renewed token failed");
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

/// Verifies the token of a gateway's handshake, for its authorizer: the query's
/// `token`, then `Authorization: Bearer`, then the configured cookies (only from the
/// site's own origin or one `CORS_ORIGIN` names); none (or the client saying
/// `?auth=message`) means the client authenticates by message. A page of an origin
/// not allowed is refused, as by the socket server.
#[derive(Debug)]
pub struct HandshakeVerifier {
    verifier: Verifier,
    cookies: Vec<String>,
    origins: crate::origin::Origins,
}

impl HandshakeVerifier {
    /// A verifier for the configuration's auth mode and cookies.
    pub fn new(config: &Config) -> Self {
        Self {
            verifier: Verifier::new(&config.auth),
            cookies: config.auth_cookies.clone(),
            origins: crate::origin::Origins::new(&config.allowed_origins),
        }
    }

    /// The identity the handshake's token proves, `Ok(None)` when it carries none.
    pub async fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        query: &[(String, String)],
    ) -> Result<Option<Identity>, ErrorPayload> {
        if !self.origins.allows(headers) {
            return Err(ErrorPayload::new(
                ErrorCode::Forbidden,
                "origin not allowed",
            ));
        }
        let (param, by_message) = relaywire_protocol::AUTH_BY_MESSAGE;
        if query
            .iter()
            .any(|(key, value)| key == param && value == by_message)
        {
            return Ok(None);
        }
        let token = query
            .iter()
            .find(|(key, value)| key == "token" && !value.is_empty())
            .map(|(_, value)| value.clone())
            .or_else(|| crate::auth::bearer_token(headers))
            // A page of another origin must not connect as the user its cookie names.
            .or_else(|| {
                token_from_cookies(headers, self.origins.usable_cookies(headers, &self.cookies))
            });
        let Some(token) = token else {
            return Ok(None);
        };
        self.verifier
            .verify(&token)
            .await
            .map(Some)
            .map_err(|err| ErrorPayload::new(err.code(), err.to_string()))
    }
}

/// The time an [`Identity`]'s token expires, as seconds since the epoch: how a
/// gateway's table and authorizer context carry it.
pub fn expiry_secs(identity: &Identity) -> Option<u64> {
    identity
        .expires_at
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_secs())
}

/// The inverse of [`expiry_secs`].
pub fn expiry_from_secs(secs: Option<u64>) -> Option<SystemTime> {
    secs.map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}
