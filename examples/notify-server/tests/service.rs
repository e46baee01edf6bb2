//! The notification service over real sockets and real HTTP: typed native clients and
//! raw WebSockets against a server on 127.0.0.1.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use relaywire_client::core::{Auth, Status};
use relaywire_client::native::Messages;
use relaywire_client::native::{self, Client, RequestError};
use relaywire_notify_server::{
    Level, NotifyApp, NotifyClient, NotifyProtocol, NotifyServer, SendMessage, apply_defaults,
};
use relaywire_protocol::ErrorCode;
use relaywire_server::config::{ConnectionPolicy, Env};
use relaywire_server::{Config, RunningServer};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "notify-test-secret-0123456789";
const SERVICE_KEY: &str = "notify-service-key";
const WAIT: Duration = Duration::from_secs(5);

fn token(user: &str) -> String {
    token_with_roles(user, &[])
}

fn token_with_roles(user: &str, roles: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims =
        json!({ "sub": user, "name": user, "iat": now, "exp": now + 3600, "roles": roles });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

struct Service {
    server: RunningServer,
    http: reqwest::Client,
}

impl Service {
    /// The service with its defaults (one connection per user) on an in-memory store.
    async fn start() -> Service {
        let mut config = Config::local(SECRET);
        config.service_keys = vec![SERVICE_KEY.to_owned()];
        apply_defaults(&Env::new(HashMap::new()), &mut config);
        let server = relaywire_server::start(config, NotifyApp)
            .await
            .expect("the service starts");
        Service {
            server,
            http: reqwest::Client::new(),
        }
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.addr())
    }

    async fn client(&self, user: &str) -> (Client<NotifyProtocol>, Messages<NotifyServer>) {
        let options = native::Options::new(self.ws_url(), Auth::Token(token(user)));
        let (client, messages) = Client::connect(options).expect("valid options");
        client
            .wait_for(Status::Open, WAIT)
            .await
            .unwrap_or_else(|snapshot| panic!("{user} connects: {snapshot:?}"));
        (client, messages)
    }

    /// `method path` with `auth` as the bearer token, and its JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.server.addr()));
        if let Some(auth) = auth {
            request = request.bearer_auth(auth);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, auth: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(auth), Some(body))
            .await
    }
}

async fn next_where<T>(
    messages: &mut Messages<NotifyServer>,
    mut pick: impl FnMut(NotifyServer) -> Option<T>,
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

fn message(message: NotifyServer) -> Option<relaywire_notify_server::UserMessage> {
    match message {
        NotifyServer::Message(message) => Some(message),
        _ => None,
    }
}

/// A raw WebSocket, for what a typed client never sends.
struct RawSocket(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl RawSocket {
    async fn open(service: &Service, user: &str, query: &str) -> (RawSocket, Value) {
        let url = format!("{}?token={}{query}", service.ws_url(), token(user));
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the handshake succeeds");
        let mut socket = RawSocket(ws);
        let connected = socket.next().await.expect("connected");
        assert_eq!(connected["type"], "connected", "{connected}");
        (socket, connected)
    }

    async fn send(&mut self, frame: Value) {
        self.0
            .send(Message::text(frame.to_string()))
            .await
            .expect("the frame is sent");
    }

    /// The next text frame, or the close code when the connection ends.
    async fn next_or_close(&mut self) -> Result<Value, Option<u16>> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a frame within five seconds");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(serde_json::from_str(&text).expect("the server sends JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map(|frame| u16::from(frame.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    async fn next(&mut self) -> Result<Value, Option<u16>> {
        self.next_or_close().await
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next().await.expect("the socket stays open");
            if frame["type"] == kind {
                return frame;
            }
        }
    }
}

fn send(to: &[&str], kind: &str, data: Value) -> NotifyClient {
    SendMessage {
        to: to.iter().map(|user| (*user).to_owned()).collect(),
        kind: kind.to_owned(),
        data: Some(data),
    }
    .into()
}

#[tokio::test]
async fn direct_and_multi_user_messages_are_typed_stored_and_numbered() {
    let service = Service::start().await;
    let (alice, _) = service.client("alice").await;
    let (bob, mut bob_messages) = service.client("bob").await;
    let (_carol, mut carol_messages) = service.client("carol").await;
    let head = bob.snapshot().session.and_then(|s| s.seq).unwrap_or(0);

    let ack = alice
        .request(send(&["bob"], "chat", json!({"text": "hi bob"})))
        .await
        .expect("stored and acknowledged");
    let direct = next_where(&mut bob_messages, message).await;
    assert_eq!(ack.message_id.as_deref(), Some(direct.id.as_str()));
    assert_eq!(direct.from.as_deref(), Some("alice"));
    assert_eq!(direct.kind, "chat");
    assert_eq!(direct.data, json!({"text": "hi bob"}));
    assert_eq!(direct.seq.map(|seq| seq.get()), Some(head + 1));

    // One message to several users, a recipient named twice stored once for them.
    alice
        .request(send(
            &["bob", "carol", "bob"],
            "invite",
            json!({"room": "r1"}),
        ))
        .await
        .expect("acknowledged");
    let to_bob = next_where(&mut bob_messages, message).await;
    let to_carol = next_where(&mut carol_messages, message).await;
    assert_eq!(to_bob.id, to_carol.id);
    assert_eq!(to_bob.seq.map(|seq| seq.get()), Some(head + 2));
    assert_eq!(to_carol.kind, "invite");
}

#[tokio::test]
async fn bad_messages_are_refused_with_their_code() {
    let service = Service::start().await;
    let (alice, _) = service.client("alice").await;
    let cases = [
        send(&[], "chat", json!(null)),
        send(&["bob"], " ", json!(null)),
        send(&vec!["bob"; 101], "chat", json!(null)),
    ];
    for case in cases {
        let refused = alice.request(case.clone()).await.unwrap_err();
        assert!(
            matches!(
                refused,
                RequestError::Server {
                    code: ErrorCode::ValidationError,
                    ..
                } | RequestError::Invalid {
                    code: ErrorCode::ValidationError,
                    ..
                }
            ),
            "{case:?}: {refused}"
        );
    }

    // The server refuses them too when a client does not check first.
    let (mut raw, _) = RawSocket::open(&service, "dave", "").await;
    raw.send(json!({"type": "message:send", "id": "m1", "payload": {"to": [], "type": "chat"}}))
        .await;
    let error = raw.next_of("error").await;
    assert_eq!(error["payload"]["code"], "VALIDATION_ERROR", "{error}");
    assert_eq!(error["payload"]["id"], "m1");

    // And the HTTP API, with the body of every API error.
    let (status, body) = service
        .post(
            "/websocket/message/users",
            SERVICE_KEY,
            json!({"userIds": [], "type": "chat"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    let (status, body) = service
        .post(
            "/websocket/message/user",
            SERVICE_KEY,
            json!({"type": "chat"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_offline_user_gets_what_was_sent_when_they_come_back() {
    let service = Service::start().await;
    let (status, sent) = service
        .post(
            "/websocket/message/user",
            SERVICE_KEY,
            json!({"userId": "erin", "type": "reminder", "data": {"at": "09:00"}}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        (sent["recipients"].as_u64(), sent["online"].as_u64()),
        (Some(1), Some(0))
    );
    let (status, notified) = service
        .post(
            "/websocket/notification",
            SERVICE_KEY,
            json!({"userId": "erin", "title": "Welcome", "body": "Glad you are here"}),
        )
        .await;
    assert_eq!(status, 200, "{notified}");

    let (mut erin, connected) = RawSocket::open(&service, "erin", "&lastSeq=0").await;
    assert_eq!(connected["payload"]["replayed"], 2, "{connected}");
    let first = erin.next().await.expect("the replay");
    assert_eq!(first["type"], "message");
    assert_eq!(first["payload"]["id"], sent["messageId"]);
    assert!(first["payload"].get("from").is_none(), "a service sent it");
    assert_eq!(first["payload"]["data"]["at"], "09:00");
    assert_eq!(first["payload"]["seq"], 1);
    let second = erin.next().await.expect("the replay");
    assert_eq!(second["type"], "notification");
    assert_eq!(second["payload"]["title"], "Welcome");
    assert_eq!(second["payload"]["seq"], 2);
    drop(erin);

    // A typed client resumes after the seq the app kept: the notification, once.
    let mut options = native::Options::new(service.ws_url(), Auth::Token(token("erin")));
    options.core.resume_from = Some(1);
    let (_client, mut messages) =
        Client::<NotifyProtocol>::connect(options).expect("valid options");
    let replayed = next_where(&mut messages, |message| match message {
        NotifyServer::Notification(notification) => Some(notification),
        NotifyServer::Message(message) => panic!("kept already: {message:?}"),
        _ => None,
    })
    .await;
    assert_eq!(replayed.seq.map(|seq| seq.get()), Some(2));
}

#[tokio::test]
async fn notifications_broadcasts_and_system_messages() {
    let service = Service::start().await;
    let (_alice, mut alice_messages) = service.client("alice").await;
    let (_bob, mut bob_messages) = service.client("bob").await;

    let (status, sent) = service
        .post(
            "/websocket/notification",
            SERVICE_KEY,
            json!({"userId": "bob", "title": "New Message", "body": "You have a new message", "data": {"unread": 3}}),
        )
        .await;
    assert_eq!((status, sent["online"].as_u64()), (200, Some(1)), "{sent}");
    let notification = next_where(&mut bob_messages, |message| match message {
        NotifyServer::Notification(notification) => Some(notification),
        _ => None,
    })
    .await;
    assert_eq!(notification.title, "New Message");
    assert_eq!(notification.data, Some(json!({"unread": 3})));
    assert!(notification.seq.is_some(), "notifications are numbered");

    // Notifications and broadcasts are for services and admins, not any user.
    let (status, body) = service
        .post(
            "/websocket/notification",
            &token("alice"),
            json!({"userId": "bob", "title": "t", "body": "b"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let admin = token_with_roles("ops", &["admin"]);
    let (status, sent) = service
        .post(
            "/websocket/message/broadcast",
            &admin,
            json!({"type": "maintenance", "data": {"in": "5m"}}),
        )
        .await;
    assert_eq!(
        (status, sent["recipients"].as_u64()),
        (200, Some(2)),
        "{sent}"
    );
    for messages in [&mut alice_messages, &mut bob_messages] {
        let broadcast = next_where(messages, message).await;
        assert_eq!(
            (broadcast.kind.as_str(), broadcast.from),
            ("maintenance", None)
        );
    }

    // A system message is live: pushed through the library's admin API.
    let system = json!({"message": {"type": "system", "payload": {"message": "Deploying", "level": "warning"}}});
    let (status, reach) = service
        .post("/api/messages/broadcast", SERVICE_KEY, system)
        .await;
    assert_eq!(
        (status, reach["usersReached"].as_u64()),
        (200, Some(2)),
        "{reach}"
    );
    let announced = next_where(&mut alice_messages, |message| match message {
        NotifyServer::System(system) => Some(system),
        _ => None,
    })
    .await;
    assert_eq!(
        (announced.message.as_str(), announced.level),
        ("Deploying", Level::Warning)
    );

    // A user sending over HTTP sends as themselves.
    let (status, _) = service
        .post(
            "/websocket/message/user",
            &token("alice"),
            json!({"userId": "bob", "type": "chat", "data": "hello"}),
        )
        .await;
    assert_eq!(status, 200);
    let from_alice = next_where(&mut bob_messages, message).await;
    assert_eq!(from_alice.from.as_deref(), Some("alice"));
}

#[tokio::test]
async fn connections_are_listed_checked_and_closed() {
    let service = Service::start().await;
    let (bob, _) = service.client("bob").await;
    let (status, body) = service
        .call(
            reqwest::Method::GET,
            "/websocket/users/connected",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "AUTH_FAILED", "{body}");

    let (status, connected) = service
        .call(
            reqwest::Method::GET,
            "/websocket/users/connected",
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(connected["users"][0]["userId"], "bob", "{connected}");
    let (_, status_of) = service
        .call(
            reqwest::Method::GET,
            "/websocket/users/bob/status",
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(
        (
            status_of["online"].as_bool(),
            status_of["connections"].as_u64()
        ),
        (Some(true), Some(1))
    );
    let (_, mine) = service
        .call(
            reqwest::Method::GET,
            "/websocket/me/status",
            Some(&token("bob")),
            None,
        )
        .await;
    assert_eq!(mine["userId"], "bob");
    assert_eq!(mine["online"], true);
    let (status, _) = service
        .call(
            reqwest::Method::GET,
            "/websocket/users/bob/status",
            Some(&token("bob")),
            None,
        )
        .await;
    assert_eq!(status, 403, "a user may not look at others");

    let (status, closed) = service
        .call(
            reqwest::Method::DELETE,
            "/websocket/users/bob/disconnect",
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(
        (status, closed["connectionsClosed"].as_u64()),
        (200, Some(1))
    );
    let mut snapshots = bob.watch();
    let ended = tokio::time::timeout(WAIT, snapshots.wait_for(|s| s.status == Status::Closed))
        .await
        .expect("bob's client stops")
        .expect("the client runs")
        .clone();
    assert_eq!(
        ended.last_error.and_then(|error| error.close_code),
        Some(relaywire_protocol::CloseCode::Kicked),
        "kicked clients do not reconnect"
    );
    let (status, body) = service
        .call(
            reqwest::Method::DELETE,
            "/websocket/users/bob/disconnect",
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test]
async fn one_connection_per_user_and_resends_stored_once() {
    let service = Service::start().await;
    let (mut first, _) = RawSocket::open(&service, "frank", "").await;
    let (mut second, _) = RawSocket::open(&service, "frank", "").await;
    loop {
        match first.next_or_close().await {
            Ok(_) => continue,
            Err(code) => {
                assert_eq!(code, Some(4003), "the older connection is replaced");
                break;
            }
        }
    }

    let (_gina, mut gina_messages) = service.client("gina").await;
    let frame = json!({"type": "message:send", "id": "c1", "payload": {"to": ["gina"], "type": "ping", "data": 1}});
    second.send(frame.clone()).await;
    let ack = second.next_of("ack").await;
    second.send(frame).await;
    assert_eq!(
        second.next_of("ack").await,
        ack,
        "the resend gets the first answer"
    );
    let delivered = next_where(&mut gina_messages, message).await;
    assert_eq!(
        Some(delivered.id.as_str()),
        ack["payload"]["messageId"].as_str()
    );
    second
        .send(json!({"type": "message:send", "id": "c2", "payload": {"to": ["gina"], "type": "marker"}}))
        .await;
    assert_eq!(next_where(&mut gina_messages, message).await.kind, "marker");
}

#[test]
fn the_operator_may_allow_many_connections() {
    let mut config = Config::local(SECRET);
    let env = Env::new(HashMap::from([
        ("CONNECTION_POLICY".to_owned(), "multiple".to_owned()),
        ("JWT_SECRET".to_owned(), SECRET.to_owned()),
    ]));
    let mut from_env = Config::from(&env).expect("valid");
    apply_defaults(&env, &mut from_env);
    assert_eq!(from_env.connection_policy, ConnectionPolicy::Multiple);
    apply_defaults(&Env::new(HashMap::new()), &mut config);
    assert_eq!(config.connection_policy, ConnectionPolicy::Single);
}
