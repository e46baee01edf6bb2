//! The store conformance cases on DynamoDB: moto's, driven by the real AWS SDK.

#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/services.rs"]
mod services;

mod on_dynamodb {
    relaywire_server::store_conformance!(super::fresh);
}

use relaywire_server::store::conformance::{none, post, with_general};
use relaywire_server::store::{EventCursor, Published, Store, StoreError};

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
