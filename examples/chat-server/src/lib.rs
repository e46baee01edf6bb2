//! Relaywire's reference chat server: an app on the server library, speaking the chat
//! protocol (`relaywire-chat`). The library authenticates, deduplicates, numbers,
//! replays, fans out, tracks presence and typing, and serves the admin API; this crate
//! says what each chat message does and adds the chat's own HTTP routes.
//!
//! ```no_run
//! # async fn run() -> Result<(), relaywire_server::ServerError> {
//! use relaywire_chat_server::{ChatApp, Config, start};
//!
//! let server = start(Config::local("a-secret-of-sixteen-bytes"), ChatApp::new()).await?;
//! println!("listening on ws://{}/ws", server.addr());
//! server.shutdown().await
//! # }
//! ```

mod api;

use relaywire_chat::{
    ChatMessage, ChatProtocol, ClientMessage, MessageCreated, Notification, ReadReceipt,
    ServerMessage, TypingIndicator,
};
use relaywire_protocol::http::NotifyUser;
use relaywire_server::store::{JoinRule, NewRoom, StoreError, StoreResult};
use relaywire_server::{Answer, App, Context, Event, Failure, Relay, now_rfc3339};

pub use relaywire_server::config;
pub use relaywire_server::{Config, FrameHarness, Identity, RunningServer, ServerError};

/// A chat created at start when it does not exist: id, title, open, participants.
pub type SeedChat = (&'static str, &'static str, bool, &'static [&'static str]);

/// The chat: what each chat message does, and the chat's HTTP routes.
#[derive(Debug, Clone, Default)]
pub struct ChatApp {
    seed: &'static [SeedChat],
}

impl ChatApp {
    /// The chat server.
    pub fn new() -> Self {
        Self::default()
    }

    /// The chat server with the demo's chats (`general`, `random`, `design`), created at
    /// start when they do not exist.
    pub fn with_demo_chats() -> Self {
        Self { seed: &DEMO_CHATS }
    }
}

/// A [`FrameHarness`] of the chat server: the user `fuzzer`, a participant of the open
/// chat `general`, on an in-memory store. For fuzzing and for tests that need no
/// network.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut harness = relaywire_chat_server::frame_harness().await;
/// let replies = harness.frame(r#"{"type":"ping","id":"p1"}"#).await;
/// assert!(replies.iter().any(|reply| reply.contains(r#""type":"ack""#)));
/// # });
/// ```
pub async fn frame_harness() -> FrameHarness<ChatApp> {
    const FUZZ_CHATS: [SeedChat; 1] = [("general", "General", true, &["fuzzer"])];
    let mut config = Config::local("frame-harness-secret-0123");
    config.state_timeout = std::time::Duration::from_millis(1);
    let identity = Identity {
        user_id: "fuzzer".to_owned(),
        name: "Fuzzer".to_owned(),
        roles: Vec::new(),
        expires_at: None,
    };
    FrameHarness::new(ChatApp { seed: &FUZZ_CHATS }, identity, config)
        .await
        .unwrap_or_else(|err| panic!("the chat harness starts: {err}"))
}

/// Starts the chat server.
pub async fn start(config: Config, app: ChatApp) -> Result<RunningServer, ServerError> {
    relaywire_server::start(config, app).await
}

/// The demo's chats.
const DEMO_CHATS: [SeedChat; 3] = [
    ("general", "General", true, &["alice", "bob"]),
    ("random", "Random", true, &[]),
    ("design", "Design review", false, &["alice", "bob"]),
];

fn typing(chat_id: &str, identity: &Identity, is_typing: bool) -> ServerMessage {
    ServerMessage::ChatTyping(TypingIndicator {
        chat_id: chat_id.to_owned(),
        user_id: identity.user_id.clone(),
        user_name: identity.name.clone(),
        is_typing,
    })
}

/// On the socket, a chat that does not exist and one the user may not enter answer
/// alike, `NOT_PARTICIPANT` (as seed 002 names it), so chat ids cannot be probed.
fn not_participant(err: StoreError) -> StoreError {
    match err {
        StoreError::RoomNotFound(chat_id) | StoreError::RoomClosed(chat_id) => {
            StoreError::NotMember(chat_id)
        }
        other => other,
    }
}

impl App for ChatApp {
    type Protocol = ChatProtocol;

    async fn handle(
        &self,
        ctx: Context<ChatProtocol>,
        message: ClientMessage,
    ) -> Result<Answer, Failure> {
        let user = ctx.user().clone();
        let relay = ctx.relay();
        match message {
            ClientMessage::ChatMessage(send) => {
                // Time-ordered (v7): a new id lands at the end of the id index instead
                // of on a random page, which keeps each commit's writes small.
                let id = uuid::Uuid::now_v7().to_string();
                let created = MessageCreated {
                    chat_id: send.chat_id.clone(),
                    message: ChatMessage {
                        id: id.clone(),
                        chat_id: send.chat_id.clone(),
                        sender_id: user.user_id.clone(),
                        sender_name: user.name.clone(),
                        content: send.content,
                        created_at: now_rfc3339(),
                    },
                    seq: None,
                };
                let event = Event::to_room(&send.chat_id, id, created).from_member(&user.user_id);
                let published = ctx.publish(event).await.map_err(not_participant)?;
                Ok(Answer::from(&published))
            }
            ClientMessage::ChatRead(read) => {
                let receipt = ReadReceipt {
                    chat_id: read.chat_id.clone(),
                    message_id: read.message_id.clone(),
                    user_id: user.user_id.clone(),
                    read_at: now_rfc3339(),
                    seq: None,
                };
                let event =
                    Event::to_room(&read.chat_id, uuid::Uuid::now_v7().to_string(), receipt)
                        .from_member(&user.user_id)
                        .moving_cursor("read", read.message_id);
                // A receipt that does not move the reader forward changes nothing.
                ctx.publish(event).await.map_err(not_participant)?;
                Ok(Answer::ok())
            }
            ClientMessage::ChatTyping(set) => {
                if !relay.is_online_member(&set.chat_id, &user.user_id).await {
                    return Err(StoreError::NotMember(set.chat_id).into());
                }
                let states = (
                    typing(&set.chat_id, &user, true),
                    typing(&set.chat_id, &user, false),
                );
                relay.set_state(&set.chat_id, &user.user_id, "typing", states, set.is_typing);
                Ok(Answer::ok())
            }
            ClientMessage::ChatJoin(join) => {
                relay
                    .join(&user.user_id, &join.chat_id, JoinRule::OpenOnly)
                    .await
                    .map_err(not_participant)?;
                Ok(Answer::ok())
            }
            ClientMessage::ChatLeave(leave) => {
                relay
                    .leave(&user.user_id, &leave.chat_id)
                    .await
                    .map_err(not_participant)?;
                Ok(Answer::ok())
            }
            ClientMessage::Auth(_) | ClientMessage::Ping(_) => Err(Failure::unsupported()),
        }
    }

    async fn start(&self, relay: &Relay<ChatProtocol>) -> StoreResult<()> {
        for &(id, title, open, members) in self.seed {
            let room = NewRoom {
                id: id.to_owned(),
                title: title.to_owned(),
                open,
                members: members.iter().map(|m| (*m).to_owned()).collect(),
            };
            match relay.create_room(room).await {
                Ok(_) | Err(StoreError::RoomExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    fn routes(&self) -> axum::Router<Relay<ChatProtocol>> {
        api::routes()
    }

    /// Only these reach clients from outside: chat traffic comes from the chats.
    fn pushable(&self, message: &ServerMessage) -> bool {
        matches!(
            message,
            ServerMessage::Notification(_) | ServerMessage::System(_) | ServerMessage::Event(_)
        )
    }

    fn notification(&self, notify: NotifyUser) -> Option<ServerMessage> {
        Some(ServerMessage::Notification(Notification {
            title: notify.title,
            body: notify.body,
            data: notify.data,
        }))
    }
}
