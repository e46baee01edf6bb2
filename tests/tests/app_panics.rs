//! An app whose handler panics: the message is answered `INTERNAL_ERROR`, the
//! connection and the server go on, and nothing of the panicking message is stored.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relaywire_server::store::StoreResult;
use relaywire_server::{Answer, App, Context, Failure, Relay};
use relaywire_tests::tasks::{TaskApp, TaskClient, TaskProtocol};
use relaywire_tests::{Server, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &Server<Buggy>, user: &str) -> Socket {
    let url = format!("{}?token={}", server.ws_url(), token(user));
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the handshake succeeds");
    assert_eq!(next(&mut ws).await["type"], "connected");
    ws
}

async fn next(ws: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame within five seconds")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("the server sends JSON");
        }
    }
}

async fn answer(ws: &mut Socket, id: &str, title: &str) -> Value {
    let frame =
        json!({"type": "task:add", "id": id, "payload": {"boardId": "launch", "title": title}});
    ws.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let reply = next(ws).await;
        if matches!(reply["type"].as_str(), Some("ack" | "error")) && reply["payload"]["id"] == id {
            return reply;
        }
    }
}

#[tokio::test]
async fn a_panicking_handler_answers_internal_error_and_everything_goes_on() {
    let mut server = Server::start_app("app-panics", Buggy, |_| {}).await;
    let mut alice = open(&server, "alice").await;
    let mut bob = open(&server, "bob").await;

    let failed = answer(&mut alice, "t1", "panic").await;
    assert_eq!(failed["type"], "error", "{failed}");
    assert_eq!(failed["payload"]["code"], "INTERNAL_ERROR", "{failed}");

    // The same connection, another connection and a new one all work.
    assert_eq!(answer(&mut alice, "t2", "fine").await["type"], "ack");
    assert_eq!(answer(&mut bob, "t3", "fine too").await["type"], "ack");
    let mut carol = open(&server, "alice").await;
    assert_eq!(answer(&mut carol, "t4", "still fine").await["type"], "ack");

    // A resend of the message that panicked is handled afresh (nothing was recorded
    // for it), and panics again rather than returning a stale answer.
    let again = answer(&mut alice, "t1", "panic").await;
    assert_eq!(again["payload"]["code"], "INTERNAL_ERROR", "{again}");
    server.stop().await;
}
