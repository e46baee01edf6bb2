//! Three nodes of the chat server on one PostgreSQL and one Redis, both real and
//! private to the test: what is stored through one node reaches every node, in order;
//! resume, dedup, presence, typing and the connection policies hold across nodes; and
//! a Redis restart or a PostgreSQL outage loses nothing.

use std::time::Duration;

use relaywire_chat_server::config::{Cluster, ConnectionPolicy, Database};
use relaywire_protocol::CloseCode;
use relaywire_tests::services::{Postgres, Redis};
use relaywire_tests::{RawSocket, Server};
use serde_json::{Value, json};

const SERVICE_KEY: &str = "cluster-service-key-0123";

struct Cluster3 {
    nodes: Vec<Server>,
    redis: Redis,
    postgres: Postgres,
}

async fn node(
    name: &str,
    database: &str,
    redis: &Redis,
    adjust: impl Fn(&mut relaywire_chat_server::Config),
) -> Server {
    Server::start(name, |config| {
        config.database = Database::Postgres(database.to_owned());
        config.cluster = Some(Cluster {
            redis_url: redis.url(),
            key_prefix: "cluster-test".to_owned(),
        });
        config.service_keys = vec![SERVICE_KEY.to_owned()];
        adjust(config);
    })
    .await
}

async fn cluster(nodes: usize, adjust: impl Fn(&mut relaywire_chat_server::Config)) -> Cluster3 {
    let postgres = Postgres::start().expect("PostgreSQL starts");
    let redis = Redis::start().expect("Redis starts");
    let database = postgres.create_database("chat").expect("a database");
    let mut started = Vec::new();
    for i in 0..nodes {
        started.push(node(&format!("cluster-{i}"), &database, &redis, &adjust).await);
    }
    Cluster3 {
        nodes: started,
        redis,
        postgres,
    }
}

fn message(chat: &str, content: &str) -> Value {
    json!({"type": "chat:message", "payload": {"chatId": chat, "content": content}})
}

/// Reads `count` chat messages: their contents and `seq`s, checking the numbers rise.
async fn contents(socket: &mut RawSocket, count: usize) -> (Vec<String>, u64) {
    let mut seen = Vec::new();
    let mut last = 0;
    while seen.len() < count {
        let frame = socket.next_of("chat:message").await;
        let seq = frame["payload"]["seq"].as_u64().expect("numbered");
        assert!(seq > last, "in stored order: {seq} after {last}");
        last = seq;
        seen.push(
            frame["payload"]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    (seen, last)
}

/// The user of the next `user:online` frame that says someone came online.
async fn presence_of(socket: &mut RawSocket) -> String {
    let frame = socket.next_of("user:online").await;
    assert_eq!(frame["payload"]["online"], true, "{frame}");
    frame["payload"]["userId"].as_str().unwrap().to_owned()
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test]
async fn what_one_node_stores_reaches_every_node_in_order_and_resumes_anywhere() {
    let cluster = cluster(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (mut alice, _) = RawSocket::open(a, "alice", "").await;
    let (mut bob, _) = RawSocket::open(b, "bob", "").await;
    let (mut carol, _) = RawSocket::open(c, "carol", "").await;
    // Joining, carol and the chat's members on other nodes learn of each other (her
    // presence news comes with the join's answer, so both are read together).
    carol
        .send(json!({"type": "chat:join", "id": "j", "payload": {"chatId": "general"}}))
        .await;
    let (mut acked, mut seen) = (false, Vec::new());
    while !acked || seen.len() < 2 {
        let frame = carol.next().await;
        match frame["type"].as_str() {
            Some("ack") => acked = true,
            Some("user:online") => {
                seen.push(frame["payload"]["userId"].as_str().unwrap().to_owned())
            }
            Some("error") => panic!("the join failed: {frame}"),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["alice", "bob"]);
    while presence_of(&mut alice).await != "carol" {}

    for i in 0..20 {
        let ack = alice
            .request(&format!("m{i}"), message("general", &format!("hello {i}")))
            .await;
        assert_eq!(ack["type"], "ack", "acknowledged once stored: {ack}");
    }
    let (to_bob, bob_seq) = contents(&mut bob, 20).await;
    assert_eq!(
        to_bob,
        numbered("hello", 0..20),
        "node B, in the order stored"
    );
    let (to_carol, _) = contents(&mut carol, 20).await;
    assert_eq!(
        to_carol,
        numbered("hello", 0..20),
        "node C, in the order stored"
    );

    // Bob leaves node B; what he misses he gets from node C, exactly, then live.
    drop(bob);
    for i in 20..25 {
        alice
            .request(&format!("m{i}"), message("general", &format!("hello {i}")))
            .await;
    }
    let (mut bob, connected) = RawSocket::open(c, "bob", &format!("&lastSeq={bob_seq}")).await;
    assert_eq!(connected["payload"]["replayed"], 5, "{connected}");
    let (missed, _) = contents(&mut bob, 5).await;
    assert_eq!(missed, numbered("hello", 20..25));
    alice.request("m25", message("general", "hello 25")).await;
    let (live, _) = contents(&mut bob, 1).await;
    assert_eq!(live, ["hello 25"], "then live traffic, nothing twice");

    // A resend through another node is the same message, answered the same.
    let first = alice.request("dup", message("general", "once")).await;
    let (mut alice_on_b, _) = RawSocket::open(b, "alice", "").await;
    let again = alice_on_b.request("dup", message("general", "once")).await;
    assert_eq!(
        again["payload"]["messageId"], first["payload"]["messageId"],
        "{again}"
    );
    let reused = alice_on_b
        .request("dup", message("general", "another"))
        .await;
    assert_eq!(reused["payload"]["code"], "ID_REUSED", "{reused}");
    let (once, _) = contents(&mut carol, 7).await;
    assert_eq!(once.last().unwrap(), "once");
    assert!(
        !carol
            .sees_within("chat:message", Duration::from_millis(500))
            .await,
        "the resend is not delivered again"
    );
}

#[tokio::test]
async fn presence_typing_and_the_admin_api_work_whichever_node_is_asked() {
    let cluster = cluster(3, |_| {}).await;
    let [a, b, c] = &cluster.nodes[..] else {
        unreachable!()
    };
    let (mut alice, _) = RawSocket::open(a, "alice", "").await;
    let (mut bob, connected) = RawSocket::open(b, "bob", "").await;
    assert_eq!(
        connected["payload"]["onlineUserIds"],
        json!(["alice"]),
        "{connected}"
    );
    let online = alice.next_of("user:online").await;
    assert_eq!(online["payload"], json!({"userId": "bob", "online": true}));

    alice
        .send(json!({"type": "chat:typing", "payload": {"chatId": "general", "isTyping": true}}))
        .await;
    let typing = bob.next_of("chat:typing").await;
    assert_eq!(typing["payload"]["userId"], "alice", "{typing}");
    assert_eq!(typing["payload"]["isTyping"], true);

    let http = reqwest::Client::new();
    let connected: Value = http
        .get(format!("{}/api/users/connected", c.http_url()))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<&str> = connected["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "bob"], "asked on node C: {connected}");

    // A second connection of alice elsewhere: still one user online, no flap.
    let (mut alice_on_c, _) = RawSocket::open(c, "alice", "").await;
    drop(alice);
    assert!(
        !bob.sees_within("user:online", Duration::from_millis(700))
            .await,
        "alice is still online through node C"
    );

    // Disconnected through node A, on node C.
    let closed = http
        .delete(format!("{}/api/users/alice/connections", a.http_url()))
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    assert_eq!(
        alice_on_c.close_code().await,
        Some(CloseCode::Kicked.code())
    );
    let offline = bob.next_of("user:online").await;
    assert_eq!(
        offline["payload"],
        json!({"userId": "alice", "online": false})
    );

    // A pushed message reaches a user on any node.
    let pushed = http
        .post(format!("{}/api/messages/user", a.http_url()))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"userId": "bob", "message": {"type": "event", "payload": {"name": "ping", "data": 1}}}))
        .send()
        .await
        .unwrap();
    let delivery: Value = pushed.json().await.unwrap();
    assert_eq!(
        delivery,
        json!({"usersReached": 1, "connectionsReached": 1}),
        "counted on every node"
    );
    let event = bob.next_of("event").await;
    assert_eq!(event["payload"]["name"], "ping");
    let broadcast = http
        .post(format!("{}/api/messages/broadcast", c.http_url()))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"message": {"type": "event", "payload": {"name": "all", "data": 2}}}))
        .send()
        .await
        .unwrap();
    assert!(broadcast.status().is_success());
    let event = bob.next_of("event").await;
    assert_eq!(
        event["payload"]["name"], "all",
        "a broadcast through node C reaches node B"
    );
}

#[tokio::test]
async fn a_node_killed_without_a_goodbye_has_its_users_go_offline_within_the_bound() {
    let cluster = cluster(1, |_| {}).await;
    let database = cluster.postgres.url("chat");
    let port = relaywire_tests::free_port().expect("a port");
    let mut doomed = std::process::Command::new(env!("CARGO_BIN_EXE_chat-node"))
        .env_clear()
        .env("JWT_SECRET", relaywire_tests::SECRET)
        .env("WS_PORT", port.to_string())
        .env("DATABASE_URL", &database)
        .env("REDIS_URL", cluster.redis.url())
        .env("REDIS_KEY_PREFIX", "cluster-test")
        .env("LOG_LEVEL", "warn")
        .spawn()
        .expect("the node process starts");
    let http = reqwest::Client::new();
    relaywire_tests::wait_healthy(
        &http,
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
    )
    .await
    .expect("the node answers");
    let (mut alice, _) = RawSocket::open(&cluster.nodes[0], "alice", "").await;
    let (_bob, _) = RawSocket::open_url(&format!("ws://127.0.0.1:{port}/ws"), "bob", "").await;
    let online = alice.next_of("user:online").await;
    assert_eq!(online["payload"], json!({"userId": "bob", "online": true}));

    doomed.kill().expect("SIGKILL");
    let _ = doomed.wait();
    // The documented bound: the node's entry expires (6 s), and the next heartbeat of
    // a live node (every 2 s) reaps it.
    let killed = tokio::time::Instant::now();
    let offline = alice
        .next_of_within("user:online", Duration::from_secs(10))
        .await
        .expect("bob goes offline within the bound");
    assert_eq!(
        offline["payload"],
        json!({"userId": "bob", "online": false})
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(3),
        "only once the node expired"
    );
}

#[tokio::test]
async fn members_of_a_new_chat_on_different_nodes_learn_they_are_online() {
    let cluster = cluster(2, |_| {}).await;
    let (mut dave, _) = RawSocket::open(&cluster.nodes[0], "dave", "").await;
    let (mut erin, _) = RawSocket::open(&cluster.nodes[1], "erin", "").await;
    let created = reqwest::Client::new()
        .post(format!("{}/api/chats", cluster.nodes[1].http_url()))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"id": "pair", "title": "Pair", "participantIds": ["dave", "erin"]}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    assert_eq!(presence_of(&mut dave).await, "erin");
    assert_eq!(presence_of(&mut erin).await, "dave");
}

#[tokio::test]
async fn a_connection_on_one_node_replaces_the_one_on_another_with_the_single_policy() {
    let cluster = cluster(2, |config| {
        config.connection_policy = ConnectionPolicy::Single
    })
    .await;
    let (mut first, _) = RawSocket::open(&cluster.nodes[0], "alice", "").await;
    let (_second, _) = RawSocket::open(&cluster.nodes[1], "alice", "").await;
    assert_eq!(
        first.close_code().await,
        Some(CloseCode::SessionReplaced.code())
    );
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_stored() {
    let mut cluster = cluster(2, |_| {}).await;
    let (mut alice, _) = RawSocket::open(&cluster.nodes[0], "alice", "").await;
    let (mut bob, _) = RawSocket::open(&cluster.nodes[1], "bob", "").await;
    alice.request("m0", message("general", "before")).await;
    assert_eq!(contents(&mut bob, 1).await.0, ["before"]);

    let (mut bob_on_a, _) = RawSocket::open(&cluster.nodes[0], "bob", "").await;
    cluster.redis.stop();
    for i in 0..5 {
        let ack = alice
            .request(&format!("d{i}"), message("general", &format!("during {i}")))
            .await;
        assert_eq!(
            ack["type"], "ack",
            "stored and acknowledged without Redis: {ack}"
        );
    }
    let (local, _) = contents(&mut bob_on_a, 5).await;
    assert_eq!(
        local,
        numbered("during", 0..5),
        "local delivery goes on without Redis"
    );
    cluster.redis.restart().expect("Redis starts again");
    // Node B subscribes again and catches bob up from the store.
    let (caught_up, _) = contents(&mut bob, 5).await;
    assert_eq!(caught_up, numbered("during", 0..5));
    alice.request("m1", message("general", "after")).await;
    assert_eq!(
        contents(&mut bob, 1).await.0,
        ["after"],
        "live again, nothing twice"
    );
}

#[tokio::test]
async fn a_rolling_restart_drains_a_node_and_its_clients_resume_on_another() {
    let mut cluster = cluster(2, |_| {}).await;
    let (mut alice, _) = RawSocket::open(&cluster.nodes[0], "alice", "").await;
    let (mut bob, _) = RawSocket::open(&cluster.nodes[1], "bob", "").await;
    alice.request("m0", message("general", "one")).await;
    let (_, seen) = contents(&mut bob, 1).await;

    // SIGTERM's path: the node stops accepting and closes its sockets with 1001.
    let mut draining = cluster.nodes.remove(1);
    let stopping = tokio::spawn(async move {
        draining.stop().await;
        draining
    });
    assert_eq!(bob.close_code().await, Some(CloseCode::GoingAway.code()));
    alice.request("m1", message("general", "two")).await;
    let (mut bob, connected) =
        RawSocket::open(&cluster.nodes[0], "bob", &format!("&lastSeq={seen}")).await;
    assert_eq!(connected["payload"]["replayed"], 1, "{connected}");
    assert_eq!(
        contents(&mut bob, 1).await.0,
        ["two"],
        "nothing lost across the drain"
    );
    let mut restarted = stopping.await.expect("the node stopped");
    restarted.restart().await;
    let (mut carol, _) = RawSocket::open(&restarted, "carol", "").await;
    carol
        .request(
            "j",
            json!({"type": "chat:join", "payload": {"chatId": "general"}}),
        )
        .await;
    alice.request("m2", message("general", "three")).await;
    assert_eq!(
        contents(&mut carol, 1).await.0,
        ["three"],
        "the restarted node is back in"
    );
}

#[tokio::test]
async fn a_postgres_outage_acknowledges_nothing_and_the_node_recovers_by_itself() {
    let cluster = cluster(1, |_| {}).await;
    let node = &cluster.nodes[0];
    let http = reqwest::Client::new();
    let ready = |http: reqwest::Client, url: String| async move {
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(ready(http.clone(), node.http_url()).await, 200);
    let (mut alice, _) = RawSocket::open(node, "alice", "").await;

    cluster.postgres.stop().expect("PostgreSQL stops");
    assert_eq!(
        ready(http.clone(), node.http_url()).await,
        503,
        "not ready without its store"
    );
    alice.send(json!({"type": "chat:message", "id": "kept", "payload": {"chatId": "general", "content": "kept"}})).await;
    let error = alice.next_of("error").await;
    assert_eq!(error["payload"]["code"], "INTERNAL_ERROR", "{error}");
    assert!(
        error["payload"].get("id").is_none(),
        "not an answer: the client keeps the message: {error}"
    );
    assert_eq!(
        alice.close_code().await,
        Some(CloseCode::TryAgainLater.code())
    );

    cluster.postgres.restart().expect("PostgreSQL starts again");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready(http.clone(), node.http_url()).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ready again by itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut alice, _) = RawSocket::open(node, "alice", "").await;
    let ack = alice.request("kept", message("general", "kept")).await;
    assert_eq!(ack["type"], "ack", "the resend is stored now: {ack}");
}
