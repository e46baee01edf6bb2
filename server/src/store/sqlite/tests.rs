//! What only the SQLite store does: group commit, with follow-ups in commit order.
//! The cases every store shares are in `store::tests`.

use std::sync::{Arc, Mutex};

use super::*;
use crate::store::tests::{none, post, with_general};

fn store() -> (SqliteStore, StoreThread) {
    SqliteStore::open(&Location::Memory).expect("an in-memory store")
}

#[tokio::test]
async fn a_batch_commits_together_and_a_failing_job_leaves_nothing() {
    let (store, thread) = store();
    with_general(&store).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    // Sent without waiting in between, so the store thread finds them queued together
    // and runs them as batches. Every tenth names a sender who is no member: it fails
    // after nothing, and the rest of its batch commits.
    let jobs: Vec<_> = (0..200)
        .map(|i| {
            let order = Arc::clone(&order);
            let sender = if i % 10 == 0 { "mallory" } else { "alice" };
            store.publish(
                post(&format!("m{i}"), "general", sender),
                Box::new(move |_| order.lock().expect("not poisoned").push(i)),
            )
        })
        .collect();
    let results = futures_util::future::join_all(jobs).await;
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 20);
    let page = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            500,
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 180);
    let order = order.lock().expect("not poisoned").clone();
    let expected: Vec<i32> = (0..200).filter(|i| i % 10 != 0).collect();
    assert_eq!(order, expected, "follow-ups run in commit order");
    // Every one of alice's events has its own number, with no gap.
    let session = store
        .open_session(
            "alice".into(),
            "Alice".into(),
            Some(Seq::new(0).unwrap()),
            500,
            none(),
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = session.missed.iter().map(|(seq, _)| seq.get()).collect();
    assert_eq!(seqs, (1..=180).collect::<Vec<_>>());
    drop(store);
    thread.shut_down();
}
