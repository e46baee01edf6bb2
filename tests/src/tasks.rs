//! A task board: an app defined outside Relaywire's own crates, with a catalogue of its
//! own, to prove that an app gets deduplication, numbering, replay, rooms, presence and
//! ephemeral states from the library by declaring its messages and writing handlers.
//!
//! Boards are rooms: adding a task is durable (stored once, however often it is sent),
//! finishing one is a request, joining and leaving a board change membership, and
//! "viewing" is an ephemeral state like typing.

use relaywire_protocol::{DecodeErrorKind, Limits, Seq, Validate, catalogue, check_id, numbered};
use relaywire_server::store::{JoinRule, NewRoom, StoreError, StoreResult};
use relaywire_server::{Answer, App, Context, Event, Failure, Relay};
use serde::{Deserialize, Serialize};

catalogue! {
    /// The task board's protocol.
    pub protocol TaskProtocol;

    /// What a task board client sends.
    pub client TaskClient {
        /// Adds a task to a board; stored once, however often it is sent.
        "task:add" => AddTask(AddTask) as durable,
        /// Marks a task done.
        "task:done" => FinishTask(FinishTask) as request,
        /// Joins a board.
        "board:join" => JoinBoard(JoinBoard) as request { joins: "boardId" },
        /// Leaves a board.
        "board:leave" => LeaveBoard(LeaveBoard) as request { leaves: "boardId" },
        /// Says the user is looking at a board (or stopped).
        "board:viewing" => Viewing(SetViewing) as ephemeral { key: "boardId", active: "viewing" },
    }

    /// What the task board server sends.
    pub server TaskServer {
        /// A task was added to one of the user's boards.
        "task:added" => TaskAdded(TaskAdded) as numbered,
        /// A task was finished.
        "task:done" => TaskDone(TaskDone) as numbered,
        /// Someone started or stopped looking at a board.
        "board:viewing" => Viewing(Viewing) as live,
    }
}

/// Payload of `task:add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AddTask {
    /// The board.
    pub board_id: String,
    /// What is to be done; not empty.
    pub title: String,
}

impl Validate for AddTask {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("boardId", &self.board_id, limits)?;
        relaywire_protocol::check_text("title", &self.title, limits)
    }
}

/// Payload of client `task:done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct FinishTask {
    /// The board.
    pub board_id: String,
    /// The task.
    pub task_id: String,
}

impl Validate for FinishTask {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("boardId", &self.board_id, limits)?;
        check_id("taskId", &self.task_id, limits)
    }
}

/// Payload of `board:join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct JoinBoard {
    /// The board.
    pub board_id: String,
}

impl Validate for JoinBoard {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("boardId", &self.board_id, limits)
    }
}

/// Payload of `board:leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LeaveBoard {
    /// The board.
    pub board_id: String,
}

impl Validate for LeaveBoard {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("boardId", &self.board_id, limits)
    }
}

/// Payload of client `board:viewing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SetViewing {
    /// The board.
    pub board_id: String,
    /// `true` while looking at it.
    pub viewing: bool,
}

impl Validate for SetViewing {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("boardId", &self.board_id, limits)
    }
}

/// Payload of `task:added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct TaskAdded {
    /// The task's id, the server's.
    pub id: String,
    /// The board.
    pub board_id: String,
    /// What is to be done.
    pub title: String,
    /// Who added it.
    pub added_by: String,
    /// Its number in the receiver's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

numbered!(TaskAdded);

/// Payload of server `task:done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct TaskDone {
    /// The board.
    pub board_id: String,
    /// The task.
    pub task_id: String,
    /// Who finished it.
    pub done_by: String,
    /// Its number in the receiver's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

numbered!(TaskDone);

/// Payload of server `board:viewing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Viewing {
    /// The board.
    pub board_id: String,
    /// Who.
    pub user_id: String,
    /// `false` when they stopped, or when the server expired it.
    pub viewing: bool,
}

/// The task board's server side: what each of its messages does. Everything else is
/// the library's.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskApp;

/// The boards every test server starts with: `launch` (alice and bob) and the open
/// board `ideas` (nobody yet).
const BOARDS: [(&str, &str, bool, &[&str]); 2] = [
    ("launch", "Launch", false, &["alice", "bob"]),
    ("ideas", "Ideas", true, &[]),
];

fn viewing(board_id: &str, user_id: &str, viewing: bool) -> TaskServer {
    TaskServer::Viewing(Viewing {
        board_id: board_id.to_owned(),
        user_id: user_id.to_owned(),
        viewing,
    })
}

impl App for TaskApp {
    type Protocol = TaskProtocol;

    async fn handle(
        &self,
        ctx: Context<TaskProtocol>,
        message: TaskClient,
    ) -> Result<Answer, Failure> {
        let user = ctx.user().user_id.clone();
        match message {
            TaskClient::AddTask(add) => {
                let id = uuid::Uuid::now_v7().to_string();
                let added = TaskAdded {
                    id: id.clone(),
                    board_id: add.board_id.clone(),
                    title: add.title,
                    added_by: user.clone(),
                    seq: None,
                };
                let event = Event::to_room(&add.board_id, id, added).from_member(&user);
                Ok(Answer::from(&ctx.publish(event).await?))
            }
            TaskClient::FinishTask(finish) => {
                let done = TaskDone {
                    board_id: finish.board_id.clone(),
                    task_id: finish.task_id.clone(),
                    done_by: user.clone(),
                    seq: None,
                };
                // One `done` per task: the event id says which, the store refuses a second.
                let id = format!("{}:done", finish.task_id);
                let event = Event::to_room(&finish.board_id, id, done).from_member(&user);
                Ok(Answer::from(&ctx.publish(event).await?))
            }
            TaskClient::JoinBoard(join) => {
                ctx.relay()
                    .join(&user, &join.board_id, JoinRule::OpenOnly)
                    .await?;
                Ok(Answer::ok())
            }
            TaskClient::LeaveBoard(leave) => {
                ctx.relay().leave(&user, &leave.board_id).await?;
                Ok(Answer::ok())
            }
            TaskClient::Viewing(set) => {
                if !ctx.relay().is_online_member(&set.board_id, &user).await {
                    return Err(StoreError::NotMember(set.board_id).into());
                }
                let states = (
                    viewing(&set.board_id, &user, true),
                    viewing(&set.board_id, &user, false),
                );
                ctx.relay()
                    .set_state(&set.board_id, &user, "viewing", states, set.viewing);
                Ok(Answer::ok())
            }
            TaskClient::Auth(_) | TaskClient::Ping(_) => Err(Failure::unsupported()),
        }
    }

    async fn start(&self, relay: &Relay<TaskProtocol>) -> StoreResult<()> {
        for (id, title, open, members) in BOARDS {
            let board = NewRoom {
                id: id.to_owned(),
                title: title.to_owned(),
                open,
                members: members.iter().map(|member| (*member).to_owned()).collect(),
            };
            match relay.create_room(board).await {
                Ok(_) | Err(StoreError::RoomExists(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// The task board's TypeScript (`tests/bindings/tasks.ts`).
#[cfg(feature = "typescript")]
pub fn typescript() -> String {
    relaywire_protocol::typescript::Bindings::of::<TaskProtocol>().render()
}
