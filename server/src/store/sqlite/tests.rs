//! What only the SQLite store does: group commit, with follow-ups in commit order.
//! The cases every store shares are in `store::tests`.

use std::sync::{Arc, Mutex};

use super::*;
use crate::store::conformance::{none, post, with_general};

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

#[tokio::test]
async fn a_job_failing_after_a_write_rolls_back_its_batch_and_the_rest_commit() {
    let (store, thread) = store();
    with_general(&store).await;
    // Holds the store thread until the three jobs below are queued behind it, so they
    // run as one batch.
    let (started, running) = std::sync::mpsc::channel();
    let holder = store.read(move |_| {
        let _ = started.send(());
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(())
    });
    let holder = tokio::spawn(holder);
    running.recv().expect("the holder runs");
    let before = store.publish(post("before", "general", "alice"), Box::new(|_| {}));
    // Writes an event, then fails: half a change.
    let halfway = store.read(|db| {
        db.execute(
            "INSERT INTO events (id, room_id, kind, sender_id, frame, created_at)
             VALUES ('halfway', 'general', 'chat:message', 'alice', '{}', 'now')",
            [],
        )
        .map_err(backend)?;
        Err::<(), _>(StoreError::Backend("failed after a write".into()))
    });
    let after = store.publish(post("after", "general", "alice"), Box::new(|_| {}));
    let (before, halfway, after) = tokio::join!(before, halfway, after);
    holder.await.expect("joined").expect("the holder ran");
    assert!(
        matches!(before, Err(StoreError::NotCommitted)),
        "the job before it in the batch was rolled back with it: {before:?}"
    );
    assert!(
        matches!(halfway, Err(StoreError::Backend(_))),
        "{halfway:?}"
    );
    assert!(
        after.is_ok(),
        "the job after it commits in a new transaction: {after:?}"
    );
    let page = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            10,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.events.iter().map(|event| event.id.as_str()).collect();
    assert_eq!(ids, ["after"], "nothing of the rolled-back batch remains");
    drop(store);
    thread.shut_down();
}

/// A file store whose commits take the WAL past its checkpoint threshold (a fan-out
/// writes a page per member): nothing is lost or numbered twice, and the store reopens
/// with all of it.
#[tokio::test]
async fn a_file_store_past_its_checkpoint_reopens_whole() {
    let dir = std::env::temp_dir().join(format!(
        "relaywire-checkpoint-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let location = Location::File(dir.join("store.db"));
    let members: Vec<String> = (0..200).map(|i| format!("user-{i:03}")).collect();
    let (store, thread) = SqliteStore::open(&location).expect("a file store");
    store
        .create_room(NewRoom {
            id: "crowd".into(),
            title: "Crowd".into(),
            open: false,
            members: members.clone(),
        })
        .await
        .unwrap();
    // Hundreds of pages a batch: about twice the 10,000-page checkpoint threshold.
    for round in 0..20 {
        let jobs: Vec<_> = (0..100)
            .map(|i| {
                store.publish(
                    post(&format!("m{round}-{i}"), "crowd", "user-000"),
                    Box::new(|_| {}),
                )
            })
            .collect();
        for result in futures_util::future::join_all(jobs).await {
            result.expect("stored");
        }
    }
    // Twice the threshold was written; a WAL that was never copied and started over
    // would hold all of it.
    let wal = std::fs::metadata(dir.join("store.db-wal")).unwrap().len();
    assert!(wal < 12_000 * 4_120, "the WAL grew to {wal} bytes");
    drop(store);
    thread.shut_down();

    let (store, thread) = SqliteStore::open(&location).expect("the store again");
    let session = store
        .open_session(
            "user-199".into(),
            "Last".into(),
            Some(Seq::new(0).unwrap()),
            5_000,
            none(),
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = session.missed.iter().map(|(seq, _)| seq.get()).collect();
    assert_eq!(seqs, (1..=2_000).collect::<Vec<_>>());
    drop(store);
    thread.shut_down();
    std::fs::remove_dir_all(&dir).unwrap();
}
