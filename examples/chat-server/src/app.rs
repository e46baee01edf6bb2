//! The server's shared state and the chat operations both the WebSocket and the HTTP
//! API use: each stores what it changes, then tells the hub, in one store job, so
//! clients receive changes in the order they were stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use relaywire_chat::ServerMessage;
use relaywire_chat::http::{ChatSummary, CreateChat};
use relaywire_protocol::{CONNECTION_TIMEOUT_MS, CloseCode, Connected, PROTOCOL_VERSION, Seq};
use tokio::sync::{mpsc, watch};

use crate::auth::{Identity, Verifier};
use crate::config::Config;
use crate::hub::{ConnId, Frame, Hub, frame};
use crate::metrics::Metrics;
use crate::shutdown::Tracker;
use crate::store::queries::{self, NewMessage};
use crate::store::{Posted, Store, StoreError, StoredRead};

/// Switches for end-to-end tests; only reachable when `TEST_HOOKS` is on.
#[derive(Debug, Default)]
pub struct TestHooks {
    /// When set, `ping` gets no `pong`: the connection looks dead to the client.
    pub pongs_paused: AtomicBool,
    /// When set, nothing is acknowledged: a client's requests time out.
    pub acks_paused: AtomicBool,
}

/// Everything a request or a connection needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    /// The configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// Connections and delivery.
    pub hub: Arc<Hub>,
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Test switches.
    pub test_hooks: Arc<TestHooks>,
    /// Live connection tasks, waited for at shutdown.
    pub tracker: Arc<Tracker>,
    /// Becomes `true` when the server shuts down: sockets close with 1001.
    pub shutting_down: watch::Receiver<bool>,
}

fn millis(duration: std::time::Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(CONNECTION_TIMEOUT_MS)
}

impl App {
    /// The state of a server with this configuration over this store, and the switch
    /// that starts its shutdown (send `true`).
    pub fn new(config: Config, store: Store) -> (App, watch::Sender<bool>) {
        let metrics = Arc::new(Metrics::default());
        let (shutdown, shutting_down) = watch::channel(false);
        let app = App {
            hub: Arc::new(Hub::new(config.connection_policy, Arc::clone(&metrics))),
            verifier: Arc::new(Verifier::new(&config.auth)),
            config: Arc::new(config),
            store,
            metrics,
            test_hooks: Arc::new(TestHooks::default()),
            tracker: Arc::new(Tracker::default()),
            shutting_down,
        };
        (app, shutdown)
    }

    /// Registers an authenticated connection: records the user, loads their chats,
    /// and queues `connected` as the connection's first frame. With `resume_after`,
    /// the events the client missed follow at once, before anything new: the whole
    /// registration runs on the store thread, so no event can fall in between.
    pub async fn connect(
        &self,
        identity: &Identity,
        frames: mpsc::Sender<Frame>,
        close: Arc<watch::Sender<Option<CloseCode>>>,
        resume_after: Option<Seq>,
    ) -> Result<ConnId, StoreError> {
        let hub = Arc::clone(&self.hub);
        let config = Arc::clone(&self.config);
        let user_id = identity.user_id.clone();
        let name = identity.name.clone();
        // The replay must fit in the connection's queue beside live traffic.
        let replay_limit = (config.outbound_queue / 2).max(1);
        self.store
            .run_then(
                move |db| {
                    queries::upsert_user(db, &user_id, &name)?;
                    let chat_ids = queries::chat_ids_of(db, &user_id)?;
                    let head = queries::head_seq(db)?;
                    let mut missed = match resume_after {
                        Some(after) => {
                            queries::events_since(db, &user_id, after, replay_limit + 1)?
                        }
                        None => Vec::new(),
                    };
                    let truncated = missed.len() > replay_limit;
                    missed.truncate(replay_limit);
                    Ok((user_id, name, chat_ids, head, missed, truncated))
                },
                // Registered after the commit and in store order, so every event after
                // `head` reaches the connection live, and none before it does twice.
                move |(user_id, name, chat_ids, head, missed, truncated)| {
                    let registered = hub.register(&user_id, &chat_ids, frames, close, |online| {
                        let connected = frame(&ServerMessage::Connected(Connected {
                            user_id: user_id.clone(),
                            chat_ids: chat_ids.clone(),
                            user_name: Some(name.clone()),
                            online_user_ids: Some(online),
                            heartbeat_interval_ms: Some(millis(config.heartbeat_interval)),
                            connection_timeout_ms: Some(millis(config.connection_timeout)),
                            typing_timeout_ms: Some(millis(config.typing_timeout)),
                            max_message_bytes: u32::try_from(config.limits.max_message_bytes)
                                .ok(),
                            protocol_version: Some(PROTOCOL_VERSION),
                            seq: Some(head),
                            replayed: resume_after
                                .map(|_| u32::try_from(missed.len()).unwrap_or(u32::MAX)),
                            replay_truncated: truncated.then_some(true),
                        }));
                        std::iter::once(connected)
                            .chain(missed.into_iter().map(Frame::from))
                            .collect()
                    });
                    if registered.replaced > 0 {
                        tracing::info!(%user_id, replaced = registered.replaced, "replaced older connections");
                    }
                    registered.id
                },
            )
            .await
    }

    /// Stores a chat message and delivers it, numbered, to the chat's online
    /// participants. A message re-sent under the same client id (a lost ack, a
    /// reconnect) is found, not stored or delivered again: the sender gets the same id.
    pub async fn post_message(
        &self,
        sender: &Identity,
        chat_id: String,
        content: String,
        client_id: Option<String>,
    ) -> Result<Posted, StoreError> {
        let hub = Arc::clone(&self.hub);
        let sender_id = sender.user_id.clone();
        let sender_name = sender.name.clone();
        let chat = chat_id.clone();
        self.store
            .run_then(
                move |db| {
                    queries::post_message(
                        db,
                        &NewMessage {
                            chat_id: &chat_id,
                            sender_id: &sender_id,
                            sender_name: &sender_name,
                            content: &content,
                            client_id: client_id.as_deref(),
                        },
                    )
                },
                move |posted| {
                    if let Some(frame) = &posted.frame {
                        hub.send_to_chat(&chat, &Frame::from(frame.clone()));
                    }
                    posted
                },
            )
            .await
    }

    /// Stores a read receipt and, when it moved forward, tells the chat (numbered).
    pub async fn mark_read(
        &self,
        reader: &Identity,
        chat_id: String,
        message_id: String,
    ) -> Result<StoredRead, StoreError> {
        let hub = Arc::clone(&self.hub);
        let user_id = reader.user_id.clone();
        let chat = chat_id.clone();
        self.store
            .run_then(
                move |db| queries::mark_read(db, &chat_id, &user_id, &message_id),
                move |stored| {
                    if let Some(frame) = &stored.frame {
                        hub.send_to_chat(&chat, &Frame::from(frame.clone()));
                    }
                    stored
                },
            )
            .await
    }

    /// Adds the user to an open chat; online, they start receiving it at once.
    pub async fn join(&self, user: &Identity, chat_id: String) -> Result<(), StoreError> {
        let hub = Arc::clone(&self.hub);
        let user_id = user.user_id.clone();
        self.store
            .run_then(
                move |db| {
                    queries::join_chat(db, &chat_id, &user_id)?;
                    Ok((user_id, chat_id))
                },
                move |(user_id, chat_id)| hub.joined_chat(&user_id, &chat_id),
            )
            .await
    }

    /// Removes the user from a chat.
    pub async fn leave(&self, user: &Identity, chat_id: String) -> Result<(), StoreError> {
        let hub = Arc::clone(&self.hub);
        let user_id = user.user_id.clone();
        self.store
            .run_then(
                move |db| {
                    queries::leave_chat(db, &chat_id, &user_id)?;
                    Ok((user_id, chat_id))
                },
                move |(user_id, chat_id)| hub.left_chat(&user_id, &chat_id),
            )
            .await
    }

    /// Turns a typing indicator on or off; an indicator nobody stops ends by itself
    /// after the typing timeout.
    pub fn set_typing(
        &self,
        user: &Identity,
        chat_id: &str,
        is_typing: bool,
    ) -> Result<(), StoreError> {
        if !self.hub.is_member(chat_id, &user.user_id) {
            return Err(StoreError::NotParticipant(chat_id.to_owned()));
        }
        let Some(generation) = self
            .hub
            .set_typing(chat_id, &user.user_id, &user.name, is_typing)
        else {
            return Ok(());
        };
        let hub = Arc::clone(&self.hub);
        let chat_id = chat_id.to_owned();
        let user_id = user.user_id.clone();
        let timeout = self.config.typing_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            hub.expire_typing(&chat_id, &user_id, generation);
        });
        Ok(())
    }

    /// Creates a chat; its online participants start receiving it at once.
    pub async fn create_chat(&self, request: CreateChat) -> Result<ChatSummary, StoreError> {
        let hub = Arc::clone(&self.hub);
        self.store
            .run_then(
                move |db| queries::create_chat(db, &request),
                move |chat| {
                    for user_id in &chat.participant_ids {
                        hub.joined_chat(user_id, &chat.id);
                    }
                    chat
                },
            )
            .await
    }

    /// Adds participants to any chat (open or closed).
    pub async fn add_participants(
        &self,
        chat_id: String,
        user_ids: Vec<String>,
    ) -> Result<ChatSummary, StoreError> {
        let hub = Arc::clone(&self.hub);
        self.store
            .run_then(
                move |db| {
                    for user_id in &user_ids {
                        queries::add_participant(db, &chat_id, user_id)?;
                    }
                    Ok((user_ids, queries::chat(db, &chat_id)?))
                },
                move |(user_ids, chat)| {
                    for user_id in &user_ids {
                        hub.joined_chat(user_id, &chat.id);
                    }
                    chat
                },
            )
            .await
    }

    /// Whether acknowledgements are paused (test hook).
    pub fn acks_paused(&self) -> bool {
        self.config.test_hooks && self.test_hooks.acks_paused.load(Ordering::Relaxed)
    }

    /// Whether `pong` replies are paused (test hook).
    pub fn pongs_paused(&self) -> bool {
        self.config.test_hooks && self.test_hooks.pongs_paused.load(Ordering::Relaxed)
    }
}
