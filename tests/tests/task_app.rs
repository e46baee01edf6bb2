//! An app with a catalogue of its own, the task board, on the server library: typed
//! native clients over real sockets get numbering, replay, deduplication, rooms,
//! presence and ephemeral states without the app writing any of it.

use std::time::Duration;

use relaywire_client::core::Status;
use relaywire_client::native::Messages;
use relaywire_client::native::{Client, RequestError};
use relaywire_protocol::{ErrorCode, Seq};
use relaywire_tests::tasks::{
    AddTask, FinishTask, JoinBoard, LeaveBoard, SetViewing, TaskApp, TaskClient, TaskServer,
};
use relaywire_tests::{RawSocket, Server, client_options};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

fn add(board: &str, title: &str) -> TaskClient {
    AddTask {
        board_id: board.into(),
        title: title.into(),
    }
    .into()
}

async fn next_where<T>(
    messages: &mut Messages<TaskServer>,
    mut pick: impl FnMut(TaskServer) -> Option<T>,
) -> T {
    loop {
        let message = tokio::time::timeout(WAIT, messages.recv())
            .await
            .expect("a message within five seconds")
            .expect("the client is running");
        if let Some(found) = pick(message) {
            return found;
        }
    }
}

async fn open(
    server: &Server<TaskApp>,
    user: &str,
) -> (
    Client<relaywire_tests::tasks::TaskProtocol>,
    Messages<TaskServer>,
) {
    let (client, messages) = Client::connect(client_options(server, user)).expect("valid options");
    client
        .wait_for(Status::Open, WAIT)
        .await
        .unwrap_or_else(|snapshot| panic!("{user} connects: {snapshot:?}"));
    (client, messages)
}

#[tokio::test]
async fn tasks_are_stored_numbered_fanned_out_and_replayed() {
    let mut server = Server::start_app("tasks-numbered", TaskApp, |_| {}).await;
    let (alice, _) = open(&server, "alice").await;
    let (bob, mut bob_messages) = open(&server, "bob").await;
    let session = bob.snapshot().session.expect("a session");
    assert_eq!(session.rooms, ["launch"]);
    let head = session.seq.unwrap_or(0);

    let ack = alice
        .request(add("launch", "write the announcement"))
        .await
        .expect("stored and acknowledged");
    let task_id = ack.message_id.expect("the ack names the task");
    let added = next_where(&mut bob_messages, |message| match message {
        TaskServer::TaskAdded(added) => Some(added),
        _ => None,
    })
    .await;
    assert_eq!(added.id, task_id);
    assert_eq!(added.added_by, "alice");
    assert_eq!(added.seq, Seq::new(head + 1).ok());

    // Bob goes away; a task is finished and another added while he is gone, and the
    // server restarts in between: the store keeps both, numbered after what he saw.
    bob.close().await;
    let finish = TaskClient::from(FinishTask {
        board_id: "launch".into(),
        task_id: task_id.clone(),
    });
    alice.request(finish.clone()).await.expect("finished");
    server.restart().await;
    alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice is back");
    alice
        .request(add("launch", "book the room"))
        .await
        .expect("stored after the restart");

    let (mut bob, connected) =
        RawSocket::open(&server, "bob", &format!("&lastSeq={}", head + 1)).await;
    assert_eq!(connected["payload"]["replayed"], 2, "{connected}");
    let done = bob.next().await;
    assert_eq!(done["type"], "task:done", "{done}");
    assert_eq!(done["payload"]["taskId"], task_id.as_str());
    assert_eq!(done["payload"]["seq"], head + 2);
    let second = bob.next().await;
    assert_eq!(second["type"], "task:added", "{second}");
    assert_eq!(second["payload"]["title"], "book the room");
    assert_eq!(second["payload"]["seq"], head + 3);

    // A task is finished once: the event id says which, the store refuses another.
    let again = alice.request(finish).await.unwrap_err();
    assert!(
        matches!(
            again,
            RequestError::Server {
                code: ErrorCode::ValidationError,
                ..
            }
        ),
        "{again}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_durable_message_sent_twice_is_stored_and_delivered_once() {
    let server = Server::start_app("tasks-dedup", TaskApp, |_| {}).await;
    let (_bob, mut bob_messages) = open(&server, "bob").await;
    let (mut alice, _) = RawSocket::open(&server, "alice", "").await;
    let frame = json!({
        "type": "task:add",
        "id": "client-1",
        "payload": {"boardId": "launch", "title": "only once"},
    });
    alice.send(frame.clone()).await;
    let first = alice.next_of("ack").await;
    alice.send(frame).await;
    let second = alice.next_of("ack").await;
    assert_eq!(first["payload"]["id"], "client-1");
    assert_eq!(first, second, "the resend gets the first answer");

    let delivered = next_where(&mut bob_messages, |message| match message {
        TaskServer::TaskAdded(added) => Some(added),
        _ => None,
    })
    .await;
    assert_eq!(
        Some(delivered.id.as_str()),
        first["payload"]["messageId"].as_str()
    );
    // Nothing else follows: a marker added after it is the next task Bob sees.
    alice
        .send(json!({"type": "task:add", "id": "client-2", "payload": {"boardId": "launch", "title": "marker"}}))
        .await;
    alice.next_of("ack").await;
    let next = next_where(&mut bob_messages, |message| match message {
        TaskServer::TaskAdded(added) => Some(added),
        _ => None,
    })
    .await;
    assert_eq!(next.title, "marker");

    // Bad input is refused with its code and stores nothing.
    alice
        .send(json!({"type": "task:add", "id": "client-3", "payload": {"boardId": "launch", "title": ""}}))
        .await;
    let refused = alice.next_of("error").await;
    assert_eq!(refused["payload"]["code"], "VALIDATION_ERROR", "{refused}");
    assert_eq!(refused["payload"]["id"], "client-3");
}

#[tokio::test]
async fn boards_are_rooms_with_membership_and_presence() {
    let server = Server::start_app("tasks-rooms", TaskApp, |_| {}).await;
    let (alice, mut alice_messages) = open(&server, "alice").await;
    let (carol, carol_messages) = open(&server, "carol").await;

    // Carol is on no board: she may not add to `launch`, and `launch` is closed.
    let refused = carol.request(add("launch", "sneak in")).await.unwrap_err();
    assert!(
        matches!(
            refused,
            RequestError::Server {
                code: ErrorCode::NotParticipant,
                ..
            }
        ),
        "{refused}"
    );
    let join = |board: &str| -> TaskClient {
        JoinBoard {
            board_id: board.into(),
        }
        .into()
    };
    let closed = carol.request(join("launch")).await.unwrap_err();
    assert!(
        matches!(
            closed,
            RequestError::Server {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{closed}"
    );

    // `ideas` is open: both join, and the session's rooms follow the acknowledged joins.
    carol.request(join("ideas")).await.expect("carol joins");
    alice.request(join("ideas")).await.expect("alice joins");
    assert_eq!(
        carol.snapshot().session.expect("a session").rooms,
        ["ideas"]
    );
    carol
        .request(add("ideas", "a mascot"))
        .await
        .expect("a member adds");
    let added = next_where(&mut alice_messages, |message| match message {
        TaskServer::TaskAdded(added) => Some(added),
        _ => None,
    })
    .await;
    assert_eq!(
        (added.board_id.as_str(), added.added_by.as_str()),
        ("ideas", "carol")
    );

    // Viewing is an ephemeral state: it fans out to the board, and ends with a leave.
    carol
        .send(
            SetViewing {
                board_id: "ideas".into(),
                viewing: true,
            }
            .into(),
        )
        .await
        .expect("sent");
    let viewing = next_where(&mut alice_messages, |message| match message {
        TaskServer::Viewing(viewing) => Some(viewing),
        _ => None,
    })
    .await;
    assert_eq!((viewing.user_id.as_str(), viewing.viewing), ("carol", true));

    // Leaving the board ends her state there.
    carol
        .request(
            LeaveBoard {
                board_id: "ideas".into(),
            }
            .into(),
        )
        .await
        .expect("carol leaves");
    assert!(
        carol
            .snapshot()
            .session
            .expect("a session")
            .rooms
            .is_empty()
    );
    let stopped = next_where(&mut alice_messages, |message| match message {
        TaskServer::Viewing(viewing) if !viewing.viewing => Some(viewing),
        _ => None,
    })
    .await;
    assert_eq!(stopped.user_id, "carol");
    let not_member = carol
        .request(add("ideas", "after leaving"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            not_member,
            RequestError::Server {
                code: ErrorCode::NotParticipant,
                ..
            }
        ),
        "{not_member}"
    );

    // Presence: Carol's going offline reaches Alice, who shares a board with her again.
    carol
        .request(join("ideas"))
        .await
        .expect("carol joins again");
    carol.close().await;
    let offline = next_where(&mut alice_messages, |message| match message {
        TaskServer::UserOnline(change) if change.user_id == "carol" && !change.online => {
            Some(change)
        }
        _ => None,
    })
    .await;
    assert_eq!(offline.user_id, "carol", "carol's last connection closed");
    drop(carol_messages);
}
