//! [`Relay`]: what an app stores and sends through. Every write goes to the store
//! first and reaches connections through the bus only once it is committed; every
//! read comes from the store. Apps never see either directly.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use relaywire_protocol::http::UserStatus;
use relaywire_protocol::{CloseCode, Messages, PresenceChange, Protocol, ServerMessages, encode};
use tokio::sync::watch;

use crate::auth::Verifier;
use crate::bus::{Bus, BusMessage, LocalBus};
use crate::cluster::{Joining, RedisBus};
use crate::config::Config;
use crate::gateway::GatewayBus;
use crate::hub::{Frame, Hub, PresenceFrame, Reach, UserLimits};
use crate::metrics::Metrics;
use crate::origin::Origins;
use crate::shutdown::Tracker;
use crate::store::{
    Audience, Cursor, CursorMove, EventCursor, EventPage, JoinRule, NewRoom, Publish, Published,
    Room, RoomFilter, Store, StoreError, StoreResult,
};
use crate::time::now_rfc3339;

/// Switches for end-to-end tests; only reachable when `TEST_HOOKS` is on.
#[derive(Debug, Default)]
pub(crate) struct TestHooks {
    /// When set, `ping` gets no `pong`: the connection looks dead to the client.
    pub(crate) pongs_paused: AtomicBool,
    /// When set, nothing is acknowledged: a client's requests time out.
    pub(crate) acks_paused: AtomicBool,
}

/// The encoded frame of a server message.
pub(crate) fn encoded<S: ServerMessages>(message: &S) -> String {
    match encode(message) {
        Ok(text) => text,
        Err(err) => {
            tracing::error!(error = %err, "encoding a server message failed");
            r#"{"type":"error","payload":{"code":"INTERNAL_ERROR","message":"encoding failed"}}"#
                .to_owned()
        }
    }
}

/// A numbered event to store and deliver: built by an app, published through a
/// [`Relay`] or a [`Context`](crate::Context).
#[derive(Debug, Clone)]
pub struct Event<S> {
    id: String,
    message: S,
    room_id: Option<String>,
    audience: Audience,
    sender_id: Option<String>,
    require_member: bool,
    cursor: Option<(String, String)>,
}

impl<S: ServerMessages> Event<S> {
    /// An event of a room, for every member it has when it is stored. `id` is unique
    /// among events (a chat message's id, say).
    pub fn to_room(
        room_id: impl Into<String>,
        id: impl Into<String>,
        message: impl Into<S>,
    ) -> Self {
        let room_id = room_id.into();
        Self {
            id: id.into(),
            message: message.into(),
            audience: Audience::Room(room_id.clone()),
            room_id: Some(room_id),
            sender_id: None,
            require_member: false,
            cursor: None,
        }
    }

    /// An event for these users.
    pub fn to_users(user_ids: Vec<String>, id: impl Into<String>, message: impl Into<S>) -> Self {
        Self {
            id: id.into(),
            message: message.into(),
            audience: Audience::Users(user_ids),
            room_id: None,
            sender_id: None,
            require_member: false,
            cursor: None,
        }
    }

    /// Sent by this user, who must be a member of the event's room: the store checks it
    /// in the same transaction.
    pub fn from_member(mut self, user_id: impl Into<String>) -> Self {
        self.sender_id = Some(user_id.into());
        self.require_member = true;
        self
    }

    /// Sent by this user.
    pub fn from(mut self, user_id: impl Into<String>) -> Self {
        self.sender_id = Some(user_id.into());
        self
    }

    /// Stored only if the sender's cursor of this kind (e.g. `read`) in the room moves
    /// forward to the event `event_id`; it moves with it.
    pub fn moving_cursor(mut self, kind: impl Into<String>, event_id: impl Into<String>) -> Self {
        self.cursor = Some((kind.into(), event_id.into()));
        self
    }
}

struct Inner<P> {
    config: Config,
    origins: Origins,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    /// The other nodes, in a cluster.
    cluster: Option<Arc<RedisBus>>,
    /// The gateway that holds the connections, when the server holds none.
    gateway: Option<Arc<GatewayBus>>,
    hub: Arc<Hub>,
    verifier: Verifier,
    metrics: Arc<Metrics>,
    tracker: Arc<Tracker>,
    test_hooks: TestHooks,
    shutting_down: watch::Receiver<bool>,
    protocol: PhantomData<fn() -> P>,
}

/// The handle an app stores and sends through; cheap to clone. Also the state of the
/// app's own HTTP routes.
pub struct Relay<P: Protocol> {
    inner: Arc<Inner<P>>,
}

impl<P: Protocol> Clone for Relay<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Relay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("protocol", &P::NAME)
            .finish_non_exhaustive()
    }
}

/// What an answer key and a publish did, for the context that tracks its answer.
/// A protocol 3 connection's message about to publish: its copy of the event will
/// carry the message's acknowledgement.
#[derive(Debug, Clone)]
pub(crate) struct Answering {
    pub(crate) connection: crate::hub::ConnId,
    pub(crate) user_id: String,
    pub(crate) client_id: String,
    /// The event's id, set once the copy carrying the acknowledgement was queued.
    pub(crate) answered: Arc<std::sync::OnceLock<String>>,
}

impl Answering {
    fn origin(self, event_id: String) -> crate::hub::Origin {
        crate::hub::Origin::new(
            self.connection,
            self.user_id,
            self.client_id,
            event_id,
            self.answered,
        )
    }
}

pub(crate) fn answered(published: &Published) -> Option<String> {
    match published {
        Published::Stored { event_id, .. } => Some(event_id.clone()),
        Published::Duplicate { answer } => answer.clone(),
        Published::CursorUnchanged(_) => None,
    }
}

impl<P: Protocol> Relay<P> {
    /// A relay over `store`, with the in-process bus or, `joining` a cluster, the Redis
    /// one; and the switch that starts its shutdown (send `true`).
    pub(crate) fn new(
        config: Config,
        store: Arc<dyn Store>,
        joining: Option<Joining>,
    ) -> (Self, watch::Sender<bool>) {
        Self::assemble(config, store, joining, None)
    }

    /// A relay whose connections a gateway holds: everything reaches them through
    /// `gateway`, and who is online is its table's answer.
    pub(crate) fn on_gateway(
        config: Config,
        store: Arc<dyn Store>,
        gateway: Arc<GatewayBus>,
    ) -> (Self, watch::Sender<bool>) {
        Self::assemble(config, store, None, Some(gateway))
    }

    fn assemble(
        config: Config,
        store: Arc<dyn Store>,
        joining: Option<Joining>,
        gateway: Option<Arc<GatewayBus>>,
    ) -> (Self, watch::Sender<bool>) {
        let metrics = Arc::new(Metrics::default());
        let presence: PresenceFrame = Box::new(|user_id, online| {
            let message = P::Server::from(PresenceChange {
                user_id: user_id.to_owned(),
                online,
            });
            Frame::from(encoded(&message))
        });
        let limits = UserLimits {
            policy: config.connection_policy,
            connections: config.user_connection_limit,
            rate: (config.user_rate_limit_per_sec, config.user_rate_limit_burst),
        };
        let hub = Arc::new(Hub::new(limits, Arc::clone(&metrics), presence));
        let (shutdown, shutting_down) = watch::channel(false);
        let cluster = joining.map(|joining| {
            joining.start(
                Arc::clone(&hub),
                Arc::clone(&store),
                config.connection_policy,
                shutting_down.clone(),
            )
        });
        let bus: Arc<dyn Bus> = match (&cluster, &gateway) {
            (Some(cluster), _) => Arc::clone(cluster) as Arc<dyn Bus>,
            (None, Some(gateway)) => Arc::clone(gateway) as Arc<dyn Bus>,
            (None, None) => Arc::new(LocalBus::new(Arc::clone(&hub))),
        };
        let relay = Relay {
            inner: Arc::new(Inner {
                verifier: Verifier::new(&config.auth),
                origins: Origins::new(&config.allowed_origins),
                config,
                store,
                bus,
                cluster,
                gateway,
                hub,
                metrics,
                tracker: Arc::new(Tracker::default()),
                test_hooks: TestHooks::default(),
                shutting_down,
                protocol: PhantomData,
            }),
        };
        (relay, shutdown)
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Which pages may call, and which with the cookie (`CORS_ORIGIN`).
    pub(crate) fn origins(&self) -> &Origins {
        &self.inner.origins
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    pub(crate) fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    pub(crate) fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub(crate) fn tracker(&self) -> &Arc<Tracker> {
        &self.inner.tracker
    }

    pub(crate) fn test_hooks(&self) -> &TestHooks {
        &self.inner.test_hooks
    }

    pub(crate) fn shutting_down(&self) -> watch::Receiver<bool> {
        self.inner.shutting_down.clone()
    }

    /// Whether `pong` replies are paused (test hook).
    pub(crate) fn pongs_paused(&self) -> bool {
        self.inner.config.test_hooks && self.inner.test_hooks.pongs_paused.load(Ordering::Relaxed)
    }

    /// Whether acknowledgements are paused (test hook).
    pub(crate) fn acks_paused(&self) -> bool {
        self.inner.config.test_hooks && self.inner.test_hooks.acks_paused.load(Ordering::Relaxed)
    }

    /// Stores an event and delivers it, numbered, to its audience once committed.
    pub async fn publish(&self, event: Event<P::Server>) -> StoreResult<Published> {
        self.publish_keyed(event, None, None).await
    }

    /// Hands the event to the store now (SQLite queues it in call order) and returns
    /// what waits for its commit.
    ///
    /// `answering`, for a message of a protocol 3 connection: the connection, the
    /// message's id and what to set once its copy of the event was queued carrying its
    /// acknowledgement.
    pub(crate) fn publish_keyed(
        &self,
        event: Event<P::Server>,
        answer_key: Option<crate::store::AnswerKey>,
        answering: Option<Answering>,
    ) -> futures_util::future::BoxFuture<'static, StoreResult<Published>> {
        let Event {
            id,
            message,
            room_id,
            audience,
            sender_id,
            require_member,
            cursor,
        } = event;
        debug_assert!(
            P::Server::TYPES
                .iter()
                .zip(<P::Server as ServerMessages>::POLICIES)
                .any(|(name, policy)| *name == message.type_name() && policy.numbered),
            "only numbered message types are published as events"
        );
        let cursor = match (cursor, &room_id, &sender_id) {
            (Some((kind, event_id)), Some(room_id), Some(user_id)) => Some(CursorMove {
                room_id: room_id.clone(),
                user_id: user_id.clone(),
                kind,
                event_id,
            }),
            _ => None,
        };
        let publish = Publish {
            event_id: id,
            kind: message.type_name().to_owned(),
            frame: encoded(&message),
            require_member: sender_id.clone().filter(|_| require_member),
            room_id,
            sender_id,
            at: now_rfc3339(),
            audience,
            answer_key,
            cursor,
        };
        let bus = Arc::clone(&self.inner.bus);
        self.inner.store.publish(
            publish,
            Box::new(move |published| {
                if let Published::Stored {
                    recipients,
                    frame,
                    event_id,
                } = published
                {
                    let origin = answering.map(|answering| answering.origin(event_id.clone()));
                    bus.send(BusMessage::Event {
                        recipients: recipients.clone(),
                        frame: Arc::from(frame.as_str()),
                        origin,
                    });
                }
            }),
        )
    }

    /// Sends a live message (not stored) to every connection of these users.
    pub fn send_to_users(&self, user_ids: &[String], message: &P::Server) -> Reach {
        self.inner.bus.send(BusMessage::ToUsers {
            users: user_ids.to_vec(),
            frame: Arc::from(encoded(message)),
        })
    }

    /// Sends a live message to the online members of a room but `except_user`.
    pub fn send_to_room(
        &self,
        room_id: &str,
        message: &P::Server,
        except_user: Option<&str>,
    ) -> Reach {
        self.inner.bus.send(BusMessage::ToRoom {
            room: room_id.to_owned(),
            frame: Arc::from(encoded(message)),
            except: except_user.map(str::to_owned),
        })
    }

    /// Sends a live message to every connection.
    pub fn broadcast(&self, message: &P::Server) -> Reach {
        self.inner.bus.send(BusMessage::Broadcast {
            frame: Arc::from(encoded(message)),
        })
    }

    /// Creates a room; its online members start receiving it at once.
    pub async fn create_room(&self, room: NewRoom) -> StoreResult<Room> {
        let room = self.inner.store.create_room(room).await?;
        for user_id in &room.members {
            self.joined(user_id, &room.id);
        }
        if self.inner.cluster.is_some() || self.inner.gateway.is_some() {
            // Every online member tells the others, on every node, who shared no other
            // room with them.
            let online = self.online_among(&room.members).await;
            for member in online {
                let mut others = self
                    .inner
                    .store
                    .user_rooms(member.clone())
                    .await
                    .unwrap_or_default();
                others.retain(|other| *other != room.id);
                self.inner.bus.send(BusMessage::Presence {
                    user: member,
                    online: true,
                    rooms: vec![room.id.clone()],
                    already: others,
                });
            }
        }
        Ok(room)
    }

    fn joined(&self, user_id: &str, room_id: &str) {
        self.inner.bus.send(BusMessage::Joined {
            user: user_id.to_owned(),
            room: room_id.to_owned(),
        });
    }

    /// Adds a user to a room (`rule` says whether the room must be open); online, they
    /// start receiving it at once. Whether they were new.
    pub async fn join(&self, user_id: &str, room_id: &str, rule: JoinRule) -> StoreResult<bool> {
        // In a cluster, who knew of whom before the join decides who is told now.
        let before = match self.inner.cluster.is_some() || self.inner.gateway.is_some() {
            true => Some((
                self.inner.store.user_rooms(user_id.to_owned()).await?,
                self.inner.store.peers(user_id.to_owned()).await?,
            )),
            false => None,
        };
        let joined = self
            .inner
            .store
            .join(room_id.to_owned(), user_id.to_owned(), rule)
            .await?;
        self.joined(user_id, room_id);
        if let (Some((rooms, peers)), true) = (before, joined) {
            self.exchange_presence(user_id, room_id, rooms, peers).await;
        }
        Ok(joined)
    }

    /// A user joined a room, in a cluster: the room's online members who shared no room
    /// with them learn they are online, on every node, and they learn which of those
    /// members are.
    async fn exchange_presence(
        &self,
        user_id: &str,
        room_id: &str,
        rooms_before: Vec<String>,
        peers_before: Vec<String>,
    ) {
        let Ok(room) = self.room(room_id).await else {
            return;
        };
        let mut asked: Vec<String> = room
            .members
            .into_iter()
            .filter(|member| member != user_id && !peers_before.contains(member))
            .collect();
        asked.push(user_id.to_owned());
        let online = self.online_among(&asked).await;
        if online.iter().any(|online| online == user_id) {
            self.inner.bus.send(BusMessage::Presence {
                user: user_id.to_owned(),
                online: true,
                rooms: vec![room_id.to_owned()],
                already: rooms_before,
            });
        }
        for peer in online.iter().filter(|online| *online != user_id) {
            let message = P::Server::from(PresenceChange {
                user_id: peer.clone(),
                online: true,
            });
            self.send_to_users(&[user_id.to_owned()], &message);
        }
    }

    /// Removes a member from a room; their ephemeral states there end.
    pub async fn leave(&self, user_id: &str, room_id: &str) -> StoreResult<()> {
        self.inner
            .store
            .leave(room_id.to_owned(), user_id.to_owned())
            .await?;
        self.inner.bus.send(BusMessage::Left {
            user: user_id.to_owned(),
            room: room_id.to_owned(),
        });
        Ok(())
    }

    /// A room.
    pub async fn room(&self, room_id: &str) -> StoreResult<Room> {
        self.inner.store.room(room_id.to_owned()).await
    }

    /// Rooms, oldest first.
    pub async fn rooms(&self, filter: RoomFilter) -> StoreResult<Vec<Room>> {
        self.inner.store.rooms(filter).await
    }

    /// Checks that a room exists and the user is a member, from the store.
    pub async fn require_member(&self, room_id: &str, user_id: &str) -> StoreResult<()> {
        let room = self.room(room_id).await?;
        if room.members.iter().any(|member| member == user_id) {
            Ok(())
        } else {
            Err(StoreError::NotMember(room_id.to_owned()))
        }
    }

    /// A page of a room's events of one kind (message type), oldest first.
    pub async fn events(
        &self,
        room_id: &str,
        kind: &str,
        cursor: EventCursor,
        limit: usize,
    ) -> StoreResult<EventPage> {
        self.inner
            .store
            .events(room_id.to_owned(), kind.to_owned(), cursor, limit)
            .await
    }

    /// Every member's cursor of one kind in a room.
    pub async fn cursors(&self, room_id: &str, kind: &str) -> StoreResult<Vec<Cursor>> {
        self.inner
            .store
            .cursors(room_id.to_owned(), kind.to_owned())
            .await
    }

    /// Whether a user is online and a member of a room: the check for ephemeral
    /// traffic. On a server holding the user's connection it needs no store round trip;
    /// behind a gateway, the sender is online and the store says whether they are a
    /// member.
    pub async fn is_online_member(&self, room_id: &str, user_id: &str) -> bool {
        if self.inner.gateway.is_none() {
            return self.inner.hub.is_member(room_id, user_id);
        }
        self.room(room_id)
            .await
            .is_ok_and(|room| room.members.iter().any(|member| member == user_id))
    }

    /// Turns an ephemeral state of a user in a room on or off. `frames` are what the
    /// room's other members get: `start` the first time it is turned on, `stop` when it
    /// is turned off, when it is not renewed within the state timeout, or when the user
    /// leaves or goes offline.
    ///
    /// Behind a gateway nothing outlives an invocation to time a state out or to see
    /// the user go: every renewal sends `start` again, and turning it off sends `stop`.
    pub fn set_state(
        &self,
        room_id: &str,
        user_id: &str,
        kind: &'static str,
        (start, stop): (P::Server, P::Server),
        on: bool,
    ) {
        if self.inner.gateway.is_some() {
            let message = if on { &start } else { &stop };
            self.send_to_room(room_id, message, Some(user_id));
            return;
        }
        let on = on.then_some((start, stop));
        let key = (room_id.to_owned(), user_id.to_owned(), kind);
        let frames =
            on.map(|(start, stop)| (Frame::from(encoded(&start)), Frame::from(encoded(&stop))));
        let Some(generation) = self.inner.hub.set_state(key.clone(), frames) else {
            return;
        };
        let hub = Arc::clone(&self.inner.hub);
        let timeout = self.inner.config.state_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            hub.expire_state(&key, generation);
        });
    }

    /// The statuses of these users' connections (everyone's, when `None`) beyond
    /// this node: on every node of a cluster, or in a gateway's table. `None` when
    /// this node holds every connection.
    async fn statuses_everywhere(
        &self,
        users: Option<&[String]>,
    ) -> Option<Result<Vec<UserStatus>, String>> {
        if let Some(gateway) = &self.inner.gateway {
            return Some(gateway.statuses(users).await.map_err(|err| err.to_string()));
        }
        let cluster = self.inner.cluster.as_ref()?;
        let statuses = match users {
            Some(users) => cluster.statuses(users).await,
            None => cluster.connected_users().await,
        };
        Some(statuses.map_err(|err| err.to_string()))
    }

    /// A user's connection status, on every node.
    pub async fn status(&self, user_id: &str) -> UserStatus {
        let users = [user_id.to_owned()];
        match self.statuses_everywhere(Some(&users)).await {
            None => self.inner.hub.status(user_id),
            Some(Ok(users)) => users
                .into_iter()
                .find(|status| status.online)
                .unwrap_or_else(|| UserStatus {
                    user_id: user_id.to_owned(),
                    online: false,
                    connections: 0,
                    connected_since: None,
                }),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "reading presence failed; answering for this node");
                self.inner.hub.status(user_id)
            }
        }
    }

    /// Every connected user's status, on every node.
    pub async fn connected_users(&self) -> Vec<UserStatus> {
        match self.statuses_everywhere(None).await {
            None => self.inner.hub.connected_users(),
            Some(Ok(users)) => users,
            Some(Err(err)) => {
                tracing::warn!(error = %err, "reading presence failed; answering for this node");
                self.inner.hub.connected_users()
            }
        }
    }

    /// How far a live message sent to `users` (everyone, when `None`) got on every
    /// node: on one node, what this node reached; in a cluster or behind a gateway,
    /// the connections open for them everywhere (each node, or the gateway, has the
    /// message for all of them).
    pub async fn reach_everywhere(&self, users: Option<&[String]>, here: Reach) -> Reach {
        let Some(Ok(connected)) = self.statuses_everywhere(users).await else {
            return here;
        };
        let mut reach = Reach::default();
        for status in connected.iter().filter(|status| status.online) {
            reach.users += 1;
            reach.connections += status.connections;
        }
        reach
    }

    /// Which of these users are online, on any node.
    pub async fn online_among(&self, user_ids: &[String]) -> Vec<String> {
        let here = || -> Vec<String> {
            user_ids
                .iter()
                .filter(|user_id| self.inner.hub.status(user_id).online)
                .cloned()
                .collect()
        };
        if let Some(gateway) = &self.inner.gateway {
            return gateway
                .statuses(Some(user_ids))
                .await
                .map(|statuses| {
                    statuses
                        .into_iter()
                        .filter(|status| status.online)
                        .map(|status| status.user_id)
                        .collect()
                })
                .unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "reading the gateway's connections failed");
                    Vec::new()
                });
        }
        let Some(cluster) = &self.inner.cluster else {
            return here();
        };
        cluster.online_among(user_ids).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "reading presence from the cluster failed; answering for this node");
            here()
        })
    }

    /// Which of the user's peers (who share a room with them) are online on other
    /// nodes: for the `connected` frame, which the hub completes with this node's.
    pub(crate) async fn peers_online_elsewhere(&self, user_id: &str) -> Vec<String> {
        let Some(cluster) = &self.inner.cluster else {
            return Vec::new();
        };
        let peers = match self.inner.store.peers(user_id.to_owned()).await {
            Ok(peers) => peers,
            Err(err) => {
                tracing::warn!(error = %err, "reading a user's peers failed");
                return Vec::new();
            }
        };
        cluster.online_among(&peers).await.unwrap_or_else(|err| {
            tracing::warn!(error = %err, "reading presence from the cluster failed");
            Vec::new()
        })
    }

    /// Whether this node can serve: the store answers. (Without Redis a node still
    /// serves its own connections, so the bus does not decide readiness.)
    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        self.inner.store.ping().await
    }

    /// Whether this node is in a cluster.
    pub(crate) fn cluster(&self) -> Option<&Arc<RedisBus>> {
        self.inner.cluster.as_ref()
    }

    /// Closes every connection of a user with `code`, on every node; returns how many.
    pub async fn disconnect(&self, user_id: &str, code: CloseCode) -> u32 {
        let everywhere = match self.inner.cluster.is_some() || self.inner.gateway.is_some() {
            true => Some(self.status(user_id).await.connections),
            false => None,
        };
        let here = self
            .inner
            .bus
            .send(BusMessage::CloseUser {
                user: user_id.to_owned(),
                code,
            })
            .connections;
        everywhere.map_or(here, |everywhere| everywhere.max(here))
    }
}
