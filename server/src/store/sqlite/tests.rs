//! What only the SQLite store does: group commit, with follow-ups in commit order.
//! The cases every store shares are in `store::tests`.

use std::sync::{Arc, Mutex};

use super::*;
use crate::store::conformance::{none, post, with_general};

fn store() -> (SqliteStore, StoreThread) {
    SqliteStore::open(&Location::Memory).expect("an in-memory store")
}

/// A folder of its own under the temporary directory, not created yet.
fn fresh_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "relaywire-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ))
}

/// A store file (in a fresh folder, also returned) that the first `version`
/// migrations made, as a server of that schema left it.
fn file_at_schema(name: &str, version: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = fresh_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.db");
    let mut db = Connection::open(&path).unwrap();
    for (version, migration) in (1..).zip(&schema::MIGRATIONS[..version]) {
        let transaction = db.transaction().unwrap();
        transaction.execute_batch(migration.sqlite).unwrap();
        transaction
            .pragma_update(None, "application_id", schema::APPLICATION_ID)
            .unwrap();
        transaction
            .pragma_update(None, "user_version", version)
            .unwrap();
        transaction.commit().unwrap();
    }
    (dir, path)
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

/// A file store whose commits take the WAL past its checkpoint threshold: nothing is
/// lost or numbered twice, and the store reopens with all of it. The members share two
/// rooms that take turns, so every fan-out ends each member's run and files it (the
/// streams' costliest case, a page per member).
#[tokio::test]
async fn a_file_store_past_its_checkpoint_reopens_whole() {
    let dir = fresh_dir("checkpoint");
    let location = Location::File(dir.join("store.db"));
    let members: Vec<String> = (0..200).map(|i| format!("user-{i:03}")).collect();
    let (store, thread) = SqliteStore::open(&location).expect("a file store");
    for room in ["crowd", "crowd-2"] {
        store
            .create_room(NewRoom {
                id: room.into(),
                title: "Crowd".into(),
                open: false,
                members: members.clone(),
            })
            .await
            .unwrap();
    }
    // Hundreds of pages a batch: about twice the 10,000-page checkpoint threshold.
    for round in 0..20 {
        let jobs: Vec<_> = (0..100)
            .map(|i| {
                let room = if i % 2 == 0 { "crowd" } else { "crowd-2" };
                store.publish(
                    post(&format!("m{round}-{i}"), room, "user-000"),
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
    let in_order = session
        .missed
        .iter()
        .enumerate()
        .all(|(n, (_, frame))| frame.contains(&format!(r#""id":"m{}-{}""#, n / 100, n % 100)));
    assert!(
        in_order,
        "every number is the event published in that place"
    );
    drop(store);
    thread.shut_down();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs end at their longest, and replay from anywhere in a long stream finds each
/// event under the number the fan-out gave it.
#[tokio::test]
async fn a_long_stream_replays_from_anywhere() {
    let (store, thread) = store();
    with_general(&store).await;
    let total = streams::MAX_RUN as u64 * 2 + 5;
    let jobs: Vec<_> = (1..=total)
        .map(|n| store.publish(post(&format!("m{n}"), "general", "alice"), none()))
        .collect();
    for (n, result) in (1..).zip(futures_util::future::join_all(jobs).await) {
        let Published::Stored { recipients, .. } = result.expect("stored") else {
            panic!("not stored");
        };
        let seqs: Vec<u64> = recipients.iter().map(|(_, seq)| seq.get()).collect();
        assert_eq!(seqs, [n, n], "alice's and bob's numbers for m{n}");
    }
    for after in [
        0,
        1,
        streams::MAX_RUN as u64 - 1,
        streams::MAX_RUN as u64,
        total - 3,
    ] {
        let missed = store
            .events_between(
                "bob".into(),
                Seq::new(after).unwrap(),
                Seq::new(total).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(missed.len() as u64, total - after);
        for (seq, frame) in &missed {
            let n = seq.get();
            assert_eq!(
                frame,
                &format!(r#"{{"type":"chat:message","payload":{{"id":"m{n}","seq":{n}}}}}"#)
            );
        }
    }
    drop(store);
    thread.shut_down();
}

/// A store written before streams were runs (schema 2, a row per delivery) migrates:
/// every user replays what they had under the same numbers, and their streams go on
/// from there.
#[tokio::test]
async fn a_store_of_rows_per_delivery_migrates_to_runs() {
    let (dir, path) = file_at_schema("runs", 2);
    {
        let db = Connection::open(&path).unwrap();
        // What schema 2's store wrote for m1 and m2 in general (alice 1, 2; bob 1, 2)
        // and d1 to bob alone (bob 3).
        db.execute_batch(
            r#"
            INSERT INTO rooms (id, title, open, created_at) VALUES ('general', 'General', 1, 't');
            INSERT INTO members (room_id, user_id, joined_at) VALUES ('general', 'alice', 't'), ('general', 'bob', 't');
            INSERT INTO events (id, room_id, kind, sender_id, frame, created_at) VALUES
                ('m1', 'general', 'chat:message', 'alice', '{"type":"chat:message","payload":{"id":"m1"}}', 't'),
                ('m2', 'general', 'chat:message', 'bob', '{"type":"chat:message","payload":{"id":"m2"}}', 't'),
                ('d1', 'general', 'chat:message', 'alice', '{"type":"chat:message","payload":{"id":"d1"}}', 't');
            INSERT INTO heads (user_id, seq) VALUES ('alice', 2), ('bob', 3);
            INSERT INTO inbox (user_id, seq, event_position) VALUES
                ('alice', 1, 1), ('bob', 1, 1), ('alice', 2, 2), ('bob', 2, 2), ('bob', 3, 3);
            "#,
        )
        .unwrap();
    }
    let (store, thread) = SqliteStore::open(&Location::File(path)).expect("migrated");
    let published = store
        .publish(post("m3", "general", "alice"), none())
        .await
        .unwrap();
    let Published::Stored { recipients, .. } = published else {
        panic!("not stored");
    };
    let numbers: Vec<(&str, u64)> = recipients
        .iter()
        .map(|(user, seq)| (user.as_str(), seq.get()))
        .collect();
    assert_eq!(numbers, [("alice", 3), ("bob", 4)]);
    let bob = store
        .events_between("bob".into(), Seq::new(0).unwrap(), Seq::new(4).unwrap())
        .await
        .unwrap();
    let frames: Vec<&str> = bob.iter().map(|(_, frame)| frame.as_str()).collect();
    assert_eq!(
        frames,
        [
            r#"{"type":"chat:message","payload":{"id":"m1","seq":1}}"#,
            r#"{"type":"chat:message","payload":{"id":"m2","seq":2}}"#,
            r#"{"type":"chat:message","payload":{"id":"d1","seq":3}}"#,
            r#"{"type":"chat:message","payload":{"id":"m3","seq":4}}"#,
        ]
    );
    drop(store);
    thread.shut_down();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A store of schema 3 (a run's end written into its member's head at each fan-out)
/// migrates to live runs: an open run its member can still extend goes live, one they
/// could not (they left the room) is filed, and every stream goes on from its number.
#[tokio::test]
async fn a_store_of_written_runs_migrates_to_live_runs() {
    let (dir, path) = file_at_schema("live-runs", 3);
    {
        let db = Connection::open(&path).unwrap();
        // What schema 3 wrote: m1 and m2 to general (alice, bob, carol), carol left,
        // d1 to bob alone, then m3 to general (alice, bob).
        db.execute_batch(
            r#"
            INSERT INTO rooms (id, title, open, created_at) VALUES ('general', 'General', 1, 't');
            INSERT INTO members (room_id, user_id, joined_at) VALUES ('general', 'alice', 't'), ('general', 'bob', 't');
            INSERT INTO events (id, room_id, kind, sender_id, frame, created_at, audience_room) VALUES
                ('m1', 'general', 'chat:message', 'alice', '{"type":"chat:message","payload":{"id":"m1"}}', 't', 'general'),
                ('m2', 'general', 'chat:message', 'bob', '{"type":"chat:message","payload":{"id":"m2"}}', 't', 'general'),
                ('d1', 'general', 'chat:message', 'alice', '{"type":"chat:message","payload":{"id":"d1"}}', 't', NULL),
                ('m3', 'general', 'chat:message', 'alice', '{"type":"chat:message","payload":{"id":"m3"}}', 't', 'general');
            INSERT INTO heads (user_id, seq, run_seq, run_room, run_from, run_to) VALUES
                ('alice', 3, 1, 'general', 1, 4),
                ('bob', 4, 4, 'general', 4, 4),
                ('carol', 2, 1, 'general', 1, 2);
            INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position) VALUES
                ('bob', 2, 1, 'general', 1, 2),
                ('bob', 3, 3, NULL, 3, 3);
            "#,
        )
        .unwrap();
    }
    let (store, thread) = SqliteStore::open(&Location::File(path)).expect("migrated");
    let published = store
        .publish(post("m4", "general", "alice"), none())
        .await
        .unwrap();
    let Published::Stored { recipients, .. } = published else {
        panic!("not stored");
    };
    let numbers: Vec<(&str, u64)> = recipients
        .iter()
        .map(|(user, seq)| (user.as_str(), seq.get()))
        .collect();
    assert_eq!(numbers, [("alice", 4), ("bob", 5)]);
    let to_carol = Publish {
        audience: Audience::Users(vec!["carol".into()]),
        require_member: None,
        ..post("d2", "general", "alice")
    };
    let published = store.publish(to_carol, none()).await.unwrap();
    let Published::Stored { recipients, .. } = published else {
        panic!("not stored");
    };
    assert_eq!(recipients, [("carol".to_owned(), Seq::new(3).unwrap())]);
    for (user, expected) in [
        ("alice", &["m1", "m2", "m3", "m4"][..]),
        ("bob", &["m1", "m2", "d1", "m3", "m4"]),
        ("carol", &["m1", "m2", "d2"]),
    ] {
        let missed = store
            .events_between(user.into(), Seq::new(0).unwrap(), Seq::new(9).unwrap())
            .await
            .unwrap();
        let frames: Vec<String> = missed.iter().map(|(_, frame)| frame.clone()).collect();
        let wanted: Vec<String> = (1..)
            .zip(expected)
            .map(|(n, id)| {
                format!(r#"{{"type":"chat:message","payload":{{"id":"{id}","seq":{n}}}}}"#)
            })
            .collect();
        assert_eq!(frames, wanted, "{user}'s stream");
    }
    drop(store);
    thread.shut_down();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A SQLite file belongs to one server: a second store opening it is refused at once,
/// saying so, and the first goes on as before; once the first is shut down, the file
/// opens again.
#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused() {
    let dir = fresh_dir("one-process");
    let location = Location::File(dir.join("store.db"));
    let (store, thread) = SqliteStore::open(&location).expect("a file store");
    with_general(&store).await;
    let Err(StoreError::Backend(reason)) = SqliteStore::open(&location) else {
        panic!("a second store opened the same file");
    };
    assert!(reason.contains("held by another process"), "{reason}");
    store
        .publish(post("m1", "general", "alice"), none())
        .await
        .expect("the first store still writes");
    drop(store);
    thread.shut_down();
    let (store, thread) = SqliteStore::open(&location).expect("the file opens again");
    let missed = store
        .events_between("bob".into(), Seq::new(0).unwrap(), Seq::new(1).unwrap())
        .await
        .unwrap();
    assert_eq!(missed.len(), 1, "m1 is in bob's stream");
    drop(store);
    thread.shut_down();
    std::fs::remove_dir_all(&dir).unwrap();
}
