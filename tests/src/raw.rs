//! A raw WebSocket speaking the wire form, for what a typed client never does (send
//! the same id twice, a message the app mishandles) or does implicitly (`?lastSeq=`).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relaywire_server::App;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{Server, token};

/// How long a frame may take before a test fails.
const WAIT: Duration = Duration::from_secs(5);

/// A connection of one user to a test [`Server`]; every failure panics, as in a test.
#[derive(Debug)]
pub struct RawSocket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl RawSocket {
    /// Connects as `user` with `?token=` and `query` (e.g. `&lastSeq=4`); returns the
    /// socket and its `connected` frame.
    pub async fn open<A: App + Clone>(
        server: &Server<A>,
        user: &str,
        query: &str,
    ) -> (RawSocket, Value) {
        Self::open_url(&server.ws_url(), user, query).await
    }

    /// Like [`RawSocket::open`], to the server at `ws_url`.
    pub async fn open_url(ws_url: &str, user: &str, query: &str) -> (RawSocket, Value) {
        let url = format!("{ws_url}?token={}{query}", token(user));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the handshake succeeds");
        let mut socket = RawSocket(ws);
        let connected = socket.next().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        (socket, connected)
    }

    /// Sends `frame` as a text frame.
    pub async fn send(&mut self, frame: Value) {
        self.0
            .send(Message::text(frame.to_string()))
            .await
            .expect("the frame is sent");
    }

    /// The next text frame, as JSON.
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a frame within five seconds")
                .expect("the socket is open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).expect("the server sends JSON");
            }
        }
    }

    /// The close code the server ends the connection with, skipping frames before it;
    /// `None` when it ends without a close frame.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("the connection ends within five seconds");
            match frame {
                Some(Ok(Message::Close(close))) => return close.map(|c| u16::from(c.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    }

    /// Whether a frame of type `kind` arrives within `wait`.
    pub async fn sees_within(&mut self, kind: &str, wait: Duration) -> bool {
        self.next_of_within(kind, wait).await.is_some()
    }

    /// The next frame of type `kind` if one arrives within `wait`, skipping others.
    pub async fn next_of_within(&mut self, kind: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .ok()?;
            let Some(Ok(Message::Text(text))) = frame else {
                continue;
            };
            let frame: Value = serde_json::from_str(&text).expect("the server sends JSON");
            if frame["type"] == kind {
                return Some(frame);
            }
        }
    }

    /// The next frame of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Sends `frame` with `id` and returns the `ack` or `error` that answers it,
    /// skipping other frames.
    pub async fn request(&mut self, id: &str, frame: Value) -> Value {
        let mut frame = frame;
        frame["id"] = Value::from(id);
        self.send(frame).await;
        loop {
            let reply = self.next().await;
            if matches!(reply["type"].as_str(), Some("ack" | "error"))
                && reply["payload"]["id"] == id
            {
                return reply;
            }
        }
    }
}
