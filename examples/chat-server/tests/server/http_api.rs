//! The HTTP API: admin endpoints guarded by a service key or the admin role, user
//! endpoints, dev login, health and metrics, with JSON errors.

use relaywire_protocol::CloseCode;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Client, Ending, TestServer, config, json_of, token, token_with};

#[tokio::test]
async fn admin_endpoints_need_a_service_key_or_the_admin_role() {
    let server = TestServer::start().await;
    let url = server.url("/api/users/connected");
    let (status, body) = json_of(server.http.get(&url)).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AUTH_FAILED");

    let (status, body) = json_of(server.http.get(&url).bearer_auth(token("alice"))).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "FORBIDDEN");

    let admin = token_with(
        "root",
        json!({"cognito:groups": ["admin"], "exp": 4_000_000_000u64}),
    );
    let (status, _) = json_of(server.http.get(&url).bearer_auth(admin)).await;
    assert_eq!(status, 200);
    let (status, _) = json_of(server.admin(Method::GET, "/api/users/connected")).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn chats_are_created_listed_and_joined_through_the_api() {
    let server = TestServer::start().await;
    let (mut dave, _) = server.connect("dave").await;
    let (status, chat) = json_of(
        server
            .admin(Method::POST, "/api/chats")
            .json(&json!({"id": "ops", "title": "Ops", "participantIds": ["dave", "erin"]})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(chat["open"], false);
    assert_eq!(chat["participantIds"], json!(["dave", "erin"]));

    // Dave is online: he can post in the new chat at once.
    let reply = dave
        .request(
            "m",
            json!({"type": "chat:message", "payload": {"chatId": "ops", "content": "first"}}),
        )
        .await;
    assert_eq!(reply["type"], "ack", "{reply}");

    let (status, body) = json_of(
        server
            .admin(Method::POST, "/api/chats")
            .json(&json!({"id": "ops", "title": "again"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    let (status, _) = json_of(
        server
            .admin(Method::POST, "/api/chats")
            .json(&json!({"title": ""})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = json_of(
        server
            .admin(Method::POST, "/api/chats")
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");

    let (_, list) = json_of(server.admin(Method::GET, "/api/chats")).await;
    let ids: Vec<_> = list["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!("general"),
            json!("random"),
            json!("design"),
            json!("ops")
        ]
    );

    let (status, chat) = json_of(
        server
            .admin(Method::POST, "/api/chats/ops/participants")
            .json(&json!({"userIds": ["frank"]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(chat["participantIds"], json!(["dave", "erin", "frank"]));
    let (status, body) = json_of(
        server
            .admin(Method::POST, "/api/chats/nope/participants")
            .json(&json!({"userIds": ["x"]})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    server.shutdown().await;
}

#[tokio::test]
async fn pushes_reach_users_as_notification_system_and_event() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    alice.next_of("user:online").await;

    let (status, delivery) = json_of(server.admin(Method::POST, "/api/notifications").json(
        &json!({"userId": "alice", "title": "New Message", "body": "You have a new message"}),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        delivery,
        json!({"usersReached": 1, "connectionsReached": 1})
    );
    let notification = alice.next_json().await;
    assert_eq!(
        notification,
        json!({"type": "notification", "payload": {"title": "New Message", "body": "You have a new message"}})
    );

    let event =
        json!({"type": "event", "payload": {"name": "order:shipped", "data": {"orderId": 42}}});
    server
        .admin(Method::POST, "/api/messages/user")
        .json(&json!({"userId": "bob", "message": event}))
        .send()
        .await
        .unwrap();
    assert_eq!(bob.next_json().await, event);

    let system = json!({"type": "system", "payload": {"message": "Maintenance at 02:00", "level": "warning"}});
    let (_, delivery) = json_of(
        server
            .admin(Method::POST, "/api/messages/users")
            .json(&json!({"userIds": ["alice", "bob", "bob", "nobody"], "message": system})),
    )
    .await;
    assert_eq!(
        delivery,
        json!({"usersReached": 2, "connectionsReached": 2})
    );
    assert_eq!(alice.next_json().await, system);
    assert_eq!(bob.next_json().await, system);

    let (_, delivery) = json_of(
        server
            .admin(Method::POST, "/api/messages/broadcast")
            .json(&json!({"message": system})),
    )
    .await;
    assert_eq!(delivery["usersReached"], 2);

    // Chat traffic cannot be forged through the API.
    let forged = json!({"type": "user:online", "payload": {"userId": "x", "online": true}});
    let (status, body) = json_of(
        server
            .admin(Method::POST, "/api/messages/broadcast")
            .json(&json!({"message": forged})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    server.shutdown().await;
}

#[tokio::test]
async fn connected_users_status_and_disconnect() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (_second, _) = server.connect("alice").await;
    let (_, users) = json_of(server.admin(Method::GET, "/api/users/connected")).await;
    assert_eq!(users["users"][0]["userId"], "alice");
    assert_eq!(users["users"][0]["connections"], 2);
    let (_, status) = json_of(server.admin(Method::GET, "/api/users/alice/status")).await;
    assert_eq!(status["online"], true);
    assert!(status["connectedSince"].as_str().unwrap().ends_with('Z'));
    let (_, status) = json_of(server.admin(Method::GET, "/api/users/zed/status")).await;
    assert_eq!(
        status,
        json!({"userId": "zed", "online": false, "connections": 0})
    );

    let (code, body) = json_of(server.admin(Method::DELETE, "/api/users/alice/connections")).await;
    assert_eq!(code, 200);
    assert_eq!(body["connectionsClosed"], 2);
    assert_eq!(
        alice.ending().await,
        Ending::Closed(CloseCode::Kicked.code())
    );
    let (code, body) = json_of(server.admin(Method::DELETE, "/api/users/zed/connections")).await;
    assert_eq!(code, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    server.shutdown().await;
}

#[tokio::test]
async fn users_read_their_own_chats_and_history_pages() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let ack = alice
            .request(&format!("m{i}"), json!({"type": "chat:message", "payload": {"chatId": "general", "content": format!("m{i}")}}))
            .await;
        ids.push(ack["payload"]["messageId"].as_str().unwrap().to_owned());
    }
    let get =
        |path: String, user: &str| server.http.get(server.url(&path)).bearer_auth(token(user));

    let (_, chats) = json_of(get("/api/me/chats".into(), "alice")).await;
    let chat_ids: Vec<_> = chats["chats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(
        chat_ids,
        [json!("general"), json!("random"), json!("design")]
    );
    let (_, chats) = json_of(get("/api/me/chats".into(), "carol")).await;
    assert_eq!(
        chats["chats"].as_array().unwrap().len(),
        2,
        "carol sees the open chats only"
    );

    let (_, page) = json_of(get("/api/chats/general/messages?limit=2".into(), "alice")).await;
    assert_eq!(
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].clone())
            .collect::<Vec<_>>(),
        [json!("m3"), json!("m4")]
    );
    assert_eq!(page["hasMore"], true);
    let (_, page) = json_of(get(
        format!("/api/chats/general/messages?after={}", ids[2]),
        "alice",
    ))
    .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    assert_eq!(page["hasMore"], false);

    let (status, body) = json_of(get("/api/chats/general/messages".into(), "carol")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "NOT_PARTICIPANT");
    let (status, _) = json_of(get("/api/chats/general/messages?limit=0".into(), "alice")).await;
    assert_eq!(status, 400);
    // A query string that does not parse gets the documented body, not plain text.
    let (status, body) = json_of(get(
        "/api/chats/general/messages?limit=many".into(),
        "alice",
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR", "{body}");
    let (status, _) = json_of(get(
        "/api/chats/general/messages?before=a&after=b".into(),
        "alice",
    ))
    .await;
    assert_eq!(status, 400);
    let (status, _) = json_of(get("/api/chats/nope/messages".into(), "alice")).await;
    assert_eq!(status, 404);

    let (_, me) = json_of(get("/api/me".into(), "alice")).await;
    assert_eq!(
        me,
        json!({"userId": "alice", "name": "alice name", "online": true})
    );
    let (status, _) = json_of(server.admin(Method::GET, "/api/me")).await;
    assert_eq!(status, 403, "a service key is not a user");
    server.shutdown().await;
}

#[tokio::test]
async fn dev_login_sets_an_http_only_cookie_only_when_enabled() {
    let server = TestServer::start().await;
    let (status, body) = json_of(
        server
            .http
            .post(server.url("/auth/dev-login"))
            .json(&json!({"userId": "alice"})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    server.shutdown().await;

    let mut config = config();
    config.dev_login = true;
    let server = TestServer::with(config).await;
    let response = server
        .http
        .post(server.url("/auth/dev-login"))
        .json(&json!({"userId": "alice", "name": "Alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("authToken="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session: Value = response.json().await.unwrap();
    assert_eq!(
        session,
        json!({"userId": "alice", "name": "Alice", "online": false})
    );
    // Behind a proxy that terminates TLS, the cookie is `Secure`.
    for (name, value) in [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=1.2.3.4;proto=https"),
    ] {
        let behind_tls = server
            .http
            .post(server.url("/auth/dev-login"))
            .header(name, value)
            .json(&json!({"userId": "alice"}))
            .send()
            .await
            .unwrap();
        let cookie = behind_tls.headers()["set-cookie"].to_str().unwrap();
        assert!(cookie.contains("; Secure"), "{name}: {cookie}");
    }

    let pair = cookie.split(';').next().unwrap();
    let mut client = Client::open(&server.ws_url(), &[("cookie", pair)]).await;
    let connected = client.next_json().await;
    assert_eq!(connected["payload"]["userId"], "alice");
    assert_eq!(connected["payload"]["userName"], "Alice");
    let (_, me) = json_of(
        server
            .http
            .get(server.url("/api/me"))
            .header("cookie", pair),
    )
    .await;
    assert_eq!(me["online"], true);

    let (status, _) = json_of(
        server
            .http
            .post(server.url("/auth/dev-login"))
            .json(&json!({"userId": " "})),
    )
    .await;
    assert_eq!(status, 400);
    let logout = server
        .http
        .post(server.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert!(
        logout.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start().await;
    let (_alice, _) = server.connect("alice").await;
    let mut bad = Client::open(&format!("{}?token=bad", server.ws_url()), &[]).await;
    assert_eq!(bad.ending().await, Ending::Closed(4001));
    let (status, health) = json_of(server.http.get(server.url("/healthz"))).await;
    assert_eq!(status, 200);
    assert_eq!(health, json!({"status": "ok", "connections": 1}));
    let metrics = server.metrics().await;
    for expected in [
        "relaywire_connections 1",
        "relaywire_connections_total 1",
        "relaywire_auth_failures_total{reason=\"invalid\"} 1",
        "relaywire_errors_total{code=\"AUTH_FAILED\"} 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing `{expected}` in\n{metrics}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn static_files_skip_dotfiles_and_symbolic_links() {
    let (_, dir) = crate::support::file_database("static");
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("assets")).unwrap();
    std::fs::create_dir_all(site.join(".git")).unwrap();
    std::fs::write(site.join("index.html"), "<p>the app</p>").unwrap();
    std::fs::write(site.join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(site.join(".env"), "JWT_SECRET=do-not-serve").unwrap();
    std::fs::write(site.join(".git/config"), "[core]").unwrap();
    std::fs::write(dir.join("outside.txt"), "outside the site").unwrap();
    std::os::unix::fs::symlink(dir.join("outside.txt"), site.join("linked.txt")).unwrap();
    std::os::unix::fs::symlink(&dir, site.join("up")).unwrap();
    let mut config = crate::support::config();
    config.static_dir = Some(site);
    let server = TestServer::with(config).await;
    let fetch = |path: &str| {
        let url = server.url(path);
        let http = server.http.clone();
        async move {
            let response = http.get(url).send().await.expect("the server answers");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    assert_eq!(
        fetch("/assets/app.js").await,
        (200, "console.log(1)".to_owned())
    );
    // A route of the single-page app gets index.html.
    assert_eq!(
        fetch("/chats/general").await,
        (200, "<p>the app</p>".to_owned())
    );
    for hidden in [
        "/.env",
        "/%2Eenv",
        "/.git/config",
        "/linked.txt",
        "/up/outside.txt",
    ] {
        let (status, body) = fetch(hidden).await;
        assert_eq!(status, 404, "{hidden}: {body}");
        assert!(
            !body.contains("do-not-serve") && !body.contains("outside"),
            "{hidden}"
        );
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
