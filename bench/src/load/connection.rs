//! Opening an authenticated connection to either server, as its own clients do: the
//! Relaywire protocol with a token, or Socket.IO's handshake over engine.io v4.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relaywire_chat::{ServerMessage, decode_server_message};
use relaywire_protocol::{Limits, SUBPROTOCOL, split_batch};
use relaywire_tests::token;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use super::process::{Kind, Server};
use crate::Result;

/// An open, authenticated WebSocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// tungstenite zero-fills its whole read buffer before every read (128 KiB by
/// default): with one read per frame of a few KiB, that fill was most of the
/// generator's CPU, taken from the server it measures on the same cores. A frame that
/// does not fit grows the buffer.
const READ_BUFFER: usize = 8 * 1024;

fn config() -> Option<WebSocketConfig> {
    Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER))
}

/// The next text frame; engine.io pings are answered on the way.
pub(crate) async fn next_text(socket: &mut Socket) -> Result<String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                socket
                    .send(Message::text("3"))
                    .await
                    .map_err(|err| err.to_string())?;
            }
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed by the server: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.to_string()),
            None => return Err("the connection ended".to_owned()),
        }
    }
}

/// No size limit: what a server sends is read whole.
fn unlimited() -> Limits {
    Limits {
        max_message_bytes: usize::MAX,
        ..Limits::default()
    }
}

/// Opens a connection for `user`, a participant of `chats`.
pub(crate) async fn open(server: &Server, user: &str, chats: &[String]) -> Result<Socket> {
    let opening = async {
        match server.kind {
            Kind::Relaywire => open_relaywire(server.port, user).await,
            Kind::SocketIo => open_socketio(server.port, user, chats).await,
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .map_err(|_| format!("{user} did not connect within {OPEN_TIMEOUT:?}"))?
}

async fn open_relaywire(port: u16, user: &str) -> Result<Socket> {
    let mut request = format!("ws://127.0.0.1:{port}/ws?token={}", token(user))
        .into_client_request()
        .map_err(|err| err.to_string())?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (mut socket, _) = connect_async_with_config(request, config(), false)
        .await
        .map_err(|err| err.to_string())?;
    loop {
        let text = next_text(&mut socket).await?;
        // Under protocol 3 `connected` may come in a batch with what follows it.
        for message in split_batch(&text, &unlimited()).unwrap_or_default() {
            match decode_server_message(message) {
                Ok(ServerMessage::Connected(_)) => return Ok(socket),
                Ok(ServerMessage::Error(error)) => return Err(format!("{user}: {:?}", error.code)),
                _ => {}
            }
        }
    }
}

async fn open_socketio(port: u16, user: &str, chats: &[String]) -> Result<Socket> {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let (mut socket, _) = connect_async_with_config(url.as_str(), config(), false)
        .await
        .map_err(|err| err.to_string())?;
    let open = next_text(&mut socket).await?;
    if !open.starts_with('0') {
        return Err(format!("no engine.io open packet: {open}"));
    }
    let auth = serde_json::json!({ "token": token(user), "chatIds": chats });
    socket
        .send(Message::text(format!("40{auth}")))
        .await
        .map_err(|err| err.to_string())?;
    loop {
        let packet = next_text(&mut socket).await?;
        if packet.starts_with("40") {
            return Ok(socket);
        }
        if packet.starts_with("44") {
            return Err(format!("{user}: refused: {packet}"));
        }
    }
}
