//! The bus behind a gateway: deliveries looked up in the connection table and posted
//! through the gateway, each connection's events in order.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relaywire_protocol::http::UserStatus;
use relaywire_protocol::{CloseCode, ErrorCode, ErrorPayload, Seq};
use tokio::task::JoinSet;

use crate::bus::{Bus, BusMessage};
use crate::hub::Reach;
use crate::store::{Store, StoreResult, with_seq};
use crate::time::rfc3339;

use super::{ConnectionTable, Gateway, GatewayConnection, PostError};

/// How many times a delivery reads a connection's mark again after another invocation
/// moved it first.
const DELIVERY_ATTEMPTS: usize = 8;

/// The pauses before a throttled post is tried again.
const THROTTLED_PAUSES: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(150),
    Duration::from_millis(400),
];

/// A presence frame of the protocol: user, online.
pub(super) type PresenceText = Box<dyn Fn(&str, bool) -> String + Send + Sync>;

/// The `error` frame of the protocol that announces a close.
pub(super) type CloseText = Box<dyn Fn(CloseCode) -> String + Send + Sync>;

/// The error that announces a close the server decided, where nothing else said why.
pub(super) fn closing_error(code: CloseCode) -> ErrorPayload {
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

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl GatewayBus {
    /// The bus over `store` and `table`, posting through `gateway`; `presence` and
    /// `announce` encode the protocol's `user:online` and close-announcing `error`.
    pub(super) fn new(
        store: Arc<dyn Store>,
        table: Arc<dyn ConnectionTable>,
        gateway: Arc<dyn Gateway>,
        presence: PresenceText,
        announce: CloseText,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            store,
            table,
            gateway,
            presence,
            announce,
            in_flight: Mutex::new(JoinSet::new()),
            me: me.clone(),
        })
    }

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

    /// The connections of these users that live messages reach (see
    /// [`GatewayConnection::is_live`]); numbered events reach only the open ones, which
    /// [`GatewayBus::deliver`] checks.
    async fn live_connections(&self, users: &[String]) -> Vec<GatewayConnection> {
        let mut connections = Vec::new();
        for user in users {
            match self.table.of_user(user.clone()).await {
                Ok(found) => connections.extend(found.into_iter().filter(|c| c.is_live())),
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
    pub(super) async fn post(&self, connection_id: &str, frame: String) -> Result<(), PostError> {
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
    pub(super) async fn deliver(
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
                        for connection in bus.live_connections(&[user]).await {
                            bus.deliver(connection, Some(seq), Some(&frame)).await;
                        }
                    }
                });
                futures_util::future::join_all(deliveries).await;
            }
            BusMessage::ToUsers { users, frame } => {
                let connections = self.live_connections(&users).await;
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
                let connections = self.live_connections(&members).await;
                self.post_all(connections, &frame).await;
            }
            BusMessage::Broadcast { frame } => {
                let connections = match self.table.all().await {
                    Ok(all) => all.into_iter().filter(|c| c.is_live()).collect(),
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
                for connection in self.live_connections(&[user]).await {
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
                let connections = self.live_connections(&told).await;
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
