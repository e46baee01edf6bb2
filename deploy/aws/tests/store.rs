//! The store conformance cases on DynamoDB, and the connections table's own writes:
//! moto's DynamoDB, driven by the real AWS SDK.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/services.rs"]
mod services;

mod on_dynamodb {
    relaywire_server::store_conformance!(super::fresh);
}

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_server::Identity;
use relaywire_server::gateway::{ConnectionTable, Gateway, GatewayConnection, PostError};
use relaywire_server::store::conformance::{none, post, with_general};
use relaywire_server::store::{EventCursor, Published, Store, StoreError, StoreResult};

/// A store on a new table in a moto of its own.
async fn fresh() -> (relaywire_aws::DynamoStore, services::Moto) {
    let moto = services::Moto::start().expect("moto starts");
    let client = relaywire_aws::local_client(&moto.url());
    let store = relaywire_aws::DynamoStore::new(client, "relaywire");
    store.create_table().await.expect("the table is created");
    (store, moto)
}

/// Invocations publish side by side: the optimistic counters number each recipient's
/// stream and the room's history without a gap or a double, whoever wins each race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_number_every_stream_without_gaps() {
    let (store, _moto) = fresh().await;
    with_general(&store).await;
    let publishes = (0..12).map(|i| {
        let store = store.clone();
        let sender = if i % 2 == 0 { "alice" } else { "bob" };
        tokio::spawn(async move {
            store
                .publish(post(&format!("m{i}"), "general", sender), none())
                .await
        })
    });
    let mut seqs: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for publish in publishes {
        let published = publish.await.expect("the task ends").expect("stored");
        let Published::Stored { recipients, .. } = published else {
            panic!("{published:?}");
        };
        for (user, seq) in recipients {
            seqs.entry(user).or_default().push(seq.get());
        }
    }
    for (user, mut numbers) in seqs {
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=12).collect::<Vec<_>>(), "{user}");
    }
    let page = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            100,
        )
        .await
        .expect("history");
    assert_eq!(page.events.len(), 12);
}

/// A room's event numbers every member in one transaction; past DynamoDB's 100 actions
/// the publish is refused whole, with nothing stored.
#[tokio::test]
async fn a_room_past_one_transaction_is_refused_whole() {
    let (store, _moto) = fresh().await;
    with_general(&store).await;
    for i in 0..48 {
        store
            .join(
                "general".into(),
                format!("user{i}"),
                relaywire_server::store::JoinRule::OpenOnly,
            )
            .await
            .expect("joined");
    }
    let refused = store.publish(post("big", "general", "alice"), none()).await;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
    let page = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            10,
        )
        .await
        .expect("history");
    assert!(page.events.is_empty());
}

/// A renewed token is recorded whatever deliveries did to the row meanwhile: only who
/// the connection is changes, the mark they moved stays; a connection that is gone is
/// not written back.
#[tokio::test]
async fn a_renewal_records_the_identity_and_keeps_the_mark_deliveries_moved() {
    use relaywire_protocol::Seq;

    let moto = services::Moto::start().expect("moto starts");
    let table = relaywire_aws::DynamoConnections::new(
        relaywire_aws::local_client(&moto.url()),
        "connections",
    );
    table.create_table().await.expect("the table is created");
    let alice = |expires_secs: u64, roles: &[&str]| Identity {
        user_id: "alice".into(),
        name: "Alice".into(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        expires_at: Some(UNIX_EPOCH + Duration::from_secs(expires_secs)),
    };
    let opened = GatewayConnection {
        connection_id: "c1".into(),
        identity: Some(alice(2_000_000_000, &["admin"])),
        resume_after: None,
        sent: Seq::new(3).ok(),
        connected_at_ms: 1_700_000_000_000,
        last_activity_ms: 1_700_000_000_000,
    };
    table.insert(opened.clone()).await.expect("recorded");
    // A delivery moves the mark between the renewing invocation's read and its write.
    let mut delivered = opened.clone();
    delivered.sent = Seq::new(7).ok();
    assert!(table.replace(delivered, opened.sent).await.expect("moved"));

    let renewed = alice(2_000_003_600, &[]);
    assert!(
        table
            .renew("c1".into(), renewed.clone())
            .await
            .expect("renewed")
    );
    let row = table
        .get("c1".into())
        .await
        .expect("read")
        .expect("still recorded");
    assert_eq!(
        row.identity,
        Some(renewed.clone()),
        "the new expiry, no roles left"
    );
    assert_eq!(row.sent, Seq::new(7).ok(), "the delivery's mark stays");
    assert_eq!(
        table.of_user("alice".into()).await.expect("by user").len(),
        1
    );

    table.remove("c1".into()).await.expect("removed");
    assert!(!table.renew("c1".into(), renewed).await.expect("answered"));
    assert_eq!(table.get("c1".into()).await.expect("read"), None);
}

/// The connections table, with a delivery from another invocation moving a
/// connection's mark each time the row is read: what happens between a frame's read
/// of its row and its writes when messages are flowing.
struct DeliveriesMeanwhile {
    inner: relaywire_aws::DynamoConnections,
    armed: std::sync::atomic::AtomicBool,
}

impl ConnectionTable for DeliveriesMeanwhile {
    fn insert(&self, c: GatewayConnection) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.insert(c)
    }
    fn get(&self, id: String) -> BoxFuture<'static, StoreResult<Option<GatewayConnection>>> {
        let read = self.inner.get(id);
        if !self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            return read;
        }
        let inner = self.inner.clone();
        async move {
            let row = read.await?;
            if let Some(row) = &row {
                let mut moved = row.clone();
                let next = row.sent.map_or(1, |sent| sent.get() + 1);
                moved.sent = relaywire_protocol::Seq::new(next).ok();
                assert!(inner.replace(moved, row.sent).await?, "the mark moved");
            }
            Ok(row)
        }
        .boxed()
    }
    fn remove(&self, id: String) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.remove(id)
    }
    fn of_user(&self, user: String) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        self.inner.of_user(user)
    }
    fn all(&self) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        self.inner.all()
    }
    fn replace(
        &self,
        c: GatewayConnection,
        expected: Option<relaywire_protocol::Seq>,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        self.inner.replace(c, expected)
    }
    fn renew(&self, id: String, identity: Identity) -> BoxFuture<'static, StoreResult<bool>> {
        self.inner.renew(id, identity)
    }
    fn claim(&self, id: String) -> BoxFuture<'static, StoreResult<bool>> {
        self.inner.claim(id)
    }
    fn touch(&self, id: String, at_ms: u64) -> BoxFuture<'static, StoreResult<()>> {
        self.inner.touch(id, at_ms)
    }
}

/// A gateway that takes every frame and keeps none.
struct Accepting;

impl Gateway for Accepting {
    fn post(&self, _: String, _: String) -> BoxFuture<'static, Result<(), PostError>> {
        async { Ok(()) }.boxed()
    }
    fn close(&self, _: String) -> BoxFuture<'static, Result<(), PostError>> {
        async { Ok(()) }.boxed()
    }
}

/// A client renews its token (an `auth` message on the open connection) while
/// deliveries move its row's mark: the server records the new expiry all the same, so
/// the connection is not closed as expired at the old one.
#[tokio::test]
async fn a_token_renewed_while_messages_flow_is_recorded() {
    const SECRET: &str = "a-secret-of-sixteen-bytes";
    let (store, moto) = fresh().await;
    let connections = relaywire_aws::DynamoConnections::new(
        relaywire_aws::local_client(&moto.url()),
        "connections",
    );
    connections
        .create_table()
        .await
        .expect("the table is created");
    let table = Arc::new(DeliveriesMeanwhile {
        inner: connections.clone(),
        armed: false.into(),
    });
    let server = relaywire_server::gateway::GatewayServer::start(
        relaywire_server::Config::local(SECRET),
        relaywire_chat_server::ChatApp::new(),
        Arc::new(store),
        Arc::clone(&table) as Arc<dyn ConnectionTable>,
        Arc::new(Accepting),
    )
    .await
    .expect("the server starts");
    let now = SystemTime::now();
    let secs = |at: SystemTime| at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let token = |expires: SystemTime| {
        let claims = serde_json::json!({ "sub": "alice", "name": "Alice", "exp": secs(expires) });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signed")
    };
    let soon = now + Duration::from_secs(60);
    let later = now + Duration::from_secs(3_600);
    server
        .connect("c1", None, "relaywire.v4", None)
        .await
        .expect("accepted");
    let auth = |expires| {
        serde_json::json!({ "type": "auth", "payload": { "token": token(expires) } }).to_string()
    };
    server.receive("c1", &auth(soon)).await;
    let expiry = |row: Option<GatewayConnection>| {
        row.and_then(|row| row.identity)
            .and_then(|identity| identity.expires_at)
            .map(secs)
    };
    assert_eq!(
        expiry(connections.get("c1".into()).await.expect("read")),
        Some(secs(soon))
    );

    table.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    server.receive("c1", &auth(later)).await;
    let row = connections.get("c1".into()).await.expect("read");
    assert_eq!(expiry(row), Some(secs(later)), "the renewed expiry");
}
