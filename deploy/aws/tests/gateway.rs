//! The chat on the serverless deployment, end to end: the real Lambda binaries behind
//! the local API Gateway (its authorizer, routes, Management API and HTTP API), the
//! store and the connections on moto's DynamoDB, native clients and raw sockets in
//! front, Cognito-shaped RS256 tokens against a JWKS served on 127.0.0.1.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/services.rs"]
mod services;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use relaywire_aws::simulator::{Functions, Limits, Simulator};
use relaywire_aws::{DynamoConnections, DynamoStore};
use relaywire_chat::{
    ChatProtocol, ClientMessage, MarkRead, SendMessage, ServerMessage, SetTyping,
};
use relaywire_client::core::{Auth, ReconnectPolicy, Status};
use relaywire_client::native::{Client, Messages, Options};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WAIT: Duration = Duration::from_secs(10);
/// How long the next message of a run may take to arrive.
const ARRIVAL_WAIT: Duration = Duration::from_secs(45);
const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test";
const CLIENT_ID: &str = "client-123";
const SERVICE_KEY: &str = "service-key-of-the-tests-0123456789";

/// A deployment: moto, the JWKS, the simulator and its functions.
struct Deployment {
    simulator: Simulator,
    _moto: services::Moto,
    _turn: Turn,
}

/// The runs that measure nothing lost under faults run alone; the others side by
/// side. On two cores, two deployments of five processes and a moto each slow every
/// invocation enough to blur what a run checks.
static TURNS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>),
}

async fn serve_jwks() -> String {
    let jwk: Value = serde_json::from_str(include_str!(
        "../../../examples/chat-server/tests/server/fixtures/rsa-a.jwk.json"
    ))
    .expect("the fixture is JSON");
    let keys = json!({ "keys": [jwk] });
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let keys = keys.clone();
            async move { axum::Json(keys) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/.well-known/jwks.json")
}

/// A Cognito id token of `user`, valid for `ttl`.
fn id_token(user: &str, ttl: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = json!({
        "sub": user,
        "cognito:username": user,
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "exp": now + ttl.as_secs(),
        "iat": now,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("key-a".to_owned());
    let pem = include_bytes!("../../../examples/chat-server/tests/server/fixtures/rsa-a.pem");
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem).expect("the fixture is a key"),
    )
    .expect("signed")
}

async fn deploy(limits: Limits) -> Deployment {
    deploy_with(limits, &[]).await
}

/// A deployment whose functions also get `settings` (over the defaults).
async fn deploy_with(limits: Limits, settings: &[(&str, &str)]) -> Deployment {
    let turn = Turn::Shared(TURNS.read().await);
    deploy_in_turn(turn, limits, settings).await
}

/// A deployment that runs alone.
async fn deploy_alone(limits: Limits) -> Deployment {
    let turn = Turn::Alone(TURNS.write().await);
    deploy_in_turn(turn, limits, &[]).await
}

async fn deploy_in_turn(turn: Turn, limits: Limits, settings: &[(&str, &str)]) -> Deployment {
    let moto = services::Moto::start().expect("moto starts");
    let dynamodb = relaywire_aws::local_client(&moto.url());
    DynamoStore::new(dynamodb.clone(), "relaywire")
        .create_table()
        .await
        .expect("the store's table");
    DynamoConnections::new(dynamodb, "connections")
        .create_table()
        .await
        .expect("the connections' table");
    let env = [
        ("RELAYWIRE_APP", "chat-demo".to_owned()),
        ("RELAYWIRE_TABLE", "relaywire".to_owned()),
        ("CONNECTIONS_TABLE", "connections".to_owned()),
        ("JWKS_URL", serve_jwks().await),
        ("JWT_ISSUER", ISSUER.to_owned()),
        ("JWT_AUDIENCE", CLIENT_ID.to_owned()),
        ("JWT_TOKEN_USE", "id".to_owned()),
        ("SERVICE_KEYS", SERVICE_KEY.to_owned()),
        ("HEARTBEAT_INTERVAL", "20000".to_owned()),
        // `LAMBDA_LOG=info` shows what the functions did.
        (
            "LOG_LEVEL",
            std::env::var("LAMBDA_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url()),
        ("AWS_ACCESS_KEY_ID", "local".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .chain(
        settings
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    )
    .collect();
    let functions = Functions {
        websocket: env!("CARGO_BIN_EXE_websocket").into(),
        authorizer: Some(env!("CARGO_BIN_EXE_authorizer").into()),
        http: Some(env!("CARGO_BIN_EXE_http-api").into()),
        instances: 2,
        env,
    };
    let simulator = Simulator::start("local", limits, functions)
        .await
        .expect("the simulator starts");
    Deployment {
        simulator,
        _moto: moto,
        _turn: turn,
    }
}

fn options(deployment: &Deployment, user: &str) -> Options<ChatProtocol> {
    let mut options = Options::new(
        deployment.simulator.websocket_url(),
        Auth::Token(id_token(user, Duration::from_secs(3600))),
    );
    options.core.reconnect = ReconnectPolicy {
        initial_delay_ms: 100,
        max_delay_ms: 500,
        ..ReconnectPolicy::default()
    };
    options.core.request_timeout_ms = 5_000;
    options
}

fn say(chat: &str, text: &str) -> ClientMessage {
    SendMessage {
        chat_id: chat.into(),
        content: text.into(),
    }
    .into()
}

async fn next_matching<T>(
    messages: &mut Messages<ServerMessage>,
    pick: impl FnMut(ServerMessage) -> Option<T>,
) -> T {
    next_within(WAIT + WAIT, messages, pick).await
}

async fn next_within<T>(
    wait: Duration,
    messages: &mut Messages<ServerMessage>,
    mut pick: impl FnMut(ServerMessage) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, messages.recv())
            .await
            .expect("the awaited message came in time")
            .expect("the client is running");
        if let Some(found) = pick(message) {
            return found;
        }
    }
}

async fn next_chat(messages: &mut Messages<ServerMessage>) -> (String, Option<u64>) {
    next_within(ARRIVAL_WAIT, messages, |message| match message {
        ServerMessage::ChatMessage(created) => {
            Some((created.message.content, created.seq.map(|seq| seq.get())))
        }
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_read_type_and_see_each_other_through_the_gateway() {
    let deployment = deploy(Limits::default()).await;
    let (alice, mut alice_messages) =
        Client::connect(options(&deployment, "alice")).expect("options");
    let opened = alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    let mut rooms = opened.session.expect("a session").rooms;
    rooms.sort();
    assert_eq!(rooms, ["design", "general"]);

    let (bob, mut bob_messages) = Client::connect(options(&deployment, "bob")).expect("options");
    let opened = bob
        .wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");
    assert_eq!(
        opened.session.expect("a session").online_user_ids,
        ["alice"]
    );
    // Alice learns bob came online.
    next_matching(&mut alice_messages, |message| match message {
        ServerMessage::UserOnline(change) if change.user_id == "bob" && change.online => Some(()),
        _ => None,
    })
    .await;

    let ack = alice
        .request(say("general", "hello bob"))
        .await
        .expect("acknowledged");
    let message_id = ack.message_id.expect("the stored message's id");
    let (content, seq) = next_chat(&mut bob_messages).await;
    assert_eq!(content, "hello bob");
    assert_eq!(seq, Some(1));

    bob.request(
        MarkRead {
            chat_id: "general".into(),
            message_id: message_id.clone(),
        }
        .into(),
    )
    .await
    .expect("the receipt is acknowledged");
    let read = next_matching(&mut alice_messages, |message| match message {
        ServerMessage::ChatRead(receipt) => Some(receipt),
        _ => None,
    })
    .await;
    assert_eq!(
        (read.user_id.as_str(), read.message_id.as_str()),
        ("bob", message_id.as_str())
    );

    bob.send(
        SetTyping {
            chat_id: "general".into(),
            is_typing: true,
        }
        .into(),
    )
    .await
    .expect("typing is sent");
    let typing = next_matching(&mut alice_messages, |message| match message {
        ServerMessage::ChatTyping(typing) => Some(typing),
        _ => None,
    })
    .await;
    assert!(typing.is_typing && typing.user_id == "bob");

    // A chat bob is not in is refused as the socket server refuses it.
    let refused = bob.request(say("nope", "hi")).await.expect_err("refused");
    assert!(
        format!("{refused:?}").contains("NotParticipant"),
        "{refused:?}"
    );

    bob.close().await;
    next_matching(&mut alice_messages, |message| match message {
        ServerMessage::UserOnline(change) if change.user_id == "bob" && !change.online => Some(()),
        _ => None,
    })
    .await;
}

/// A socket opened without the client library.
type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket handshake with these headers and query, offering `protocols`.
async fn raw_connect(
    deployment: &Deployment,
    query: &str,
    headers: &[(&str, String)],
    protocols: &str,
) -> Result<RawSocket, u16> {
    let url = format!("{}{query}", deployment.simulator.websocket_url());
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocols).expect("a header"),
    );
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .expect("a header name");
        request
            .headers_mut()
            .insert(name, HeaderValue::from_str(value).expect("a header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(err) => panic!("the handshake failed otherwise: {err}"),
    }
}

async fn next_json(socket: &mut RawSocket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// The code of the close frame the socket gets next.
async fn close_code(socket: &mut RawSocket) -> Option<u16> {
    tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = frame {
                return frame.map(|frame| u16::from(frame.code));
            }
        }
        None
    })
    .await
    .expect("closed in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_takes_the_token_from_the_cookie_the_query_or_the_header() {
    let deployment = deploy(Limits::default()).await;
    let token = id_token("carol", Duration::from_secs(3600));
    let ways: [(&str, Vec<(&str, String)>); 4] = [
        (
            "",
            vec![("cookie", format!("theme=dark; id_token={token}"))],
        ),
        ("", vec![("cookie", format!("auth={token}"))]),
        (&format!("?token={token}"), vec![]),
        ("", vec![("authorization", format!("Bearer {token}"))]),
    ];
    for (query, headers) in ways.iter() {
        let mut socket = raw_connect(&deployment, query, headers, "relaywire.v4, relaywire.v3")
            .await
            .expect("allowed");
        // Version 4: the client speaks first; `connected` answers.
        socket
            .send(r#"{"type":"ping","payload":{}}"#.into())
            .await
            .expect("sent");
        let connected = next_json(&mut socket).await;
        assert_eq!(connected["type"], "connected", "{connected}");
        assert_eq!(connected["payload"]["userId"], "carol");
        assert_eq!(connected["payload"]["protocolVersion"], 4);
        let pong = next_json(&mut socket).await;
        assert_eq!(pong["type"], "pong", "{pong}");
    }

    // A token that does not verify is denied at the handshake.
    let forged = id_token("carol", Duration::from_secs(3600)).replace('.', ".x");
    let denied = raw_connect(
        &deployment,
        "",
        &[("cookie", format!("id_token={forged}"))],
        "relaywire.v4",
    )
    .await;
    assert_eq!(denied.err(), Some(403));
    // A client that cannot speak first is refused: it would wait for `connected`.
    let old = raw_connect(&deployment, &format!("?token={token}"), &[], "relaywire.v3").await;
    assert_eq!(old.err(), Some(426));

    // Authenticating by message: a bad token is answered, and the close announced.
    let mut socket = raw_connect(&deployment, "?auth=message", &[], "relaywire.v4")
        .await
        .expect("allowed, to authenticate by message");
    socket
        .send(r#"{"type":"auth","id":"a1","payload":{"token":"nonsense"}}"#.into())
        .await
        .expect("sent");
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "AUTH_FAILED");
    assert_eq!(error["payload"]["id"], "a1");
    assert_eq!(error["payload"]["closeCode"], 4001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_pushes_through_the_gateway() {
    let deployment = deploy(Limits::default()).await;
    let (bob, mut bob_messages) = Client::connect(options(&deployment, "bob")).expect("options");
    bob.wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");
    let api = deployment.simulator.http_url().expect("an HTTP API");
    let http = reqwest::Client::new();
    let sent = http
        .post(format!("{api}/api/notifications"))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({ "userId": "bob", "title": "Hi", "body": "from the API" }))
        .send()
        .await
        .expect("the API answers");
    assert!(
        sent.status().is_success(),
        "{}",
        sent.text().await.unwrap_or_default()
    );
    let notification = next_matching(&mut bob_messages, |message| match message {
        ServerMessage::Notification(notification) => Some(notification),
        _ => None,
    })
    .await;
    assert_eq!(notification.body, "from the API");

    let connected: Value = http
        .get(format!("{api}/api/users/connected"))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(connected["users"][0]["userId"], "bob", "{connected}");
    assert_eq!(connected["users"][0]["connections"], 1);

    let status = http
        .delete(format!("{api}/api/users/bob/connections"))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .expect("the API answers");
    assert!(status.status().is_success());
    // Disconnected by an operator: the client stops, as the socket server's 4006 says.
    bob.wait_for(Status::Closed, WAIT)
        .await
        .expect("bob is disconnected");
}

/// Sends `count` messages from `sender`, then checks `receiver` got each exactly once,
/// numbered without a gap, in the order they were stored. (Concurrent invocations may
/// store a client's messages in another order than sent, as on API Gateway.)
async fn all_arrive_once_in_order(
    sender: &Client<ChatProtocol>,
    receiver_status: &Client<ChatProtocol>,
    receiver: &mut Messages<ServerMessage>,
    count: usize,
    between: Duration,
) {
    for i in 0..count {
        // Durable: it waits in the outbox until acknowledged, and goes again, under
        // the same id, on every new connection until then.
        sender
            .send(say("general", &format!("m{i}")))
            .await
            .expect("accepted");
        tokio::time::sleep(between).await;
    }
    let mut received = Vec::new();
    let mut last_seq = 0;
    while received.len() < count {
        // Generous: a machine running other tests makes moto, and so every
        // invocation, slow; a message that does not come is what fails, not a slow one.
        let next = tokio::time::timeout(ARRIVAL_WAIT, next_chat(receiver)).await;
        let Ok((content, seq)) = next else {
            panic!(
                "only {} of {count} arrived: {received:?}; the receiver is {:?}; the sender {:?}",
                received.len(),
                receiver_status.snapshot(),
                sender.snapshot()
            );
        };
        let seq = seq.expect("numbered");
        assert_eq!(
            seq,
            last_seq + 1,
            "no gap and no repeat: {received:?} then {content}"
        );
        last_seq = seq;
        received.push(content);
    }
    let mut sorted = received.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), count, "each message once: {received:?}");
}

/// Cuts every connection `times` times, `every` apart.
async fn cut_repeatedly(simulator: &Simulator, times: usize, every: Duration) {
    for _ in 0..times {
        tokio::time::sleep(every).await;
        simulator.cut_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_and_the_two_hour_cap_lose_nothing() {
    let limits = Limits {
        // The 2-hour cap, shortened: every connection ends after 3 seconds.
        max_duration: Duration::from_secs(3),
        ..Limits::default()
    };
    let deployment = deploy_alone(limits).await;
    let (alice, _alice_messages) = Client::connect(options(&deployment, "alice")).expect("options");
    let (bob, mut bob_messages) = Client::connect(options(&deployment, "bob")).expect("options");
    alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    bob.wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");
    let cutting = cut_repeatedly(&deployment.simulator, 3, Duration::from_millis(1_300));
    let sending = all_arrive_once_in_order(
        &alice,
        &bob,
        &mut bob_messages,
        40,
        Duration::from_millis(150),
    );
    tokio::join!(cutting, sending);
}

/// The chaos run: invocations fail (API Gateway tells the client `Internal server
/// error`) or are slow, the Management API throttles, connections are cut and capped;
/// every message reaches the receiver once, numbered in order: what an invocation
/// failed on stays in the sender's outbox and goes again, under its id, on the next
/// connection.
/// `RELAYWIRE_CHAOS_MESSAGES` makes it longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_nothing_lost_nothing_doubled_order_kept() {
    let messages: usize = std::env::var("RELAYWIRE_CHAOS_MESSAGES")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(60);
    let limits = Limits {
        max_duration: Duration::from_secs(6),
        ..Limits::default()
    };
    let deployment = deploy_alone(limits).await;
    let faults = deployment.simulator.faults();
    faults.fail_invocations(50);
    faults.delay_invocations(Duration::from_millis(80));
    faults.throttle_posts(30);
    let (alice, _alice_messages) = Client::connect(options(&deployment, "alice")).expect("options");
    let (bob, mut bob_messages) = Client::connect(options(&deployment, "bob")).expect("options");
    alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    bob.wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");
    let cuts = messages / 15;
    let cutting = cut_repeatedly(&deployment.simulator, cuts, Duration::from_millis(1_700));
    let sending = all_arrive_once_in_order(
        &alice,
        &bob,
        &mut bob_messages,
        messages,
        Duration::from_millis(60),
    );
    tokio::join!(cutting, sending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_connection_past_the_idle_timeout_and_silence_ends_it() {
    let limits = Limits {
        // API Gateway's 10 minutes, shortened; the heartbeat goes below it.
        idle_timeout: Duration::from_millis(1_500),
        ..Limits::default()
    };
    let deployment = deploy_with(limits, &[("HEARTBEAT_INTERVAL", "400")]).await;
    let (alice, _messages) = Client::connect(options(&deployment, "alice")).expect("options");
    alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(alice.snapshot().status, Status::Open);
    assert_eq!(deployment.simulator.accepted(), 1, "never reconnected");

    // A client that says nothing is closed with 1001 once idle.
    let token = id_token("carol", Duration::from_secs(3600));
    let mut silent = raw_connect(&deployment, &format!("?token={token}"), &[], "relaywire.v4")
        .await
        .expect("allowed");
    let closed = close_code(&mut silent).await;
    assert_eq!(closed, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_api_gateways_limit_close_the_connection_and_clients_are_told_the_limit() {
    let deployment = deploy(Limits::default()).await;
    let token = id_token("carol", Duration::from_secs(3600));
    let mut socket = raw_connect(&deployment, &format!("?token={token}"), &[], "relaywire.v4")
        .await
        .expect("allowed");
    socket
        .send(r#"{"type":"ping","payload":{}}"#.into())
        .await
        .expect("sent");
    let connected = next_json(&mut socket).await;
    let limit = connected["payload"]["maxMessageBytes"]
        .as_u64()
        .expect("a limit");
    assert!(limit <= 32 * 1024, "{connected}");
    let big = format!(
        r#"{{"type":"chat:message","payload":{{"chatId":"general","content":"{}"}}}}"#,
        "x".repeat(40 * 1024)
    );
    let _ = socket.send(big.into()).await;
    let closed = close_code(&mut socket).await;
    assert_eq!(closed, Some(1009));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_service_runs_on_the_same_functions() {
    use relaywire_notify_server::{NotifyProtocol, NotifyServer, SendMessage as Send};
    let deployment = deploy_with(Limits::default(), &[("RELAYWIRE_APP", "notify")]).await;
    let connect = |user: &str| {
        let mut options = Options::<NotifyProtocol>::new(
            deployment.simulator.websocket_url(),
            Auth::Token(id_token(user, Duration::from_secs(3600))),
        );
        options.core.request_timeout_ms = 5_000;
        Client::connect(options).expect("options")
    };
    let (alice, _) = connect("alice");
    let (bob, mut bob_messages) = connect("bob");
    alice
        .wait_for(Status::Open, WAIT)
        .await
        .expect("alice connects");
    bob.wait_for(Status::Open, WAIT)
        .await
        .expect("bob connects");
    alice
        .request(
            Send {
                to: vec!["bob".into()],
                kind: "greeting".into(),
                data: Some(json!({ "text": "hi" })),
            }
            .into(),
        )
        .await
        .expect("stored");
    let message = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NotifyServer::Message(message)) = bob_messages.recv().await {
                return message;
            }
        }
    })
    .await
    .expect("bob gets it");
    assert_eq!(
        (message.from.as_deref(), message.kind.as_str()),
        (Some("alice"), "greeting")
    );
    assert_eq!(message.seq.map(|seq| seq.get()), Some(1));
}
