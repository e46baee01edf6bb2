//! The native client against the real server: the same core as the browser client,
//! driven by tokio.

use std::time::Duration;

use relaywire_chat::{ClientMessage, JoinChat, SendMessage, ServerMessage};
use relaywire_client::core::Status;
use relaywire_client::native::Messages;
use relaywire_client::native::{Client, RequestError};
use relaywire_protocol::{ClientErrorCode, ErrorCode};
use relaywire_tests::{Server, client_options};

const WAIT: Duration = Duration::from_secs(5);

fn say(chat: &str, text: &str) -> ClientMessage {
    SendMessage {
        chat_id: chat.into(),
        content: text.into(),
    }
    .into()
}

async fn next_chat_message(messages: &mut Messages<ServerMessage>) -> String {
    loop {
        let message = tokio::time::timeout(WAIT, messages.recv())
            .await
            .expect("a message within five seconds")
            .expect("the client is running");
        if let ServerMessage::ChatMessage(created) = message {
            return created.message.content;
        }
    }
}

#[tokio::test]
async fn two_native_clients_chat() {
    let server = Server::start("native-chat", |_| {}).await;
    let (alice, _) = Client::connect(client_options(&server, "alice")).expect("valid options");
    let (bob, mut bob_messages) =
        Client::connect(client_options(&server, "bob")).expect("valid options");
    let connected = alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    assert_eq!(connected.session.unwrap().rooms, ["general", "design"]);
    bob.wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");

    let ack = alice
        .request(say("general", "hello bob"))
        .await
        .expect("acknowledged");
    assert!(ack.message_id.is_some());
    assert_eq!(next_chat_message(&mut bob_messages).await, "hello bob");

    let refused = bob
        .request(
            JoinChat {
                chat_id: "nope".into(),
            }
            .into(),
        )
        .await
        .unwrap_err();
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

    alice.close().await;
    let closed = alice.request(say("general", "late")).await.unwrap_err();
    assert_eq!(closed, RequestError::Client(ClientErrorCode::ClientClosed));
}

#[tokio::test]
async fn messages_sent_while_the_server_restarts_arrive_in_order() {
    let mut server = Server::start("native-restart", |_| {}).await;
    let (writer, _) = Client::connect(client_options(&server, "alice")).expect("valid options");
    let (reader, mut reader_messages) =
        Client::connect(client_options(&server, "bob")).expect("valid options");
    writer
        .wait_for(Status::Open, WAIT)
        .await
        .expect("writer connects");
    reader
        .wait_for(Status::Open, WAIT)
        .await
        .expect("reader connects");

    server.stop().await;
    writer
        .wait_for(Status::Reconnecting, WAIT)
        .await
        .expect("the writer notices");
    for text in ["one", "two", "three"] {
        writer.send(say("general", text)).await.expect("queued");
    }
    assert_eq!(writer.snapshot().pending, 3);
    server.restart().await;
    writer
        .wait_for(Status::Open, WAIT)
        .await
        .expect("the writer is back");
    reader
        .wait_for(Status::Open, WAIT)
        .await
        .expect("the reader is back");

    let mut received = Vec::new();
    while received.len() < 3 {
        received.push(next_chat_message(&mut reader_messages).await);
    }
    assert_eq!(received, ["one", "two", "three"]);
    let mut snapshots = writer.watch();
    tokio::time::timeout(WAIT, snapshots.wait_for(|s| s.pending == 0))
        .await
        .expect("every message is acknowledged")
        .expect("the client runs");
}
