//! A real server on 127.0.0.1 and real WebSocket and HTTP clients for the tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use relaywire_chat::{ServerMessage, decode_server_message};
use relaywire_chat_server::config::Database;
use relaywire_chat_server::{ChatApp, Config, RunningServer, start};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub(crate) const SECRET: &str = "test-secret-0123456789";
pub(crate) const SERVICE_KEY: &str = "service-key-for-tests";
const WAIT: Duration = Duration::from_secs(5);

/// A config for tests: HS256, a service key, the demo chats; an in-memory store, or
/// with `RELAYWIRE_TEST_POSTGRES` (a PostgreSQL URL, which `cargo xtask test
/// postgres` sets), a new empty PostgreSQL database of that server.
pub(crate) fn config() -> Config {
    let mut config = Config::local(SECRET);
    config.service_keys = vec![SERVICE_KEY.to_owned()];
    if let Ok(server) = std::env::var("RELAYWIRE_TEST_POSTGRES") {
        config.database = Database::Postgres(fresh_database(&server));
    }
    config
}

/// Creates an empty database on the PostgreSQL server of `url`; its URL.
pub(crate) fn fresh_database(url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let created = std::process::Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .status()
        .expect("psql runs");
    assert!(created.success(), "creating database {name} on {url}");
    let (server, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{name}")
}

pub(crate) struct TestServer {
    pub server: RunningServer,
    pub http: reqwest::Client,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::with(config()).await
    }

    pub(crate) async fn with(config: Config) -> Self {
        let server = start(config, ChatApp::with_demo_chats())
            .await
            .expect("server starts");
        Self {
            server,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// Connects as `user` with `?token=` and reads `connected`.
    pub(crate) async fn connect(&self, user: &str) -> (Client, Value) {
        self.connect_speaking(user, &[]).await
    }

    /// Connects as `user` offering the subprotocol `protocol`, and reads `connected`.
    pub(crate) async fn connect_with(&self, user: &str, protocol: &str) -> (Client, Value) {
        self.connect_speaking(user, &[("sec-websocket-protocol", protocol)])
            .await
    }

    async fn connect_speaking(&self, user: &str, headers: &[(&str, &str)]) -> (Client, Value) {
        let url = format!("{}?token={}", self.ws_url(), token(user));
        let mut client = Client::open(&url, headers).await;
        let connected = client.next_json().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        (client, connected)
    }

    /// An admin request with the service key.
    pub(crate) fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(SERVICE_KEY)
    }

    /// The Prometheus text of `GET /metrics`.
    pub(crate) async fn metrics(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await;
        let response = response.expect("the server answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("the metrics are text")
    }

    pub(crate) async fn shutdown(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}

/// Sends the request and reads the JSON answer with its status.
pub(crate) async fn json_of(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    (status, response.json().await.expect("the answer is JSON"))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signed HS256 token valid for an hour.
pub(crate) fn token(user: &str) -> String {
    token_with(user, json!({ "exp": now_secs() + 3600 }))
}

/// A signed HS256 token for `user` with extra claims (which may override `exp`).
pub(crate) fn token_with(user: &str, extra: Value) -> String {
    let mut claims = json!({ "sub": user, "name": format!("{user} name"), "iat": now_secs() });
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub(crate) struct Client {
    pub(crate) ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The subprotocol the server chose, if any.
    pub(crate) protocol: Option<String>,
    /// Frames read while looking for a reply, returned first by `next_json`.
    backlog: VecDeque<Value>,
    /// The messages of a batch frame (protocol 3) not read yet, in order.
    batched: VecDeque<Value>,
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Closed(u16),
    Dropped,
}

impl Client {
    /// Opens a WebSocket with extra handshake headers.
    pub(crate) async fn open(url: &str, headers: &[(&str, &str)]) -> Client {
        Self::try_open(url, headers)
            .await
            .expect("handshake succeeds")
    }

    pub(crate) async fn try_open(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (ws, response) = tokio_tungstenite::connect_async(request).await?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ok(Client {
            ws,
            protocol,
            backlog: VecDeque::new(),
            batched: VecDeque::new(),
        })
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// The next text frame as JSON; fails on close or after five seconds.
    pub(crate) async fn next_json(&mut self) -> Value {
        if let Some(frame) = self.backlog.pop_front() {
            return frame;
        }
        self.read_json().await
    }

    /// The next message read: a batch frame's messages one by one.
    async fn read_json(&mut self) -> Value {
        if let Some(message) = self.batched.pop_front() {
            return message;
        }
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within five seconds")
                .expect("the socket is open")
                .expect("a frame");
            match message {
                Message::Text(text) => match serde_json::from_str(&text).unwrap() {
                    Value::Array(messages) => {
                        self.batched.extend(messages);
                        if let Some(first) = self.batched.pop_front() {
                            return first;
                        }
                    }
                    message => return message,
                },
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, decoded with the protocol crate.
    pub(crate) async fn next_message(&mut self) -> ServerMessage {
        let json = self.next_json().await;
        decode_server_message(&json.to_string()).expect("a valid server message")
    }

    /// The next frame of type `kind`, skipping others (presence, typing) on the way.
    pub(crate) async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let json = self.next_json().await;
            if json["type"] == kind {
                return json;
            }
        }
    }

    /// Asserts nothing but pings arrives for `duration`.
    pub(crate) async fn expect_silence(&mut self, duration: Duration) {
        assert!(
            self.backlog.is_empty(),
            "expected silence, have {:?}",
            self.backlog
        );
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Asserts no frame of type `kind` arrives for `duration` (others may).
    pub(crate) async fn expect_none_of(&mut self, kind: &str, duration: Duration) {
        let deadline = tokio::time::Instant::now() + duration;
        while let Some(frame) = self.backlog.pop_front() {
            assert_ne!(frame["type"], kind, "unexpected {frame}");
        }
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    assert_ne!(frame["type"], kind, "unexpected {frame}");
                }
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("the connection ended: {other:?}"),
            }
        }
    }

    /// Reads until the connection ends; returns the close code, skipping other frames.
    pub(crate) async fn ending(&mut self) -> Ending {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the socket ends within five seconds")
            {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Ending::Closed(u16::from(frame.code));
                }
                Some(Ok(Message::Close(None))) => {
                    return Ending::Closed(u16::from(WsCloseCode::Status));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Ending::Dropped,
            }
        }
    }

    /// Sends a request with `id` and returns the reply that answers it (ack or error).
    pub(crate) async fn request(&mut self, id: &str, frame: Value) -> Value {
        let mut frame = frame;
        frame["id"] = json!(id);
        self.send(frame).await;
        let mut skipped = Vec::new();
        loop {
            let reply = self.read_json().await;
            if (reply["type"] == "ack" || reply["type"] == "error") && reply["payload"]["id"] == id
            {
                self.backlog.extend(skipped);
                return reply;
            }
            skipped.push(reply);
        }
    }
}

/// A server on a database file in a fresh temporary folder.
pub(crate) fn file_database(name: &str) -> (Database, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "relaywire-{name}-{}-{}",
        std::process::id(),
        now_secs()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (Database::File(dir.join("chat.db")), dir)
}
