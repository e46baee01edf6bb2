//! The gateway's delivery, on an in-memory table and a gateway that records what it is
//! given: the order invariant under concurrent deliveries, gone connections, throttling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_protocol::{CloseCode, Seq};

use super::bus::GatewayBus;
use super::{ConnectionTable, Gateway, GatewayConnection, PostError};
use crate::auth::Identity;
use crate::store::conformance::{none, post, with_general};
use crate::store::sqlite::{Location, SqliteStore};
use crate::store::{Published, Store, StoreResult};

/// A connection table in memory, with the conditional writes DynamoDB's has.
#[derive(Default)]
struct MemoryTable {
    rows: Mutex<HashMap<String, GatewayConnection>>,
}

impl MemoryTable {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<String, GatewayConnection>> {
        self.rows.lock().unwrap()
    }
}

impl ConnectionTable for MemoryTable {
    fn insert(&self, connection: GatewayConnection) -> BoxFuture<'static, StoreResult<()>> {
        self.rows()
            .insert(connection.connection_id.clone(), connection);
        async { Ok(()) }.boxed()
    }

    fn get(
        &self,
        connection_id: String,
    ) -> BoxFuture<'static, StoreResult<Option<GatewayConnection>>> {
        let row = self.rows().get(&connection_id).cloned();
        async move { Ok(row) }.boxed()
    }

    fn remove(&self, connection_id: String) -> BoxFuture<'static, StoreResult<()>> {
        self.rows().remove(&connection_id);
        async { Ok(()) }.boxed()
    }

    fn of_user(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        let rows: Vec<_> = self
            .rows()
            .values()
            .filter(|row| {
                row.identity
                    .as_ref()
                    .is_some_and(|id| id.user_id == user_id)
            })
            .cloned()
            .collect();
        async move { Ok(rows) }.boxed()
    }

    fn all(&self) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        let rows: Vec<_> = self.rows().values().cloned().collect();
        async move { Ok(rows) }.boxed()
    }

    fn replace(
        &self,
        connection: GatewayConnection,
        expected: Option<Seq>,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let mut rows = self.rows();
        let replaced = match rows.get(&connection.connection_id) {
            Some(row) if row.sent == expected => {
                rows.insert(connection.connection_id.clone(), connection);
                true
            }
            _ => false,
        };
        async move { Ok(replaced) }.boxed()
    }

    fn renew(
        &self,
        connection_id: String,
        identity: Identity,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let renewed = match self.rows().get_mut(&connection_id) {
            Some(row) => {
                row.identity = Some(identity);
                true
            }
            None => false,
        };
        async move { Ok(renewed) }.boxed()
    }

    fn claim(&self, connection_id: String) -> BoxFuture<'static, StoreResult<bool>> {
        let claimed = self.rows().contains_key(&connection_id);
        async move { Ok(claimed) }.boxed()
    }

    fn touch(&self, _connection_id: String, _at_ms: u64) -> BoxFuture<'static, StoreResult<()>> {
        async { Ok(()) }.boxed()
    }
}

/// A gateway that records every frame posted, answers 410 for the connections in
/// `gone` and throttles the first `throttle` posts.
#[derive(Default)]
struct Recorder {
    posted: Mutex<Vec<(String, String)>>,
    gone: Mutex<Vec<String>>,
    throttle: Mutex<usize>,
}

impl Gateway for Recorder {
    fn post(
        &self,
        connection_id: String,
        frame: String,
    ) -> BoxFuture<'static, Result<(), PostError>> {
        let result = if self.gone.lock().unwrap().contains(&connection_id) {
            Err(PostError::Gone)
        } else {
            let mut throttle = self.throttle.lock().unwrap();
            if *throttle > 0 {
                *throttle -= 1;
                Err(PostError::Throttled)
            } else {
                self.posted.lock().unwrap().push((connection_id, frame));
                Ok(())
            }
        };
        // Posts take a little while, so concurrent deliveries interleave.
        async move {
            tokio::task::yield_now().await;
            result
        }
        .boxed()
    }

    fn close(&self, _connection_id: String) -> BoxFuture<'static, Result<(), PostError>> {
        async { Ok(()) }.boxed()
    }
}

fn seq(value: u64) -> Seq {
    Seq::new(value).unwrap()
}

fn open_row(id: &str, user: &str, sent: u64) -> GatewayConnection {
    GatewayConnection {
        connection_id: id.to_owned(),
        identity: Some(Identity {
            user_id: user.to_owned(),
            name: user.to_owned(),
            roles: Vec::new(),
            expires_at: None,
        }),
        resume_after: None,
        sent: Some(seq(sent)),
        connected_at_ms: 0,
        last_activity_ms: 0,
    }
}

/// The numbers of the frames a connection was posted, in order.
fn numbers(recorder: &Recorder, connection: &str) -> Vec<u64> {
    recorder
        .posted
        .lock()
        .unwrap()
        .iter()
        .filter(|(to, _)| to == connection)
        .map(|(_, frame)| {
            let value: serde_json::Value = serde_json::from_str(frame).unwrap();
            value["payload"]["seq"].as_u64().unwrap()
        })
        .collect()
}

struct Setup {
    store: Arc<dyn Store>,
    table: Arc<MemoryTable>,
    recorder: Arc<Recorder>,
    bus: Arc<GatewayBus>,
    _thread: crate::store::sqlite::StoreThread,
}

/// `general` with alice and bob, `events` messages in it, and bob's connection `b1`
/// marked as sent up to `sent`.
async fn setup(events: usize, sent: u64) -> (Setup, Vec<(Seq, Arc<str>)>) {
    let (store, thread) = SqliteStore::open(&Location::Memory).unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    with_general(store.as_ref()).await;
    let mut bob_events = Vec::new();
    for i in 0..events {
        let published = store
            .publish(post(&format!("m{i}"), "general", "alice"), none())
            .await;
        let Ok(Published::Stored {
            recipients, frame, ..
        }) = published
        else {
            panic!("{published:?}");
        };
        let (_, number) = recipients
            .into_iter()
            .find(|(user, _)| user == "bob")
            .unwrap();
        bob_events.push((number, Arc::from(frame.as_str())));
    }
    let table = Arc::new(MemoryTable::default());
    table.insert(open_row("b1", "bob", sent)).await.unwrap();
    let recorder = Arc::new(Recorder::default());
    let bus = GatewayBus::new(
        Arc::clone(&store),
        Arc::clone(&table) as Arc<dyn ConnectionTable>,
        Arc::clone(&recorder) as Arc<dyn Gateway>,
        Box::new(|_, _| String::new()),
        Box::new(|_: CloseCode| String::new()),
    );
    let setup = Setup {
        store,
        table,
        recorder,
        bus,
        _thread: thread,
    };
    (setup, bob_events)
}

#[tokio::test]
async fn an_event_ahead_of_the_mark_brings_the_ones_before_it_from_the_store() {
    let (setup, events) = setup(3, 0).await;
    let row = setup.table.rows().get("b1").cloned().unwrap();
    // The third event's delivery runs first: the first two come from the store.
    let (third, frame) = events[2].clone();
    setup.bus.deliver(row, Some(third), Some(&frame)).await;
    assert_eq!(numbers(&setup.recorder, "b1"), [1, 2, 3]);
    assert_eq!(setup.table.rows()["b1"].sent, Some(seq(3)));
    // The first two's deliveries, late, send nothing again.
    for (number, frame) in &events[..2] {
        let row = setup.table.rows().get("b1").cloned().unwrap();
        setup.bus.deliver(row, Some(*number), Some(frame)).await;
    }
    assert_eq!(numbers(&setup.recorder, "b1"), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_never_send_an_event_before_the_ones_it_follows() {
    let (setup, events) = setup(12, 0).await;
    let deliveries: Vec<_> = events
        .iter()
        .rev()
        .cloned()
        .map(|(number, frame)| {
            let bus = Arc::clone(&setup.bus);
            let table = Arc::clone(&setup.table);
            tokio::spawn(async move {
                // Each reads the row when its own event is stored, as an invocation does.
                let row = table.rows().get("b1").cloned().unwrap();
                bus.deliver(row, Some(number), Some(&frame)).await;
            })
        })
        .collect();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    let posted = numbers(&setup.recorder, "b1");
    // Repeats are allowed (the client drops them by number); a number never comes
    // before one it follows.
    let mut highest = 0;
    for number in &posted {
        assert!(
            *number <= highest + 1,
            "{number} came before {} in {posted:?}",
            highest + 1
        );
        highest = highest.max(*number);
    }
    assert_eq!(highest, 12, "{posted:?}");
    assert_eq!(setup.table.rows()["b1"].sent, Some(seq(12)));
}

#[tokio::test]
async fn a_gone_connection_is_forgotten_and_the_others_are_not() {
    let (setup, events) = setup(1, 0).await;
    setup.table.insert(open_row("b2", "bob", 0)).await.unwrap();
    setup.recorder.gone.lock().unwrap().push("b2".to_owned());
    let (number, frame) = events[0].clone();
    for id in ["b1", "b2"] {
        let row = setup.table.rows().get(id).cloned().unwrap();
        setup.bus.deliver(row, Some(number), Some(&frame)).await;
    }
    assert_eq!(numbers(&setup.recorder, "b1"), [1]);
    let rows = setup.table.rows();
    assert!(rows.contains_key("b1") && !rows.contains_key("b2"));
}

#[tokio::test]
async fn a_throttled_post_is_tried_again_and_past_that_left_to_the_store() {
    let (setup, events) = setup(2, 0).await;
    *setup.recorder.throttle.lock().unwrap() = 2;
    let (number, frame) = events[0].clone();
    let row = setup.table.rows().get("b1").cloned().unwrap();
    setup.bus.deliver(row, Some(number), Some(&frame)).await;
    assert_eq!(numbers(&setup.recorder, "b1"), [1], "sent on the third try");

    // Throttled past every try: the mark stays, and the next delivery sends it.
    *setup.recorder.throttle.lock().unwrap() = 10;
    let (number, frame) = events[1].clone();
    let row = setup.table.rows().get("b1").cloned().unwrap();
    setup.bus.deliver(row, Some(number), Some(&frame)).await;
    assert_eq!(setup.table.rows()["b1"].sent, Some(seq(1)));
    *setup.recorder.throttle.lock().unwrap() = 0;
    let row = setup.table.rows().get("b1").cloned().unwrap();
    setup.bus.deliver(row, None, None).await;
    assert_eq!(numbers(&setup.recorder, "b1"), [1, 2]);
    drop(setup.store);
}
