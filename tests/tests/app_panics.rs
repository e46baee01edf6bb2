//! An app whose handler panics: the message is answered `INTERNAL_ERROR`, the
//! connection and the server go on, and nothing of the panicking message is stored.

use relaywire_server::store::StoreResult;
use relaywire_server::{Answer, App, Context, Failure, Relay};
use relaywire_tests::tasks::{TaskApp, TaskClient, TaskProtocol};
use relaywire_tests::{RawSocket, Server};
use serde_json::{Value, json};

/// The task board, with a bug: a task titled `panic` panics its handler.
#[derive(Debug, Clone)]
struct Buggy;

impl App for Buggy {
    type Protocol = TaskProtocol;

    async fn handle(
        &self,
        ctx: Context<TaskProtocol>,
        message: TaskClient,
    ) -> Result<Answer, Failure> {
        if let TaskClient::AddTask(add) = &message
            && add.title == "panic"
        {
            panic!("a bug in the app's handler");
        }
        TaskApp.handle(ctx, message).await
    }

    async fn start(&self, relay: &Relay<TaskProtocol>) -> StoreResult<()> {
        TaskApp.start(relay).await
    }
}

async fn add(socket: &mut RawSocket, id: &str, title: &str) -> Value {
    let frame = json!({"type": "task:add", "payload": {"boardId": "launch", "title": title}});
    socket.request(id, frame).await
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_error_and_everything_goes_on() {
    let mut server = Server::start_app("app-panics", Buggy, |_| {}).await;
    let (mut alice, _) = RawSocket::open(&server, "alice", "").await;
    let (mut bob, _) = RawSocket::open(&server, "bob", "").await;

    let failed = add(&mut alice, "t1", "panic").await;
    assert_eq!(failed["type"], "error", "{failed}");
    assert_eq!(failed["payload"]["code"], "INTERNAL_ERROR", "{failed}");

    // The same connection, another connection and a new one all work.
    assert_eq!(add(&mut alice, "t2", "fine").await["type"], "ack");
    assert_eq!(add(&mut bob, "t3", "fine too").await["type"], "ack");
    let (mut alice_again, _) = RawSocket::open(&server, "alice", "").await;
    assert_eq!(
        add(&mut alice_again, "t4", "still fine").await["type"],
        "ack"
    );

    // A resend of the message that panicked is handled afresh (nothing was recorded
    // for it), and panics again rather than returning a stale answer.
    let again = add(&mut alice, "t1", "panic").await;
    assert_eq!(again["payload"]["code"], "INTERNAL_ERROR", "{again}");
    server.stop().await;
}
