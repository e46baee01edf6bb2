//! This node's connections: who is connected, which rooms they are in, and delivery to
//! their connections.
//!
//! Every connection has a bounded queue. Delivery never waits: a queue that is full
//! means the client reads too slowly, and that connection is closed with 4006 rather
//! than letting memory grow. The hub also owns presence (`user:online` when a user's
//! first connection opens and their last one closes) and ephemeral states (a typing
//! indicator: on until stopped, renewed or expired).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use axum::extract::ws::Utf8Bytes;
use relaywire_protocol::http::UserStatus;
use relaywire_protocol::{Ack, CloseCode, Seq};
use tokio::sync::{mpsc, watch};

use crate::config::ConnectionPolicy;
use crate::metrics::Metrics;
use crate::rate_limit::{RateLimiter, SharedLimiter};
use crate::time::rfc3339;

/// One encoded text frame, shared by every recipient.
pub(crate) type Frame = Utf8Bytes;

/// Identifies one connection for the server's lifetime.
pub(crate) type ConnId = u64;

/// What a connection's writer sends, in order.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A frame as it is.
    Frame(Frame),
    /// A numbered event: its frame without `seq` (shared by every recipient), and this
    /// user's number for it. The writer keeps the user's stream in order: it drops
    /// what the connection has, and fetches from the store what it missed. On the
    /// connection whose message stored it (protocol 3), the acknowledgement the copy
    /// carries.
    Event(Seq, Arc<str>, Option<Arc<Ack>>),
    /// Check the store for events of the user's stream after the last one the
    /// connection has had: after the bus between nodes was down, or right after
    /// registering where follow-ups are not ordered.
    CatchUp,
}

/// The connection whose message stored an event (protocol 3): its copy of the event
/// carries the message's acknowledgement, and no separate `ack` is sent. Local to the
/// node that holds the connection.
#[derive(Debug, Clone)]
pub struct Origin {
    connection: ConnId,
    user_id: String,
    ack: Arc<Ack>,
    /// The event's id, set once the copy carrying the acknowledgement was queued.
    answered: Arc<OnceLock<String>>,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.connection == other.connection && self.ack == other.ack
    }
}

impl Eq for Origin {}

impl Origin {
    /// The message `client_id` of `user_id` on `connection`, storing the event
    /// `event_id`; `answered` is set to the event's id once the copy is queued.
    pub(crate) fn new(
        connection: ConnId,
        user_id: String,
        client_id: String,
        event_id: String,
        answered: Arc<OnceLock<String>>,
    ) -> Self {
        Self {
            connection,
            user_id,
            ack: Arc::new(Ack {
                id: client_id,
                message_id: Some(event_id),
            }),
            answered,
        }
    }
}

/// A change in who is connected to this node, for the other nodes (cluster mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocalPresence {
    /// The user's first connection on this node opened.
    Online {
        user: String,
        rooms: Vec<String>,
        connections: u32,
        since: SystemTime,
    },
    /// The user's connections on this node changed in number (but not to none).
    Connections {
        user: String,
        connections: u32,
        since: SystemTime,
    },
    /// The user's last connection on this node closed.
    Offline { user: String, rooms: Vec<String> },
}

/// What the hub tells the other nodes, when there are any.
pub(crate) trait Remote: Send + Sync + 'static {
    /// Sends a message to the other nodes only (this node applied it already).
    fn forward(&self, message: crate::bus::BusMessage);
    /// Reports a change in this node's connections; the cluster decides presence.
    fn presence(&self, change: LocalPresence);
}

/// Builds the `user:online` frame of the protocol.
pub(crate) type PresenceFrame = Box<dyn Fn(&str, bool) -> Frame + Send + Sync>;

/// The hub's handle on a connection: its queue and a way to close it.
struct Conn {
    user_id: String,
    outbound: mpsc::Sender<Outbound>,
    close: Arc<watch::Sender<Option<CloseCode>>>,
    connected_at: SystemTime,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Queues an item; a full queue closes the connection as a slow consumer.
    fn deliver(&self, item: Outbound, metrics: &Metrics) -> bool {
        match self.outbound.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self
                    .close
                    .send_replace(Some(CloseCode::SlowConsumer))
                    .is_none()
                {
                    metrics.slow_consumer();
                    tracing::warn!(user_id = %self.user_id, "outbound queue full; closing slow consumer");
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// An ephemeral state that is on, and the frame that says it stopped.
#[derive(Debug)]
struct ActiveState {
    generation: u64,
    stop: Frame,
}

/// Who holds an ephemeral state: (room, user, kind).
type StateKey = (String, String, &'static str);

#[derive(Debug, Default)]
struct State {
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    /// Online users: their connections and their rooms.
    users: HashMap<String, OnlineUser>,
    /// Online members of each room.
    rooms: HashMap<String, BTreeSet<String>>,
    states: HashMap<StateKey, ActiveState>,
    next_generation: u64,
}

#[derive(Debug)]
struct OnlineUser {
    conns: Vec<ConnId>,
    rooms: BTreeSet<String>,
    /// The rate of all the user's connections together.
    limiter: SharedLimiter,
}

/// How many users and connections a delivery reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Users with at least one connection reached.
    pub users: u32,
    /// Connections the frame was queued on.
    pub connections: u32,
}

impl State {
    /// Users who share a room with `user_id` and are online, without `user_id`.
    fn peers(&self, user_id: &str) -> BTreeSet<String> {
        let Some(user) = self.users.get(user_id) else {
            return BTreeSet::new();
        };
        user.rooms
            .iter()
            .filter_map(|room| self.rooms.get(room))
            .flatten()
            .filter(|peer| peer.as_str() != user_id)
            .cloned()
            .collect()
    }

    fn deliver_to_user(&self, user_id: &str, item: &Outbound, metrics: &Metrics) -> u32 {
        self.deliver_to_user_but(user_id, item, None, metrics)
    }

    /// [`State::deliver_to_user`], but for the connection `but`.
    fn deliver_to_user_but(
        &self,
        user_id: &str,
        item: &Outbound,
        but: Option<ConnId>,
        metrics: &Metrics,
    ) -> u32 {
        let Some(user) = self.users.get(user_id) else {
            return 0;
        };
        let mut delivered = 0;
        for conn in user
            .conns
            .iter()
            .filter(|id| Some(**id) != but)
            .filter_map(|id| self.conns.get(id))
        {
            delivered += u32::from(conn.deliver(item.clone(), metrics));
        }
        metrics.messages_out(delivered.into());
        delivered
    }

    /// Queues the event numbered `seq` on the connection `origin` stored it from, with
    /// its acknowledgement; whether it was queued.
    fn deliver_answering(
        &self,
        seq: Seq,
        frame: &Arc<str>,
        origin: &Origin,
        metrics: &Metrics,
    ) -> bool {
        let Some(conn) = self.conns.get(&origin.connection) else {
            return false;
        };
        let item = Outbound::Event(seq, Arc::clone(frame), Some(Arc::clone(&origin.ack)));
        let queued = conn.deliver(item, metrics);
        if queued && let Some(event_id) = &origin.ack.message_id {
            let _ = origin.answered.set(event_id.clone());
        }
        metrics.messages_out(u64::from(queued));
        queued
    }

    fn deliver_to_room(
        &self,
        room_id: &str,
        frame: &Frame,
        except_user: Option<&str>,
        metrics: &Metrics,
    ) -> Reach {
        let mut reach = Reach::default();
        let Some(members) = self.rooms.get(room_id) else {
            return reach;
        };
        let item = Outbound::Frame(frame.clone());
        for member in members
            .iter()
            .filter(|member| Some(member.as_str()) != except_user)
        {
            let connections = self.deliver_to_user(member, &item, metrics);
            reach.users += u32::from(connections > 0);
            reach.connections += connections;
        }
        reach
    }

    fn add_to_room(&mut self, user_id: &str, room_id: &str) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.rooms.insert(room_id.to_owned());
            self.rooms
                .entry(room_id.to_owned())
                .or_default()
                .insert(user_id.to_owned());
        }
    }

    fn remove_from_room(&mut self, user_id: &str, room_id: &str) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.rooms.remove(room_id);
        }
        if let Some(members) = self.rooms.get_mut(room_id) {
            members.remove(user_id);
            if members.is_empty() {
                self.rooms.remove(room_id);
            }
        }
    }

    /// Ends every ephemeral state of `user_id` in `room_id` (all rooms when `None`):
    /// the room's other members get each one's stop.
    fn stop_states(
        &mut self,
        user_id: &str,
        room_id: Option<&str>,
        metrics: &Metrics,
    ) -> Vec<(String, Frame)> {
        let mut sent = Vec::new();
        let stopped: Vec<StateKey> = self
            .states
            .keys()
            .filter(|(room, user, _)| user == user_id && room_id.is_none_or(|r| r == room))
            .cloned()
            .collect();
        for key in stopped {
            if let Some(state) = self.states.remove(&key) {
                self.deliver_to_room(&key.0, &state.stop, Some(user_id), metrics);
                sent.push((key.0, state.stop));
            }
        }
        sent
    }

    /// A user's connections here: how many, and since when (now, when none).
    fn local_count(&self, user_id: &str) -> (u32, SystemTime) {
        let conns: Vec<&Conn> = self
            .users
            .get(user_id)
            .map(|u| u.conns.iter().filter_map(|id| self.conns.get(id)).collect())
            .unwrap_or_default();
        let since = conns
            .iter()
            .map(|c| c.connected_at)
            .min()
            .unwrap_or_else(SystemTime::now);
        (u32::try_from(conns.len()).unwrap_or(u32::MAX), since)
    }
}

/// What a new connection needs to know right after registering.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The connection's id.
    pub(crate) id: ConnId,
    /// Connections of the same user this one replaced (one-connection policy).
    pub(crate) replaced: usize,
    /// The user's rate, shared with their other connections.
    pub(crate) user_limiter: SharedLimiter,
}

/// A registered connection, unregistered when dropped: on every way its task ends,
/// a panic included.
#[derive(Debug)]
pub(crate) struct Registration {
    hub: Arc<Hub>,
    id: ConnId,
}

impl Registration {
    pub(crate) fn new(hub: Arc<Hub>, id: ConnId) -> Self {
        Self { hub, id }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

/// Why a connection was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRegistered {
    /// The user holds as many connections as they may (`USER_CONNECTION_LIMIT`).
    TooManyConnections(usize),
}

/// Per-user limits the hub enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserLimits {
    /// One connection, or several.
    pub(crate) policy: ConnectionPolicy,
    /// The most connections of one user (several-connection policy).
    pub(crate) connections: usize,
    /// Messages per second of all of a user's connections, and the burst.
    pub(crate) rate: (u32, u32),
}

/// This node's connections, presence and delivery. Shared by every task.
pub(crate) struct Hub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    limits: UserLimits,
    presence: PresenceFrame,
    /// The other nodes; unset on a single node, where the hub decides presence itself.
    remote: OnceLock<Arc<dyn Remote>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// An empty hub; `presence` encodes the protocol's `user:online`.
    pub(crate) fn new(limits: UserLimits, metrics: Arc<Metrics>, presence: PresenceFrame) -> Self {
        Self {
            state: Mutex::new(State::default()),
            metrics,
            limits,
            presence,
            remote: OnceLock::new(),
        }
    }

    /// Joins this hub to other nodes: presence becomes the cluster's decision and
    /// ephemeral states reach their rooms everywhere.
    pub(crate) fn set_remote(&self, remote: Arc<dyn Remote>) {
        let _ = self.remote.set(remote);
    }

    fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.get()
    }

    /// Sends ephemeral states' frames (starts, stops) to the other nodes' members of
    /// each room.
    fn forward_room_frames(&self, user_id: &str, stopped: Vec<(String, Frame)>) {
        let Some(remote) = self.remote() else { return };
        for (room, frame) in stopped {
            remote.forward(crate::bus::BusMessage::ToRoom {
                room,
                frame: Arc::from(frame.as_str()),
                except: Some(user_id.to_owned()),
            });
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent enough to go on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an authenticated connection in `rooms`. `first` builds, from the online
    /// peers it has, the frames it receives first (`connected`, then what it missed);
    /// nothing else can be queued before them. Announces the user online when this is
    /// their first connection. Refuses a connection over the user's limit.
    pub(crate) fn register(
        &self,
        user_id: &str,
        rooms: &[String],
        outbound: mpsc::Sender<Outbound>,
        close: Arc<watch::Sender<Option<CloseCode>>>,
        first: impl FnOnce(Vec<String>) -> Vec<Frame>,
    ) -> Result<Registered, NotRegistered> {
        let mut state = self.state();
        let held = state.users.get(user_id).map_or(0, |u| u.conns.len());
        if self.limits.policy == ConnectionPolicy::Multiple && held >= self.limits.connections {
            return Err(NotRegistered::TooManyConnections(self.limits.connections));
        }
        let first_connection = held == 0;
        let mut replaced = 0;
        if self.limits.policy == ConnectionPolicy::Single
            && let Some(user) = state.users.get_mut(user_id)
        {
            // The user stays online through the new connection: no presence flap.
            for id in std::mem::take(&mut user.conns) {
                if let Some(old) = state.conns.remove(&id) {
                    old.close.send_replace(Some(CloseCode::SessionReplaced));
                    replaced += 1;
                }
            }
        }
        state.next_id += 1;
        let id = state.next_id;
        let (per_sec, burst) = self.limits.rate;
        let user = state
            .users
            .entry(user_id.to_owned())
            .or_insert_with(|| OnlineUser {
                conns: Vec::new(),
                rooms: BTreeSet::new(),
                limiter: Arc::new(Mutex::new(RateLimiter::new(per_sec, burst))),
            });
        user.conns.push(id);
        let user_limiter = Arc::clone(&user.limiter);
        for room_id in rooms {
            state.add_to_room(user_id, room_id);
        }
        let peers = state.peers(user_id);
        let conn = Conn {
            user_id: user_id.to_owned(),
            outbound,
            close,
            connected_at: SystemTime::now(),
        };
        for frame in first(peers.iter().cloned().collect()) {
            conn.deliver(Outbound::Frame(frame), &self.metrics);
        }
        state.conns.insert(id, conn);
        if let Some(remote) = self.remote() {
            let (connections, since) = state.local_count(user_id);
            remote.presence(if first_connection {
                LocalPresence::Online {
                    user: user_id.to_owned(),
                    rooms: rooms.to_vec(),
                    connections,
                    since,
                }
            } else {
                LocalPresence::Connections {
                    user: user_id.to_owned(),
                    connections,
                    since,
                }
            });
        } else if first_connection {
            let online = Outbound::Frame((self.presence)(user_id, true));
            for peer in &peers {
                state.deliver_to_user(peer, &online, &self.metrics);
            }
        }
        Ok(Registered {
            id,
            replaced,
            user_limiter,
        })
    }

    /// Removes a connection. When it was the user's last, the user goes offline: their
    /// peers are told and their ephemeral states end.
    pub(crate) fn unregister(&self, id: ConnId) {
        let mut state = self.state();
        let Some(conn) = state.conns.remove(&id) else {
            return;
        };
        let user_id = conn.user_id;
        let last = match state.users.get_mut(&user_id) {
            Some(user) => {
                user.conns.retain(|c| *c != id);
                user.conns.is_empty()
            }
            None => false,
        };
        if !last {
            if let Some(remote) = self.remote() {
                let (connections, since) = state.local_count(&user_id);
                remote.presence(LocalPresence::Connections {
                    user: user_id,
                    connections,
                    since,
                });
            }
            return;
        }
        let stopped = state.stop_states(&user_id, None, &self.metrics);
        let peers = state.peers(&user_id);
        let rooms: Vec<String> = state
            .users
            .get(&user_id)
            .map(|u| u.rooms.iter().cloned().collect())
            .unwrap_or_default();
        for room in &rooms {
            state.remove_from_room(&user_id, room);
        }
        state.users.remove(&user_id);
        if let Some(remote) = self.remote() {
            remote.presence(LocalPresence::Offline {
                user: user_id.clone(),
                rooms,
            });
        } else {
            let offline = Outbound::Frame((self.presence)(&user_id, false));
            for peer in &peers {
                state.deliver_to_user(peer, &offline, &self.metrics);
            }
        }
        drop(state);
        self.forward_room_frames(&user_id, stopped);
    }

    /// Tells this node's online members of `rooms` (but the user, and those in one of
    /// the rooms `already`, who knew) that the user came online or went offline in the
    /// cluster.
    pub(crate) fn deliver_presence(
        &self,
        user_id: &str,
        online: bool,
        rooms: &[String],
        already: &[String],
    ) {
        let state = self.state();
        let knew = |peer: &String| {
            state
                .users
                .get(peer)
                .is_some_and(|user| already.iter().any(|room| user.rooms.contains(room)))
        };
        let peers: BTreeSet<&String> = rooms
            .iter()
            .filter_map(|room| state.rooms.get(room))
            .flatten()
            .filter(|peer| peer.as_str() != user_id && !knew(peer))
            .collect();
        let frame = Outbound::Frame((self.presence)(user_id, online));
        for peer in peers {
            state.deliver_to_user(peer, &frame, &self.metrics);
        }
    }

    /// Asks every connection here to check the store for events it may have missed.
    pub(crate) fn catch_up_all(&self) {
        let state = self.state();
        for conn in state.conns.values() {
            conn.deliver(Outbound::CatchUp, &self.metrics);
        }
    }

    /// Every user connected here, with their connections, since when, and rooms.
    pub(crate) fn local_users(&self) -> Vec<LocalPresence> {
        let state = self.state();
        state
            .users
            .iter()
            .map(|(user, online)| {
                let (connections, since) = state.local_count(user);
                LocalPresence::Online {
                    user: user.clone(),
                    rooms: online.rooms.iter().cloned().collect(),
                    connections,
                    since,
                }
            })
            .collect()
    }

    /// Queues a numbered event for each recipient's connections, with their number.
    pub(crate) fn deliver_event(
        &self,
        recipients: &[(String, Seq)],
        frame: &Arc<str>,
        origin: Option<&Origin>,
    ) -> Reach {
        let state = self.state();
        let mut reach = Reach::default();
        for (user_id, seq) in recipients {
            let item = Outbound::Event(*seq, Arc::clone(frame), None);
            // The sender's own connection gets the copy that acknowledges its message.
            let connections = match origin.filter(|origin| origin.user_id == *user_id) {
                Some(origin) => {
                    let answered = state.deliver_answering(*seq, frame, origin, &self.metrics);
                    let others = state.deliver_to_user_but(
                        user_id,
                        &item,
                        Some(origin.connection),
                        &self.metrics,
                    );
                    others + u32::from(answered)
                }
                None => state.deliver_to_user(user_id, &item, &self.metrics),
            };
            reach.users += u32::from(connections > 0);
            reach.connections += connections;
        }
        reach
    }

    /// Queues a frame for every connection of each user.
    pub(crate) fn send_to_users(&self, user_ids: &[String], frame: &Frame) -> Reach {
        let state = self.state();
        let item = Outbound::Frame(frame.clone());
        let mut reach = Reach::default();
        for user_id in user_ids {
            let connections = state.deliver_to_user(user_id, &item, &self.metrics);
            reach.users += u32::from(connections > 0);
            reach.connections += connections;
        }
        reach
    }

    /// Queues a frame for every online member of a room but `except_user`.
    pub(crate) fn send_to_room(
        &self,
        room_id: &str,
        frame: &Frame,
        except_user: Option<&str>,
    ) -> Reach {
        self.state()
            .deliver_to_room(room_id, frame, except_user, &self.metrics)
    }

    /// Queues a frame for every connection.
    pub(crate) fn broadcast(&self, frame: &Frame) -> Reach {
        let state = self.state();
        let item = Outbound::Frame(frame.clone());
        let mut reach = Reach::default();
        for user_id in state.users.keys() {
            let connections = state.deliver_to_user(user_id, &item, &self.metrics);
            reach.users += u32::from(connections > 0);
            reach.connections += connections;
        }
        reach
    }

    /// Records that an online user joined a room, and exchanges presence with the
    /// room's online members they did not share a room with. (In a cluster the relay
    /// exchanges it, across nodes.)
    pub(crate) fn joined_room(&self, user_id: &str, room_id: &str) {
        let mut state = self.state();
        if !state.users.contains_key(user_id) {
            return;
        }
        if self.remote().is_some() {
            state.add_to_room(user_id, room_id);
            return;
        }
        let before = state.peers(user_id);
        state.add_to_room(user_id, room_id);
        let new_peers: Vec<String> = state.peers(user_id).difference(&before).cloned().collect();
        let online = Outbound::Frame((self.presence)(user_id, true));
        for peer in &new_peers {
            state.deliver_to_user(peer, &online, &self.metrics);
            let theirs = Outbound::Frame((self.presence)(peer, true));
            state.deliver_to_user(user_id, &theirs, &self.metrics);
        }
    }

    /// Records that a user left a room; their ephemeral states there end.
    pub(crate) fn left_room(&self, user_id: &str, room_id: &str) {
        let mut state = self.state();
        let stopped = state.stop_states(user_id, Some(room_id), &self.metrics);
        state.remove_from_room(user_id, room_id);
        drop(state);
        self.forward_room_frames(user_id, stopped);
    }

    /// Turns an ephemeral state on (the room's other members get `start` the first
    /// time) or off (they get its stop). Returns the generation of a state turned on,
    /// for [`Hub::expire_state`].
    pub(crate) fn set_state(
        &self,
        key: (String, String, &'static str),
        on: Option<(Frame, Frame)>,
    ) -> Option<u64> {
        let mut state = self.state();
        let Some((start, stop)) = on else {
            if state.states.contains_key(&key) {
                let (room, user, _) = &key;
                let (room, user) = (room.clone(), user.clone());
                if let Some(active) = state.states.remove(&key) {
                    state.deliver_to_room(&room, &active.stop, Some(&user), &self.metrics);
                    drop(state);
                    self.forward_room_frames(&user, vec![(room, active.stop)]);
                }
            }
            return None;
        };
        state.next_generation += 1;
        let generation = state.next_generation;
        let (room, user) = (key.0.clone(), key.1.clone());
        let was_on = state
            .states
            .insert(key, ActiveState { generation, stop })
            .is_some();
        if !was_on {
            state.deliver_to_room(&room, &start, Some(&user), &self.metrics);
            drop(state);
            self.forward_room_frames(&user, vec![(room, start)]);
        }
        Some(generation)
    }

    /// Ends an ephemeral state that nothing renewed or stopped since `generation`.
    pub(crate) fn expire_state(&self, key: &(String, String, &'static str), generation: u64) {
        let mut state = self.state();
        if state
            .states
            .get(key)
            .is_some_and(|active| active.generation == generation)
            && let Some(active) = state.states.remove(key)
        {
            state.deliver_to_room(&key.0, &active.stop, Some(&key.1), &self.metrics);
            drop(state);
            self.forward_room_frames(&key.1, vec![(key.0.clone(), active.stop)]);
        }
    }

    /// Whether an online user is a member of a room.
    pub(crate) fn is_member(&self, room_id: &str, user_id: &str) -> bool {
        self.state()
            .rooms
            .get(room_id)
            .is_some_and(|members| members.contains(user_id))
    }

    /// Asks every connection of a user to close with `code`; returns how many.
    pub(crate) fn close_user(&self, user_id: &str, code: CloseCode) -> u32 {
        let state = self.state();
        let Some(user) = state.users.get(user_id) else {
            return 0;
        };
        let mut closed = 0;
        for conn in user.conns.iter().filter_map(|id| state.conns.get(id)) {
            conn.close.send_replace(Some(code));
            closed += 1;
        }
        closed
    }

    /// The number of open connections.
    pub(crate) fn connection_count(&self) -> usize {
        self.state().conns.len()
    }

    /// A user's connection status.
    pub(crate) fn status(&self, user_id: &str) -> UserStatus {
        let state = self.state();
        Self::status_of(&state, user_id)
    }

    fn status_of(state: &State, user_id: &str) -> UserStatus {
        let (connections, since) = state.local_count(user_id);
        UserStatus {
            user_id: user_id.to_owned(),
            online: connections > 0,
            connections,
            connected_since: (connections > 0).then(|| rfc3339(since)),
        }
    }

    /// Every online user's status, by user id.
    pub(crate) fn connected_users(&self) -> Vec<UserStatus> {
        let state = self.state();
        let mut ids: Vec<&String> = state.users.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| Self::status_of(&state, id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(connections: usize) -> Arc<Hub> {
        let limits = UserLimits {
            policy: ConnectionPolicy::Multiple,
            connections,
            rate: (10, 10),
        };
        let presence: PresenceFrame =
            Box::new(|user, online| Frame::from(format!("{user}:{online}")));
        Arc::new(Hub::new(limits, Arc::new(Metrics::default()), presence))
    }

    fn register(hub: &Hub, user: &str) -> Result<Registered, NotRegistered> {
        let (outbound, _) = mpsc::channel(8);
        let close = Arc::new(watch::channel(None).0);
        hub.register(user, &["room".to_owned()], outbound, close, |_| Vec::new())
    }

    #[tokio::test]
    async fn a_connection_task_that_panics_still_unregisters() {
        let hub = hub(4);
        let id = register(&hub, "alice").unwrap().id;
        let guarded = Arc::clone(&hub);
        let task = tokio::spawn(async move {
            let _registration = Registration::new(guarded, id);
            panic!("a bug in the connection task");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(hub.connected_users().is_empty(), "the user went offline");
    }

    #[test]
    fn a_user_holds_at_most_the_limit_and_a_freed_slot_is_free() {
        let hub = hub(2);
        let first = register(&hub, "alice").unwrap();
        let second = register(&hub, "alice").unwrap();
        assert!(Arc::ptr_eq(&first.user_limiter, &second.user_limiter));
        assert_eq!(
            register(&hub, "alice").unwrap_err(),
            NotRegistered::TooManyConnections(2)
        );
        assert!(register(&hub, "bob").is_ok());
        hub.unregister(first.id);
        assert!(register(&hub, "alice").is_ok());
    }
}
