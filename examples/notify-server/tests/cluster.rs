//! The notification service on two nodes over a private PostgreSQL and Redis: an app on
//! the library gets many nodes without a line of its own. Messages and notifications
//! sent through one node reach users on the other, numbered by the shared store; the
//! connected list covers both nodes; one connection per user holds across them.

use std::collections::HashMap;

use relaywire_notify_server::{NotifyApp, apply_defaults};
use relaywire_protocol::CloseCode;
use relaywire_server::config::{Cluster, Database, Env};
use relaywire_server::{Config, RunningServer};
use relaywire_tests::RawSocket;
use relaywire_tests::services::{Postgres, Redis};
use serde_json::{Value, json};

const SERVICE_KEY: &str = "notify-cluster-service-key";

async fn node(database: &str, redis: &Redis) -> RunningServer {
    let mut config = Config::local(relaywire_tests::SECRET);
    config.service_keys = vec![SERVICE_KEY.to_owned()];
    apply_defaults(&Env::new(HashMap::new()), &mut config);
    config.database = Database::Postgres(database.to_owned());
    config.cluster = Some(Cluster {
        redis_url: redis.url(),
        key_prefix: "notify-cluster".to_owned(),
    });
    relaywire_server::start(config, NotifyApp)
        .await
        .expect("the node starts")
}

async fn open(node: &RunningServer, user: &str) -> (RawSocket, Value) {
    RawSocket::open_url(&format!("ws://{}/ws", node.addr()), user, "").await
}

async fn call(
    node: &RunningServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}{path}", node.addr()))
        .bearer_auth(SERVICE_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the node answers");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_notification_service_runs_on_two_nodes() {
    let postgres = Postgres::start().expect("PostgreSQL starts");
    let redis = Redis::start().expect("Redis starts");
    let database = postgres.create_database("notify").expect("a database");
    let a = node(&database, &redis).await;
    let b = node(&database, &redis).await;

    let (mut erin, _) = open(&a, "erin").await;
    let (_frank, _) = open(&b, "frank").await;
    let sent = call(
        &b,
        reqwest::Method::POST,
        "/websocket/message/user",
        Some(json!({"userId": "erin", "type": "reminder", "data": {"at": "09:00"}})),
    )
    .await;
    assert_eq!(
        (sent["recipients"].as_u64(), sent["online"].as_u64()),
        (Some(1), Some(1)),
        "{sent}"
    );
    let message = erin.next().await;
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["payload"]["id"], sent["messageId"]);
    assert_eq!(message["payload"]["seq"], 1, "numbered by the shared store");
    call(
        &b,
        reqwest::Method::POST,
        "/websocket/notification",
        Some(json!({"userId": "erin", "title": "Welcome", "body": "Glad you are here"})),
    )
    .await;
    let notification = erin.next().await;
    assert_eq!(notification["type"], "notification");
    assert_eq!(notification["payload"]["seq"], 2);

    let connected = call(&a, reqwest::Method::GET, "/websocket/users/connected", None).await;
    let users: Vec<&str> = connected["users"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|user| user["userId"].as_str().expect("an id"))
        .collect();
    assert_eq!(users, ["erin", "frank"], "both nodes' users: {connected}");

    // One connection per user, whichever node it opens on.
    let (_erin_on_b, _) = open(&b, "erin").await;
    assert_eq!(
        erin.close_code().await,
        Some(CloseCode::SessionReplaced.code())
    );
}
