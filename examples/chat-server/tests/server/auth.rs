//! Token sources, verification failures, origins, protocol versions, token expiry
//! and the per-user connection policy.

use std::time::Duration;

use relaywire_chat_server::config::ConnectionPolicy;
use relaywire_protocol::CloseCode;
use serde_json::json;

use crate::support::{Client, Ending, TestServer, config, json_of, token, token_with};

async fn expect_auth_failure(client: &mut Client, close: CloseCode) {
    let error = client.next_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["payload"]["code"], "AUTH_FAILED", "{error}");
    // Said in the server's words: no parser or serde internals.
    let message = error["payload"]["message"].as_str().unwrap_or_default();
    for internal in [
        "JSON",
        "Base64",
        "invalid type",
        "variant",
        "line ",
        "column",
    ] {
        assert!(!message.contains(internal), "{message}");
    }
    assert_eq!(client.ending().await, Ending::Closed(close.code()));
}

#[tokio::test]
async fn every_token_source_authenticates() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let alice = token("alice");
    let cases: Vec<(String, Vec<(&str, String)>)> = vec![
        (format!("{url}?token={alice}"), vec![]),
        (
            url.clone(),
            vec![("authorization", format!("Bearer {alice}"))],
        ),
        (
            url.clone(),
            vec![("cookie", format!("theme=dark; authToken={alice}"))],
        ),
        (url.clone(), vec![("cookie", format!("auth={alice}"))]),
        (url.clone(), vec![("cookie", format!("id_token={alice}"))]),
    ];
    for (url, headers) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut client = Client::open(&url, &headers).await;
        let connected = client.next_json().await;
        assert_eq!(connected["type"], "connected", "{headers:?}");
        assert_eq!(connected["payload"]["userId"], "alice");
    }

    // No token in the handshake: the first message authenticates.
    let mut client = Client::open(&url, &[]).await;
    client
        .send(json!({"type": "auth", "id": "a1", "payload": {"token": alice}}))
        .await;
    let connected = client.next_json().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["payload"]["userId"], "alice");
    server.shutdown().await;
}

#[tokio::test]
async fn connected_tells_the_client_how_to_tune_itself() {
    let server = TestServer::start().await;
    let (_alice, connected) = server.connect("alice").await;
    let payload = &connected["payload"];
    assert_eq!(payload["chatIds"], json!(["general", "design"]));
    assert_eq!(payload["userName"], "alice name");
    assert_eq!(payload["heartbeatIntervalMs"], 30_000);
    assert_eq!(payload["connectionTimeoutMs"], 60_000);
    assert_eq!(payload["typingTimeoutMs"], 3_000);
    assert_eq!(payload["maxMessageBytes"], 10_000);
    assert_eq!(payload["protocolVersion"], 2);
    assert_eq!(payload["seq"], 0, "no event stored yet");
    assert!(payload.get("replayed").is_none(), "nothing to resume from");
    assert_eq!(payload["onlineUserIds"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_get_an_error_then_their_close_code() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let forged = {
        let good = token("alice");
        let (body, _) = good.rsplit_once('.').unwrap();
        format!("{body}.c2lnbmF0dXJl")
    };
    let expired = token_with("alice", json!({"exp": 1_000_000_000}));
    let no_exp = {
        let claims = json!({"sub": "alice"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(crate::support::SECRET.as_bytes()),
        )
        .unwrap()
    };
    // Validly signed, but past what a clock holds, or not valid yet.
    let far = token_with("alice", json!({"exp": 9_223_372_036_854_775_808_u64}));
    let farthest = token_with("alice", json!({"exp": u64::MAX}));
    let not_yet = token_with("alice", json!({"nbf": 4_102_444_800_u64}));
    // Claims of the wrong shape, which the parser describes in its own terms.
    let misshapen = token_with("alice", json!({"roles": {"admin": true}}));
    for token in [&far, &farthest, &not_yet] {
        let (status, body) =
            json_of(server.http.get(server.url("/api/me")).bearer_auth(token)).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "AUTH_FAILED");
    }
    let cases = [
        (forged, CloseCode::AuthFailed),
        ("not-a-jwt".to_owned(), CloseCode::AuthFailed),
        (no_exp, CloseCode::AuthFailed),
        (expired, CloseCode::TokenExpired),
        (far.clone(), CloseCode::AuthFailed),
        (farthest, CloseCode::AuthFailed),
        (not_yet, CloseCode::AuthFailed),
        (misshapen, CloseCode::AuthFailed),
    ];
    for (token, close) in cases {
        let mut client = Client::open(&format!("{url}?token={token}"), &[]).await;
        expect_auth_failure(&mut client, close).await;
    }
    // The auth message answers with its id.
    let mut client = Client::open(&url, &[]).await;
    client
        .send(json!({"type": "auth", "id": "a9", "payload": {"token": "bad"}}))
        .await;
    let error = client.next_json().await;
    assert_eq!(error["payload"]["code"], "AUTH_FAILED");
    assert_eq!(error["payload"]["id"], "a9");
    assert_eq!(client.ending().await, Ending::Closed(4001));

    // Mid-session, such a token is refused and the session goes on.
    let (mut alice, _) = server.connect("alice").await;
    let reply = alice
        .request("r1", json!({"type": "auth", "payload": {"token": far}}))
        .await;
    assert_eq!(reply["payload"]["code"], "AUTH_FAILED", "{reply}");
    let pong = alice
        .request("p1", json!({"type": "ping", "payload": {}}))
        .await;
    assert_eq!(pong["type"], "ack", "{pong}");
    server.shutdown().await;
}

#[tokio::test]
async fn nothing_is_processed_before_auth() {
    let server = TestServer::start().await;
    let mut client = Client::open(&server.ws_url(), &[]).await;
    client
        .send(json!({"type": "chat:message", "id": "m1", "payload": {"chatId": "general", "content": "sneaky"}}))
        .await;
    let error = client.next_json().await;
    assert_eq!(error["payload"]["code"], "AUTH_FAILED");
    assert_eq!(error["payload"]["id"], "m1");
    assert_eq!(client.ending().await, Ending::Closed(4001));

    let (_, history) =
        json_of(server.admin(reqwest::Method::GET, "/api/chats/general/messages")).await;
    assert_eq!(history["messages"], json!([]));
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_auth_message_times_out() {
    let mut config = config();
    config.auth_timeout = Duration::from_millis(300);
    let server = TestServer::with(config).await;
    let mut client = Client::open(&server.ws_url(), &[]).await;
    expect_auth_failure(&mut client, CloseCode::AuthFailed).await;
    server.shutdown().await;
}

#[tokio::test]
async fn auth_close_code_can_be_1008_like_the_fastify_server() {
    let mut config = config();
    config.auth_close_code = CloseCode::PolicyViolation;
    let server = TestServer::with(config).await;
    let mut client = Client::open(&format!("{}?token=bad", server.ws_url()), &[]).await;
    expect_auth_failure(&mut client, CloseCode::PolicyViolation).await;
    // Expired tokens keep their own code, so clients know to refresh.
    let expired = token_with("alice", json!({"exp": 1_000_000_000}));
    let mut client = Client::open(&format!("{}?token={expired}", server.ws_url()), &[]).await;
    expect_auth_failure(&mut client, CloseCode::TokenExpired).await;
    server.shutdown().await;
}

#[tokio::test]
async fn origins_are_checked_at_the_handshake() {
    let server = TestServer::start().await;
    let url = format!("{}?token={}", server.ws_url(), token("alice"));
    let refused = Client::try_open(&url, &[("origin", "https://evil.example")]).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
    let mut allowed = Client::open(&url, &[("origin", "http://localhost:5173")]).await;
    assert_eq!(allowed.next_json().await["type"], "connected");
    server.shutdown().await;
}

#[tokio::test]
async fn with_any_origin_no_other_site_acts_with_the_users_cookie() {
    let mut config = config();
    config.allowed_origins = vec!["*".to_owned(), "https://app.example".to_owned()];
    let server = TestServer::with(config).await;
    let cookie = format!("authToken={}", token("alice"));
    let http = reqwest::Client::new();

    // Any page may call the API, but the browser is never told it may send the
    // cookie, and a cookie sent anyway is not the user.
    let response = http
        .get(server.url("/api/me"))
        .header("origin", "https://evil.example")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let preflight = http
        .request(reqwest::Method::OPTIONS, server.url("/api/me"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    // An origin named in the list keeps credentials.
    let response = http
        .get(server.url("/api/me"))
        .header("origin", "https://app.example")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );

    // The socket: another site's page gets no identity from the cookie, while a token
    // of its own works; the server's own page and named origins use the cookie.
    let mut stranger = Client::open(
        &server.ws_url(),
        &[("origin", "https://evil.example"), ("cookie", &cookie)],
    )
    .await;
    // Not authenticated, it must send an `auth` first; anything else is refused.
    stranger.send(json!({"type": "ping", "payload": {}})).await;
    expect_auth_failure(&mut stranger, CloseCode::AuthFailed).await;
    let with_token = format!("{}?token={}", server.ws_url(), token("alice"));
    let mut tokened = Client::open(&with_token, &[("origin", "https://evil.example")]).await;
    assert_eq!(tokened.next_json().await["type"], "connected");
    let own_origin = server.url("");
    for origin in [own_origin.trim_end_matches('/'), "https://app.example"] {
        let mut page =
            Client::open(&server.ws_url(), &[("origin", origin), ("cookie", &cookie)]).await;
        assert_eq!(
            page.next_json().await["payload"]["userId"],
            "alice",
            "{origin}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn protocol_versions_are_negotiated() {
    let server = TestServer::start().await;
    let url = format!("{}?token={}", server.ws_url(), token("alice"));
    let mut current = Client::open(&url, &[("sec-websocket-protocol", "relaywire.v2")]).await;
    assert_eq!(current.protocol.as_deref(), Some("relaywire.v2"));
    assert_eq!(current.next_json().await["type"], "connected");

    // Version 1 clients still connect; they just never resume.
    let mut older = Client::open(&url, &[("sec-websocket-protocol", "relaywire.v1")]).await;
    assert_eq!(older.protocol.as_deref(), Some("relaywire.v1"));
    assert_eq!(older.next_json().await["type"], "connected");

    // Offering several, the newest the server knows wins.
    let mut both = Client::open(
        &url,
        &[(
            "sec-websocket-protocol",
            "relaywire.v1, relaywire.v2, relaywire.v9",
        )],
    )
    .await;
    assert_eq!(both.protocol.as_deref(), Some("relaywire.v2"));
    assert_eq!(both.next_json().await["type"], "connected");
    let mut newest = Client::open(
        &url,
        &[("sec-websocket-protocol", "relaywire.v3, relaywire.v2")],
    )
    .await;
    assert_eq!(newest.protocol.as_deref(), Some("relaywire.v3"));
    assert_eq!(newest.next_json().await["payload"]["protocolVersion"], 3);

    let mut newer = Client::open(&url, &[("sec-websocket-protocol", "relaywire.v9")]).await;
    let error = newer.next_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        newer.ending().await,
        Ending::Closed(CloseCode::UnsupportedVersion.code())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_expiring_token_closes_with_4002_unless_refreshed() {
    let server = TestServer::start().await;
    let soon = || {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 2;
        token_with("alice", json!({"exp": exp}))
    };
    // Not refreshed: closed when the token expires.
    let mut client = Client::open(&format!("{}?token={}", server.ws_url(), soon()), &[]).await;
    assert_eq!(client.next_json().await["type"], "connected");
    let error = client.next_of("error").await;
    assert_eq!(error["payload"]["code"], "AUTH_FAILED");
    assert_eq!(
        client.ending().await,
        Ending::Closed(CloseCode::TokenExpired.code())
    );

    // Refreshed with an auth message: the connection lives on.
    let mut client = Client::open(&format!("{}?token={}", server.ws_url(), soon()), &[]).await;
    assert_eq!(client.next_json().await["type"], "connected");
    let reply = client
        .request(
            "r1",
            json!({"type": "auth", "payload": {"token": token("alice")}}),
        )
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");
    client.expect_silence(Duration::from_millis(3_500)).await;
    let pong = client
        .request("p1", json!({"type": "ping", "payload": {}}))
        .await;
    assert_eq!(
        pong["type"], "ack",
        "ping with an id is acknowledged too: {pong}"
    );

    // A token of another user is refused without closing.
    let reply = client
        .request(
            "r2",
            json!({"type": "auth", "payload": {"token": token("bob")}}),
        )
        .await;
    assert_eq!(reply["payload"]["code"], "AUTH_FAILED");
    server.shutdown().await;
}

#[tokio::test]
async fn one_connection_per_user_replaces_the_older() {
    let mut config = config();
    config.connection_policy = ConnectionPolicy::Single;
    let server = TestServer::with(config).await;
    let (mut bob, _) = server.connect("bob").await;
    let (mut first, _) = server.connect("alice").await;
    assert_eq!(bob.next_of("user:online").await["payload"]["online"], true);
    let (mut second, _) = server.connect("alice").await;
    assert_eq!(
        first.ending().await,
        Ending::Closed(CloseCode::SessionReplaced.code())
    );
    // Alice never looked offline to Bob.
    bob.expect_silence(Duration::from_millis(300)).await;
    let reply = second
        .request("m", json!({"type": "chat:message", "payload": {"chatId": "general", "content": "still here"}}))
        .await;
    assert_eq!(reply["type"], "ack");
    server.shutdown().await;
}

#[tokio::test]
async fn many_connections_per_user_by_default() {
    let server = TestServer::start().await;
    let (mut bob, _) = server.connect("bob").await;
    let (mut tab1, _) = server.connect("alice").await;
    assert_eq!(
        bob.next_of("user:online").await["payload"],
        json!({"userId": "alice", "online": true})
    );
    let (tab2, _) = server.connect("alice").await;
    // A message reaches both of Alice's tabs.
    bob.request(
        "m",
        json!({"type": "chat:message", "payload": {"chatId": "general", "content": "hi"}}),
    )
    .await;
    assert_eq!(
        tab1.next_of("chat:message").await["payload"]["message"]["content"],
        "hi"
    );
    let mut tab2 = tab2;
    assert_eq!(
        tab2.next_of("chat:message").await["payload"]["message"]["content"],
        "hi"
    );
    assert_eq!(
        bob.next_of("chat:message").await["payload"]["message"]["content"],
        "hi"
    );
    // Alice stays online until her last tab closes.
    tab1.ws.close(None).await.unwrap();
    bob.expect_silence(Duration::from_millis(300)).await;
    tab2.ws.close(None).await.unwrap();
    assert_eq!(
        bob.next_of("user:online").await["payload"],
        json!({"userId": "alice", "online": false})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_auth_message_wins_over_a_cookie_when_announced() {
    let server = TestServer::start().await;
    let cookie = format!("authToken={}", token("cookie-user"));
    // Announced: the cookie is ignored and the auth message decides.
    let url = format!("{}?auth=message", server.ws_url());
    let mut client = Client::open(&url, &[("cookie", &cookie)]).await;
    client
        .send(json!({"type": "auth", "payload": {"token": token("alice")}}))
        .await;
    assert_eq!(client.next_json().await["payload"]["userId"], "alice");
    // Not announced: the cookie authenticates at once, as before.
    let mut client = Client::open(&server.ws_url(), &[("cookie", &cookie)]).await;
    assert_eq!(client.next_json().await["payload"]["userId"], "cookie-user");
    server.shutdown().await;
}
