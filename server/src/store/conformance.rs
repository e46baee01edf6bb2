//! The cases every store backend passes, through the [`Store`] seam alone: numbering
//! per user, replay, answers, cursors, membership and history. A backend in another
//! crate runs them with [`store_conformance!`](crate::store_conformance) (feature
//! `conformance`); this crate runs them on SQLite and PostgreSQL.

use super::*;
use crate::time::now_rfc3339;

/// One test per conformance case, each on a fresh store: `$fresh` is an async closure
/// returning the store and whatever must live as long as it (a server, a thread).
#[macro_export]
macro_rules! store_conformance {
    ($fresh:expr) => {
        $crate::store_conformance!(@cases $fresh;
            each_recipient_numbers_events_in_their_own_stream,
            a_durable_message_is_stored_once_under_its_key,
            cursors_only_move_forward,
            history_pages_both_ways,
            membership_rules,
            a_stream_holds_what_its_user_received_and_nothing_else,
            streams_match_a_model_under_mixed_traffic,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let (store, _keep) = ($fresh)().await;
                $crate::store::conformance::$case(&store).await;
            }
        )*
    };
}

/// A follow-up that does nothing.
pub fn none<T>() -> FollowUp<T> {
    Box::new(|_| {})
}

/// Creates the open room `general` with alice and bob.
pub async fn with_general(store: &dyn Store) {
    store
        .create_room(NewRoom {
            id: "general".into(),
            title: "General".into(),
            open: true,
            members: vec!["alice".into(), "bob".into()],
        })
        .await
        .unwrap();
}

/// Creates the closed room `staff` with alice alone.
pub async fn with_staff(store: &dyn Store) {
    store
        .create_room(NewRoom {
            id: "staff".into(),
            title: "Staff".into(),
            open: false,
            members: vec!["alice".into()],
        })
        .await
        .unwrap();
}

/// A chat message `id` in `room` by `sender`, who must be a member.
pub fn post(id: &str, room: &str, sender: &str) -> Publish {
    Publish {
        event_id: id.to_owned(),
        room_id: Some(room.to_owned()),
        kind: "chat:message".to_owned(),
        frame: format!(r#"{{"type":"chat:message","payload":{{"id":"{id}"}}}}"#),
        sender_id: Some(sender.to_owned()),
        at: now_rfc3339(),
        audience: Audience::Room(room.to_owned()),
        require_member: Some(sender.to_owned()),
        answer_key: None,
        cursor: None,
    }
}

fn recipients(published: &Published) -> Vec<(String, u64)> {
    let Published::Stored { recipients, .. } = published else {
        panic!("not stored: {published:?}");
    };
    let mut recipients: Vec<_> = recipients
        .iter()
        .map(|(user, seq)| (user.clone(), seq.get()))
        .collect();
    recipients.sort();
    recipients
}

/// The ids of replayed events, in order, after checking that each frame carries its
/// own number as the payload's last field and that the numbers have no gap.
fn ids(missed: &[(Seq, String)]) -> Vec<String> {
    missed
        .iter()
        .enumerate()
        .map(|(n, (seq, frame))| {
            assert!(frame.ends_with(&format!(r#","seq":{seq}}}}}"#)), "{frame}");
            assert!(n == 0 || missed[n - 1].0.get() + 1 == seq.get(), "gapless");
            let id = frame.split(r#""id":""#).nth(1).expect("an id");
            id[..id.find('"').expect("a closing quote")].to_owned()
        })
        .collect()
}

/// Each recipient numbers events in their own stream, and replays from it.
pub async fn each_recipient_numbers_events_in_their_own_stream(store: &dyn Store) {
    with_general(store).await;
    with_staff(store).await;
    let first = store
        .publish(post("m1", "general", "alice"), none())
        .await
        .unwrap();
    assert_eq!(recipients(&first), [("alice".into(), 1), ("bob".into(), 1)]);
    // Activity bob cannot see does not move his numbers.
    let secret = store
        .publish(post("m2", "staff", "alice"), none())
        .await
        .unwrap();
    assert_eq!(recipients(&secret), [("alice".into(), 2)]);
    let third = store
        .publish(post("m3", "general", "bob"), none())
        .await
        .unwrap();
    assert_eq!(recipients(&third), [("alice".into(), 3), ("bob".into(), 2)]);

    let session = store
        .open_session(
            "bob".into(),
            "Bob".into(),
            Some(Seq::new(0).unwrap()),
            10,
            none(),
        )
        .await
        .unwrap();
    assert_eq!(session.head.get(), 2);
    assert_eq!(session.rooms, ["general"]);
    let frames: Vec<_> = session
        .missed
        .iter()
        .map(|(_, frame)| frame.clone())
        .collect();
    assert_eq!(
        frames,
        [
            r#"{"type":"chat:message","payload":{"id":"m1","seq":1}}"#,
            r#"{"type":"chat:message","payload":{"id":"m3","seq":2}}"#
        ]
    );
    let limited = store
        .open_session(
            "alice".into(),
            "Alice".into(),
            Some(Seq::new(1).unwrap()),
            1,
            none(),
        )
        .await
        .unwrap();
    assert_eq!(limited.missed.len(), 1);
    assert!(limited.truncated);
    let between = store
        .events_between("alice".into(), Seq::new(1).unwrap(), Seq::new(2).unwrap())
        .await
        .unwrap();
    assert_eq!(between.len(), 1);
    assert!(between[0].1.contains("m2"));
}

/// A durable message is stored once under its key; its id is refused for another.
pub async fn a_durable_message_is_stored_once_under_its_key(store: &dyn Store) {
    with_general(store).await;
    let key = AnswerKey {
        user_id: "alice".into(),
        client_id: "c1".into(),
        fingerprint: "digest-of-m1".into(),
    };
    let keyed = |id: &str| Publish {
        answer_key: Some(key.clone()),
        ..post(id, "general", "alice")
    };
    assert!(matches!(
        store.publish(keyed("m1"), none()).await.unwrap(),
        Published::Stored { .. }
    ));
    assert_eq!(
        store.publish(keyed("m2"), none()).await.unwrap(),
        Published::Duplicate {
            answer: Some("m1".into())
        }
    );
    assert_eq!(
        store.answer(key.clone()).await.unwrap(),
        Some(Some("m1".into()))
    );
    // Another sender may use the same client id.
    let bob = Publish {
        answer_key: Some(AnswerKey {
            user_id: "bob".into(),
            client_id: "c1".into(),
            fingerprint: "digest-of-m3".into(),
        }),
        ..post("m3", "general", "bob")
    };
    assert!(matches!(
        store.publish(bob, none()).await.unwrap(),
        Published::Stored { .. }
    ));
    let page = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2, "the duplicate stored nothing");

    // The same id for another message is refused, by lookup and by publish.
    let other = AnswerKey {
        fingerprint: "digest-of-something-else".into(),
        ..key.clone()
    };
    assert!(matches!(
        store.answer(other.clone()).await,
        Err(StoreError::IdReused(id)) if id == "c1"
    ));
    let reused = Publish {
        answer_key: Some(other.clone()),
        ..post("m4", "general", "alice")
    };
    assert!(matches!(
        store.publish(reused, none()).await,
        Err(StoreError::IdReused(_))
    ));

    // Forgotten after the window, the id may carry a new message.
    assert_eq!(
        store
            .forget_answers("1970-01-01T00:00:00.000Z".into())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .forget_answers("9999-01-01T00:00:00.000Z".into())
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.answer(other).await.unwrap(), None);
}

/// A cursor only moves forward, to an event that exists.
pub async fn cursors_only_move_forward(store: &dyn Store) {
    with_general(store).await;
    store
        .publish(post("m1", "general", "alice"), none())
        .await
        .unwrap();
    store
        .publish(post("m2", "general", "alice"), none())
        .await
        .unwrap();
    let read = |id: &str, event: &str| Publish {
        kind: "chat:read".into(),
        cursor: Some(CursorMove {
            room_id: "general".into(),
            user_id: "bob".into(),
            kind: "read".into(),
            event_id: event.into(),
        }),
        ..post(id, "general", "bob")
    };
    assert!(matches!(
        store.publish(read("r1", "m2"), none()).await.unwrap(),
        Published::Stored { .. }
    ));
    let stale = store.publish(read("r2", "m1"), none()).await.unwrap();
    let Published::CursorUnchanged(cursor) = stale else {
        panic!("{stale:?}")
    };
    assert_eq!(cursor.event_id, "m2");
    assert!(matches!(
        store.publish(read("r3", "nope"), none()).await,
        Err(StoreError::EventNotFound(_))
    ));
    let cursors = store
        .cursors("general".into(), "read".into())
        .await
        .unwrap();
    assert_eq!(cursors.len(), 1);
    assert_eq!(cursors[0].user_id, "bob");
}

/// History pages back and forth from any event.
pub async fn history_pages_both_ways(store: &dyn Store) {
    with_general(store).await;
    for i in 0..5 {
        store
            .publish(post(&format!("m{i}"), "general", "alice"), none())
            .await
            .unwrap();
    }
    let ids = |page: &EventPage| page.events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    let latest = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Latest,
            2,
        )
        .await
        .unwrap();
    assert_eq!(ids(&latest), ["m3", "m4"]);
    assert!(latest.has_more);
    let before = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::Before("m3".into()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(ids(&before), ["m0", "m1", "m2"]);
    assert!(!before.has_more);
    let after = store
        .events(
            "general".into(),
            "chat:message".into(),
            EventCursor::After("m1".into()),
            2,
        )
        .await
        .unwrap();
    assert_eq!(ids(&after), ["m2", "m3"]);
    assert!(after.has_more);
    assert!(matches!(
        store
            .events(
                "general".into(),
                "chat:message".into(),
                EventCursor::After("nope".into()),
                2
            )
            .await,
        Err(StoreError::EventNotFound(_))
    ));
}

/// Who may join, leave and post, and which rooms a user sees.
pub async fn membership_rules(store: &dyn Store) {
    with_general(store).await;
    with_staff(store).await;
    let join = |room: &str, user: &str, rule| store.join(room.into(), user.into(), rule);
    assert!(matches!(
        join("staff", "bob", JoinRule::OpenOnly).await,
        Err(StoreError::RoomClosed(_))
    ));
    assert!(join("staff", "bob", JoinRule::Any).await.unwrap());
    assert!(matches!(
        join("nope", "bob", JoinRule::OpenOnly).await,
        Err(StoreError::RoomNotFound(_))
    ));
    assert!(join("general", "carol", JoinRule::OpenOnly).await.unwrap());
    assert!(!join("general", "carol", JoinRule::OpenOnly).await.unwrap());
    store.leave("general".into(), "carol".into()).await.unwrap();
    assert!(matches!(
        store.leave("general".into(), "carol".into()).await,
        Err(StoreError::NotMember(_))
    ));
    assert!(matches!(
        store.publish(post("x", "general", "carol"), none()).await,
        Err(StoreError::NotMember(_))
    ));
    let visible: Vec<_> = store
        .rooms(RoomFilter::VisibleTo("carol".into()))
        .await
        .unwrap()
        .into_iter()
        .map(|room| room.id)
        .collect();
    assert_eq!(visible, ["general"]);
    assert!(matches!(
        store
            .create_room(NewRoom {
                id: "staff".into(),
                title: "x".into(),
                open: false,
                members: vec![]
            })
            .await,
        Err(StoreError::RoomExists(_))
    ));
}

/// A user's stream holds exactly what they received, in order, whatever came between:
/// fan-outs they were away for are not in it, nor are other rooms', and an event sent
/// to them alone sits between fan-outs; replay may start and stop anywhere in it.
pub async fn a_stream_holds_what_its_user_received_and_nothing_else(store: &dyn Store) {
    with_general(store).await;
    with_staff(store).await;
    let publish = |publish: Publish| async move {
        recipients(&store.publish(publish, none()).await.unwrap())
    };
    assert_eq!(
        publish(post("m1", "general", "alice")).await,
        [("alice".into(), 1), ("bob".into(), 1)]
    );
    assert_eq!(
        publish(post("m2", "general", "bob")).await,
        [("alice".into(), 2), ("bob".into(), 2)]
    );
    store.leave("general".into(), "bob".into()).await.unwrap();
    assert_eq!(
        publish(post("m3", "general", "alice")).await,
        [("alice".into(), 3)]
    );
    assert!(
        store
            .join("general".into(), "bob".into(), JoinRule::OpenOnly)
            .await
            .unwrap()
    );
    assert_eq!(
        publish(post("m4", "general", "alice")).await,
        [("alice".into(), 4), ("bob".into(), 3)]
    );
    // Listed twice, numbered once.
    let to_bob = Publish {
        audience: Audience::Users(vec!["bob".into(), "bob".into()]),
        require_member: None,
        ..post("d1", "general", "alice")
    };
    assert_eq!(publish(to_bob).await, [("bob".into(), 4)]);
    assert_eq!(
        publish(post("s1", "staff", "alice")).await,
        [("alice".into(), 5)]
    );
    assert_eq!(
        publish(post("m5", "general", "bob")).await,
        [("alice".into(), 6), ("bob".into(), 5)]
    );
    assert_eq!(
        publish(post("m6", "general", "alice")).await,
        [("alice".into(), 7), ("bob".into(), 6)]
    );

    let replay = |user: &str, after: u64, limit: usize| {
        store.open_session(
            user.into(),
            user.into(),
            Some(Seq::new(after).unwrap()),
            limit,
            none(),
        )
    };
    let bob = replay("bob", 0, 10).await.unwrap();
    assert_eq!(bob.head.get(), 6);
    assert_eq!(ids(&bob.missed), ["m1", "m2", "m4", "d1", "m5", "m6"]);
    assert_eq!(
        bob.missed
            .iter()
            .map(|(seq, _)| seq.get())
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(!bob.truncated);
    let alice = replay("alice", 1, 10).await.unwrap();
    assert_eq!(ids(&alice.missed), ["m2", "m3", "m4", "s1", "m5", "m6"]);
    let limited = replay("bob", 1, 2).await.unwrap();
    assert_eq!(ids(&limited.missed), ["m2", "m4"]);
    assert!(limited.truncated);
    let between = store
        .events_between("bob".into(), Seq::new(2).unwrap(), Seq::new(4).unwrap())
        .await
        .unwrap();
    assert_eq!(ids(&between), ["m4", "d1"]);
    assert!(replay("bob", 6, 10).await.unwrap().missed.is_empty());
}

/// Streams match a plain model (each user's list of what they received) through a
/// long, seeded mix of fan-outs to three rooms, events to named users, leaving and
/// joining; every publish's numbers and every replay, from anywhere, agree with it.
pub async fn streams_match_a_model_under_mixed_traffic(store: &dyn Store) {
    use std::collections::{BTreeMap, BTreeSet};

    with_general(store).await;
    with_staff(store).await;
    store
        .create_room(NewRoom {
            id: "lounge".into(),
            title: "Lounge".into(),
            open: true,
            members: vec!["bob".into(), "carol".into()],
        })
        .await
        .unwrap();
    let users = ["alice", "bob", "carol", "dave"];
    let mut members: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::from([
        ("general", BTreeSet::from(["alice", "bob"])),
        ("staff", BTreeSet::from(["alice"])),
        ("lounge", BTreeSet::from(["bob", "carol"])),
    ]);
    let mut received: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // The model's side of a publish: each user receives `id`; their numbers for it.
    fn deliver<'a>(
        received: &mut BTreeMap<&'a str, Vec<String>>,
        users: &[&'a str],
        id: &str,
    ) -> Vec<(String, u64)> {
        users
            .iter()
            .map(|user| {
                let stream = received.entry(user).or_default();
                stream.push(id.to_owned());
                ((*user).to_owned(), stream.len() as u64)
            })
            .collect()
    }
    // xorshift64: the same traffic on every run and every backend.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    for step in 0..400 {
        let id = format!("e{step}");
        let room = ["general", "staff", "lounge"][next(3)];
        match next(20) {
            0..=10 => {
                let present: Vec<&str> = members[room].iter().copied().collect();
                if present.is_empty() {
                    continue;
                }
                let sender = present[next(present.len())];
                let published = store
                    .publish(post(&id, room, sender), none())
                    .await
                    .unwrap();
                let expected = deliver(&mut received, &present, &id);
                assert_eq!(recipients(&published), expected, "{id} to {room}");
            }
            11..=12 => {
                let mut to: Vec<&str> = vec![users[next(4)], users[next(4)]];
                to.sort_unstable();
                to.dedup();
                let direct = Publish {
                    room_id: None,
                    audience: Audience::Users(to.iter().map(|user| (*user).to_owned()).collect()),
                    require_member: None,
                    ..post(&id, room, "alice")
                };
                let published = store.publish(direct, none()).await.unwrap();
                let expected = deliver(&mut received, &to, &id);
                assert_eq!(recipients(&published), expected, "{id} to named users");
            }
            13..=15 => {
                let user = users[next(4)];
                if members.get_mut(room).expect("a room").remove(user) {
                    store.leave(room.into(), user.into()).await.unwrap();
                }
            }
            16..=18 => {
                let user = users[next(4)];
                let joined = store
                    .join(room.into(), user.into(), JoinRule::Any)
                    .await
                    .unwrap();
                assert_eq!(joined, members.get_mut(room).expect("a room").insert(user));
            }
            _ => {
                let user = users[next(4)];
                let stream = received.get(user).cloned().unwrap_or_default();
                let after = next(stream.len() + 1);
                let session = store
                    .open_session(
                        user.into(),
                        user.into(),
                        Some(Seq::new(after as u64).unwrap()),
                        1_000,
                        none(),
                    )
                    .await
                    .unwrap();
                assert_eq!(session.head.get(), stream.len() as u64, "{user}'s head");
                assert_eq!(
                    ids(&session.missed),
                    stream[after..],
                    "{user} after {after}"
                );
            }
        }
    }
    for user in users {
        let stream = received.get(user).cloned().unwrap_or_default();
        for _ in 0..5 {
            let after = next(stream.len() + 1);
            let up_to = after + next(stream.len() - after + 1);
            let between = store
                .events_between(
                    user.into(),
                    Seq::new(after as u64).unwrap(),
                    Seq::new(up_to as u64).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(
                ids(&between),
                stream[after..up_to],
                "{user} in ({after}, {up_to}]"
            );
        }
    }
}
