use futures::StreamExt;
use relaywire_chat::{ChatProtocol, ServerMessage};
use relaywire_client::core::Auth;
use relaywire_client::web::{Client, Options, RequestError};

/// Joins `general`, says hello, and returns what came back from the server. A refusal
/// is `RequestError::Server` with its code (`NOT_PARTICIPANT`, `RATE_LIMITED`, ...).
pub async fn say_hello(url: &str, token: String) -> Result<String, RequestError> {
    // A path such as "/ws" is resolved against the page; `Auth::Cookie` sends the
    // session cookie instead of a token.
    let options = Options::<ChatProtocol>::new(url, Auth::Token(token));
    let (client, mut messages) = Client::connect(options).expect("a ws: URL");
    // A chat's messages reach its members only: join first.
    client.join_chat("general").await?;
    let ack = client
        .send_chat_message("general", "hello from Rust")
        .await?;
    let stored = ack.message_id;
    let mut echoed = None;
    while let Some(message) = messages.next().await {
        if let ServerMessage::ChatMessage(created) = message
            && Some(&created.message.id) == stored.as_ref()
        {
            echoed = Some(created.message.content);
            break;
        }
    }
    // Dropping every handle closes the client too; `close` waits until it has.
    client.close().await;
    Ok(echoed.unwrap_or_default())
}
