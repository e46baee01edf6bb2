//! Who is connected, which chats they are in, and delivery to their connections.
//!
//! Every connection has a bounded queue of frames. Delivery never waits: a queue that
//! is full means the client reads too slowly, and that connection is closed with
//! 4006 rather than letting memory grow. The hub also owns presence (`user:online`
//! when a user's first connection opens and their last one closes) and typing
//! indicators.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use axum::extract::ws::Utf8Bytes;
use relaywire_chat::http::UserStatus;
use relaywire_chat::{ServerMessage, TypingIndicator};
use relaywire_protocol::{CloseCode, PresenceChange, encode};
use tokio::sync::{mpsc, watch};

use crate::config::ConnectionPolicy;
use crate::metrics::Metrics;
use crate::time::rfc3339;

/// One encoded text frame, shared by every recipient.
pub type Frame = Utf8Bytes;

/// Identifies one connection for the server's lifetime.
pub type ConnId = u64;

/// Encodes a message once for any number of recipients.
pub fn frame(message: &ServerMessage) -> Frame {
    match encode(message) {
        Ok(text) => text.into(),
        Err(err) => {
            tracing::error!(error = %err, "encoding a server message failed");
            Utf8Bytes::from_static(
                r#"{"type":"error","payload":{"code":"INTERNAL_ERROR","message":"encoding failed"}}"#,
            )
        }
    }
}

/// The hub's handle on a connection: its queue and a way to close it.
#[derive(Debug)]
struct Conn {
    user_id: String,
    frames: mpsc::Sender<Frame>,
    close: Arc<watch::Sender<Option<CloseCode>>>,
    connected_at: SystemTime,
}

impl Conn {
    /// Queues a frame; a full queue closes the connection as a slow consumer.
    fn deliver(&self, frame: &Frame, metrics: &Metrics) -> bool {
        match self.frames.try_send(frame.clone()) {
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

#[derive(Debug, Default)]
struct State {
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    /// Online users: their connections and their chats.
    users: HashMap<String, OnlineUser>,
    /// Online participants of each chat.
    chats: HashMap<String, BTreeSet<String>>,
    /// Typing indicators that are on, by (chat, user), with the generation that set them.
    typing: HashMap<(String, String), (u64, String)>,
    next_typing: u64,
}

#[derive(Debug, Default)]
struct OnlineUser {
    conns: Vec<ConnId>,
    chats: BTreeSet<String>,
}

impl State {
    /// Users who share a chat with `user_id` and are online, without `user_id`.
    fn peers(&self, user_id: &str) -> BTreeSet<String> {
        let Some(user) = self.users.get(user_id) else {
            return BTreeSet::new();
        };
        user.chats
            .iter()
            .filter_map(|chat| self.chats.get(chat))
            .flatten()
            .filter(|peer| peer.as_str() != user_id)
            .cloned()
            .collect()
    }

    fn deliver_to_user(&self, user_id: &str, frame: &Frame, metrics: &Metrics) -> u32 {
        let Some(user) = self.users.get(user_id) else {
            return 0;
        };
        let mut delivered = 0;
        for conn in user.conns.iter().filter_map(|id| self.conns.get(id)) {
            delivered += u32::from(conn.deliver(frame, metrics));
        }
        metrics.messages_out(delivered.into());
        delivered
    }

    fn deliver_to_chat(
        &self,
        chat_id: &str,
        frame: &Frame,
        except_user: Option<&str>,
        metrics: &Metrics,
    ) -> u32 {
        let Some(members) = self.chats.get(chat_id) else {
            return 0;
        };
        members
            .iter()
            .filter(|member| Some(member.as_str()) != except_user)
            .map(|member| self.deliver_to_user(member, frame, metrics))
            .sum()
    }

    fn add_to_chat(&mut self, user_id: &str, chat_id: &str) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.chats.insert(chat_id.to_owned());
            self.chats
                .entry(chat_id.to_owned())
                .or_default()
                .insert(user_id.to_owned());
        }
    }

    fn remove_from_chat(&mut self, user_id: &str, chat_id: &str) {
        if let Some(user) = self.users.get_mut(user_id) {
            user.chats.remove(chat_id);
        }
        if let Some(members) = self.chats.get_mut(chat_id) {
            members.remove(user_id);
            if members.is_empty() {
                self.chats.remove(chat_id);
            }
        }
    }

    /// Turns off every typing indicator of `user_id` in `chat_id` (all chats when `None`).
    fn stop_typing(&mut self, user_id: &str, chat_id: Option<&str>, metrics: &Metrics) {
        let stopped: Vec<((String, String), String)> = self
            .typing
            .iter()
            .filter(|((chat, user), _)| user == user_id && chat_id.is_none_or(|c| c == chat))
            .map(|(key, (_, name))| (key.clone(), name.clone()))
            .collect();
        for ((chat, user), name) in stopped {
            self.typing.remove(&(chat.clone(), user.clone()));
            let stop = frame(&ServerMessage::ChatTyping(TypingIndicator {
                chat_id: chat.clone(),
                user_id: user.clone(),
                user_name: name,
                is_typing: false,
            }));
            self.deliver_to_chat(&chat, &stop, Some(&user), metrics);
        }
    }
}

fn presence(user_id: &str, online: bool) -> Frame {
    frame(&ServerMessage::UserOnline(PresenceChange {
        user_id: user_id.to_owned(),
        online,
    }))
}

/// What a new connection needs to know right after registering.
#[derive(Debug)]
pub struct Registered {
    /// The connection's id.
    pub id: ConnId,
    /// Connections of the same user this one replaced (one-connection policy).
    pub replaced: usize,
}

/// Connections, presence and delivery. Shared by every task.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    policy: ConnectionPolicy,
}

impl Hub {
    /// An empty hub.
    pub fn new(policy: ConnectionPolicy, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            metrics,
            policy,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent enough to go on.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an authenticated connection in `chat_ids`. `first_frames` builds, from the
    /// online peers it has, the frames it receives first (`connected`, then what it
    /// missed); nothing else can be queued before them. Announces the user online when
    /// this is their first connection.
    pub fn register(
        &self,
        user_id: &str,
        chat_ids: &[String],
        frames: mpsc::Sender<Frame>,
        close: Arc<watch::Sender<Option<CloseCode>>>,
        first_frames: impl FnOnce(Vec<String>) -> Vec<Frame>,
    ) -> Registered {
        let mut state = self.state();
        let first_connection = state.users.get(user_id).is_none_or(|u| u.conns.is_empty());
        let mut replaced = 0;
        if self.policy == ConnectionPolicy::Single
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
        state
            .users
            .entry(user_id.to_owned())
            .or_default()
            .conns
            .push(id);
        for chat_id in chat_ids {
            state.add_to_chat(user_id, chat_id);
        }
        let peers = state.peers(user_id);
        let conn = Conn {
            user_id: user_id.to_owned(),
            frames,
            close,
            connected_at: SystemTime::now(),
        };
        for first in first_frames(peers.iter().cloned().collect()) {
            conn.deliver(&first, &self.metrics);
        }
        state.conns.insert(id, conn);
        if first_connection {
            let online = presence(user_id, true);
            for peer in &peers {
                state.deliver_to_user(peer, &online, &self.metrics);
            }
        }
        Registered { id, replaced }
    }

    /// Removes a connection. When it was the user's last, the user goes offline:
    /// their peers are told and their typing indicators end.
    pub fn unregister(&self, id: ConnId) {
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
            return;
        }
        state.stop_typing(&user_id, None, &self.metrics);
        let peers = state.peers(&user_id);
        let chats: Vec<String> = state
            .users
            .get(&user_id)
            .map(|u| u.chats.iter().cloned().collect())
            .unwrap_or_default();
        for chat in chats {
            state.remove_from_chat(&user_id, &chat);
        }
        state.users.remove(&user_id);
        let offline = presence(&user_id, false);
        for peer in &peers {
            state.deliver_to_user(peer, &offline, &self.metrics);
        }
    }

    /// Queues a frame for one connection.
    pub fn send_to_conn(&self, id: ConnId, frame: &Frame) -> bool {
        let state = self.state();
        state
            .conns
            .get(&id)
            .is_some_and(|conn| conn.deliver(frame, &self.metrics))
    }

    /// Queues a frame for every connection of a user; returns how many.
    pub fn send_to_user(&self, user_id: &str, frame: &Frame) -> u32 {
        self.state().deliver_to_user(user_id, frame, &self.metrics)
    }

    /// Queues a frame for every connection of every online participant of a chat.
    pub fn send_to_chat(&self, chat_id: &str, frame: &Frame) -> u32 {
        self.state()
            .deliver_to_chat(chat_id, frame, None, &self.metrics)
    }

    /// Queues a frame for every connection; returns (users, connections) reached.
    pub fn broadcast(&self, frame: &Frame) -> (u32, u32) {
        let state = self.state();
        let mut users = 0;
        let mut conns = 0;
        for user_id in state.users.keys() {
            let reached = state.deliver_to_user(user_id, frame, &self.metrics);
            users += u32::from(reached > 0);
            conns += reached;
        }
        (users, conns)
    }

    /// Records that an online user joined a chat, and exchanges presence with the chat's
    /// online members they did not share a chat with.
    pub fn joined_chat(&self, user_id: &str, chat_id: &str) {
        let mut state = self.state();
        if !state.users.contains_key(user_id) {
            return;
        }
        let before = state.peers(user_id);
        state.add_to_chat(user_id, chat_id);
        let new_peers: Vec<String> = state.peers(user_id).difference(&before).cloned().collect();
        let online = presence(user_id, true);
        for peer in &new_peers {
            state.deliver_to_user(peer, &online, &self.metrics);
            state.deliver_to_user(user_id, &presence(peer, true), &self.metrics);
        }
    }

    /// Records that a user left a chat; their typing indicator there ends.
    pub fn left_chat(&self, user_id: &str, chat_id: &str) {
        let mut state = self.state();
        state.stop_typing(user_id, Some(chat_id), &self.metrics);
        state.remove_from_chat(user_id, chat_id);
    }

    /// Turns a typing indicator on or off and tells the chat's other members. Returns
    /// the generation of an indicator turned on, for [`Hub::expire_typing`].
    pub fn set_typing(
        &self,
        chat_id: &str,
        user_id: &str,
        user_name: &str,
        is_typing: bool,
    ) -> Option<u64> {
        let mut state = self.state();
        let key = (chat_id.to_owned(), user_id.to_owned());
        if !is_typing {
            if state.typing.contains_key(&key) {
                state.stop_typing(user_id, Some(chat_id), &self.metrics);
            }
            return None;
        }
        state.next_typing += 1;
        let generation = state.next_typing;
        let was_typing = state
            .typing
            .insert(key, (generation, user_name.to_owned()))
            .is_some();
        if !was_typing {
            let start = frame(&ServerMessage::ChatTyping(TypingIndicator {
                chat_id: chat_id.to_owned(),
                user_id: user_id.to_owned(),
                user_name: user_name.to_owned(),
                is_typing: true,
            }));
            state.deliver_to_chat(chat_id, &start, Some(user_id), &self.metrics);
        }
        Some(generation)
    }

    /// Ends a typing indicator that nothing renewed or stopped since `generation`.
    pub fn expire_typing(&self, chat_id: &str, user_id: &str, generation: u64) {
        let mut state = self.state();
        let key = (chat_id.to_owned(), user_id.to_owned());
        if state
            .typing
            .get(&key)
            .is_some_and(|(g, _)| *g == generation)
        {
            state.stop_typing(user_id, Some(chat_id), &self.metrics);
        }
    }

    /// Whether an online user participates in a chat.
    pub fn is_member(&self, chat_id: &str, user_id: &str) -> bool {
        self.state()
            .chats
            .get(chat_id)
            .is_some_and(|members| members.contains(user_id))
    }

    /// Whether a typing indicator is on.
    pub fn is_typing(&self, chat_id: &str, user_id: &str) -> bool {
        self.state()
            .typing
            .contains_key(&(chat_id.to_owned(), user_id.to_owned()))
    }

    /// Asks every connection of a user to close with `code`; returns how many.
    pub fn close_user(&self, user_id: &str, code: CloseCode) -> u32 {
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

    /// Asks every connection to close with `code` (shutdown).
    pub fn close_all(&self, code: CloseCode) -> usize {
        let state = self.state();
        for conn in state.conns.values() {
            conn.close.send_replace(Some(code));
        }
        state.conns.len()
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.state().conns.len()
    }

    /// A user's connection status.
    pub fn status(&self, user_id: &str) -> UserStatus {
        let state = self.state();
        Self::status_of(&state, user_id)
    }

    fn status_of(state: &State, user_id: &str) -> UserStatus {
        let conns: Vec<&Conn> = state
            .users
            .get(user_id)
            .map(|u| {
                u.conns
                    .iter()
                    .filter_map(|id| state.conns.get(id))
                    .collect()
            })
            .unwrap_or_default();
        UserStatus {
            user_id: user_id.to_owned(),
            online: !conns.is_empty(),
            connections: u32::try_from(conns.len()).unwrap_or(u32::MAX),
            connected_since: conns.iter().map(|c| c.connected_at).min().map(rfc3339),
        }
    }

    /// Every online user's status, by user id.
    pub fn connected_users(&self) -> Vec<UserStatus> {
        let state = self.state();
        let mut ids: Vec<&String> = state.users.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| Self::status_of(&state, id))
            .collect()
    }
}
