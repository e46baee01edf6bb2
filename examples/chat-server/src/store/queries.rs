//! The SQL behind every store operation, as plain functions on a connection.

use relaywire_chat::http::{ChatSummary, CreateChat, MessagePage};
use relaywire_chat::{ChatMessage, MessageCreated, ReadReceipt, ServerMessage};
use relaywire_protocol::{Seq, encode};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::time::now_rfc3339;

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The message as clients see it.
    pub message: ChatMessage,
    /// The `chat:message` frame to deliver, numbered; `None` when the message was
    /// stored before under the same sender and client id (nothing new to deliver).
    pub frame: Option<String>,
}

impl Posted {
    /// Whether the message was stored before, under the same sender and client id.
    pub fn duplicate(&self) -> bool {
        self.frame.is_none()
    }
}

/// A stored read receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRead {
    /// The receipt as clients see it.
    pub receipt: ReadReceipt,
    /// The `chat:read` frame to deliver; `None` when the reader's position did not move.
    pub frame: Option<String>,
}

/// Appends an event to the log: `frame` builds its frame from its sequence number.
fn record_event(
    db: &Connection,
    chat_id: &str,
    frame: impl FnOnce(Seq) -> ServerMessage,
) -> Result<String, StoreError> {
    db.prepare_cached("INSERT INTO events (chat_id, frame) VALUES (?1, '')")?
        .execute([chat_id])?;
    let seq = seq_of(db.last_insert_rowid())?;
    let text = encode(&frame(seq)).map_err(|err| StoreError::Open(err.to_string()))?;
    db.prepare_cached("UPDATE events SET frame = ?1 WHERE seq = ?2")?
        .execute(params![text, seq.get() as i64])?;
    Ok(text)
}

fn seq_of(rowid: i64) -> Result<Seq, StoreError> {
    u64::try_from(rowid)
        .ok()
        .and_then(|n| Seq::new(n).ok())
        .ok_or_else(|| StoreError::Open(format!("event number {rowid} is out of range")))
}

/// The newest event's number (0 before any).
pub(crate) fn head_seq(db: &Connection) -> Result<Seq, StoreError> {
    let head: i64 = db
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")?
        .query_row([], |row| row.get(0))?;
    seq_of(head)
}

/// The frames of events after `after` in the user's chats, oldest first, at most
/// `limit` of them.
pub(crate) fn events_since(
    db: &Connection,
    user_id: &str,
    after: Seq,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut statement = db.prepare_cached(
        "SELECT e.frame FROM events e
         JOIN participants p ON p.chat_id = e.chat_id AND p.user_id = ?1
         WHERE e.seq > ?2 ORDER BY e.seq LIMIT ?3",
    )?;
    let frames = statement
        .query_map(
            params![
                user_id,
                after.get() as i64,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    Ok(frames)
}

/// Which page of a chat's history to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryCursor {
    /// The most recent messages.
    Latest,
    /// Messages older than the message with this id.
    Before(String),
    /// Messages newer than the message with this id (catching up after a reconnect).
    After(String),
}

pub(crate) fn upsert_user(db: &Connection, user_id: &str, name: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO users (id, name, last_seen_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, last_seen_at = excluded.last_seen_at",
        params![user_id, name, now_rfc3339()],
    )?;
    Ok(())
}

pub(crate) fn chat_ids_of(db: &Connection, user_id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement =
        db.prepare_cached("SELECT chat_id FROM participants WHERE user_id = ?1 ORDER BY rowid")?;
    let ids = statement
        .query_map([user_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

pub(crate) fn participant_ids(db: &Connection, chat_id: &str) -> Result<Vec<String>, StoreError> {
    let mut statement =
        db.prepare_cached("SELECT user_id FROM participants WHERE chat_id = ?1 ORDER BY rowid")?;
    let ids = statement
        .query_map([chat_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

fn summaries(
    db: &Connection,
    filter: &str,
    arg: Option<&str>,
) -> Result<Vec<ChatSummary>, StoreError> {
    let sql = format!("SELECT id, title, open, created_at FROM chats {filter} ORDER BY rowid");
    let mut statement = db.prepare_cached(&sql)?;
    let map = |row: &rusqlite::Row<'_>| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, bool>(2)?,
            row.get::<_, String>(3)?,
        ))
    };
    let rows: Vec<_> = match arg {
        Some(arg) => statement.query_map([arg], map)?.collect::<Result<_, _>>()?,
        None => statement.query_map([], map)?.collect::<Result<_, _>>()?,
    };
    rows.into_iter()
        .map(|(id, title, open, created_at)| {
            Ok(ChatSummary {
                participant_ids: participant_ids(db, &id)?,
                id,
                title,
                open,
                created_at,
            })
        })
        .collect()
}

pub(crate) fn all_chats(db: &Connection) -> Result<Vec<ChatSummary>, StoreError> {
    summaries(db, "", None)
}

/// The user's chats and the open chats they may join.
pub(crate) fn visible_chats(
    db: &Connection,
    user_id: &str,
) -> Result<Vec<ChatSummary>, StoreError> {
    summaries(
        db,
        "WHERE open = 1 OR id IN (SELECT chat_id FROM participants WHERE user_id = ?1)",
        Some(user_id),
    )
}

pub(crate) fn chat(db: &Connection, chat_id: &str) -> Result<ChatSummary, StoreError> {
    summaries(db, "WHERE id = ?1", Some(chat_id))?
        .pop()
        .ok_or_else(|| StoreError::ChatNotFound(chat_id.to_owned()))
}

pub(crate) fn create_chat(
    db: &mut Connection,
    request: &CreateChat,
) -> Result<ChatSummary, StoreError> {
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // A savepoint: the store may already have the batch's transaction open.
    let savepoint = db.savepoint()?;
    let now = now_rfc3339();
    let inserted = savepoint.execute(
        "INSERT INTO chats (id, title, open, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO NOTHING",
        params![id, request.title, request.open.unwrap_or(false), now],
    )?;
    if inserted == 0 {
        return Err(StoreError::ChatExists(id));
    }
    for user_id in request.participant_ids.iter().flatten() {
        savepoint.execute(
            "INSERT INTO participants (chat_id, user_id, joined_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![id, user_id, now],
        )?;
    }
    savepoint.commit()?;
    chat(db, &id)
}

pub(crate) fn is_participant(
    db: &Connection,
    chat_id: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    let found = db
        .prepare_cached("SELECT 1 FROM participants WHERE chat_id = ?1 AND user_id = ?2")?
        .exists(params![chat_id, user_id])?;
    Ok(found)
}

fn chat_is_open(db: &Connection, chat_id: &str) -> Result<bool, StoreError> {
    db.prepare_cached("SELECT open FROM chats WHERE id = ?1")?
        .query_row([chat_id], |row| row.get::<_, bool>(0))
        .optional()?
        .ok_or_else(|| StoreError::ChatNotFound(chat_id.to_owned()))
}

/// Checks that the chat exists and the user participates in it.
pub(crate) fn require_participant(
    db: &Connection,
    chat_id: &str,
    user_id: &str,
) -> Result<(), StoreError> {
    chat_is_open(db, chat_id)?;
    if is_participant(db, chat_id, user_id)? {
        Ok(())
    } else {
        Err(StoreError::NotParticipant(chat_id.to_owned()))
    }
}

/// Adds the user to an open chat; returns whether they were not in it already.
pub(crate) fn join_chat(db: &Connection, chat_id: &str, user_id: &str) -> Result<bool, StoreError> {
    let open = chat_is_open(db, chat_id)?;
    if is_participant(db, chat_id, user_id)? {
        return Ok(false);
    }
    if !open {
        return Err(StoreError::ChatClosed(chat_id.to_owned()));
    }
    add_participant(db, chat_id, user_id)?;
    Ok(true)
}

/// Adds a participant to any chat (the HTTP API's way); returns whether they were new.
pub(crate) fn add_participant(
    db: &Connection,
    chat_id: &str,
    user_id: &str,
) -> Result<bool, StoreError> {
    chat_is_open(db, chat_id)?;
    let inserted = db.execute(
        "INSERT INTO participants (chat_id, user_id, joined_at) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        params![chat_id, user_id, now_rfc3339()],
    )?;
    Ok(inserted == 1)
}

pub(crate) fn leave_chat(db: &Connection, chat_id: &str, user_id: &str) -> Result<(), StoreError> {
    require_participant(db, chat_id, user_id)?;
    db.execute(
        "DELETE FROM participants WHERE chat_id = ?1 AND user_id = ?2",
        params![chat_id, user_id],
    )?;
    Ok(())
}

/// What a sender posts.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage<'a> {
    pub(crate) chat_id: &'a str,
    pub(crate) sender_id: &'a str,
    pub(crate) sender_name: &'a str,
    pub(crate) content: &'a str,
    pub(crate) client_id: Option<&'a str>,
}

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, ChatMessage)> {
    Ok((
        row.get(0)?,
        ChatMessage {
            id: row.get(1)?,
            chat_id: row.get(2)?,
            sender_id: row.get(3)?,
            sender_name: row.get(4)?,
            content: row.get(5)?,
            created_at: row.get(6)?,
        },
    ))
}

const MESSAGE_COLUMNS: &str = "seq, id, chat_id, sender_id, sender_name, content, created_at";

/// Stores a message, or finds the one stored earlier under the same client id.
pub(crate) fn post_message(
    db: &mut Connection,
    new: &NewMessage<'_>,
) -> Result<Posted, StoreError> {
    // A savepoint: the store may already have the batch's transaction open.
    let savepoint = db.savepoint()?;
    require_participant(&savepoint, new.chat_id, new.sender_id)?;
    if let Some(client_id) = new.client_id {
        let earlier = savepoint
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = ?1 AND client_id = ?2"
            ))?
            .query_row(params![new.sender_id, client_id], message_from_row)
            .optional()?;
        if let Some((_, message)) = earlier {
            return Ok(Posted {
                message,
                frame: None,
            });
        }
    }
    let message = ChatMessage {
        // Time-ordered (v7): a new id lands at the end of the id index instead of on a
        // random page, which keeps each commit's writes small as the table grows.
        id: uuid::Uuid::now_v7().to_string(),
        chat_id: new.chat_id.to_owned(),
        sender_id: new.sender_id.to_owned(),
        sender_name: new.sender_name.to_owned(),
        content: new.content.to_owned(),
        created_at: now_rfc3339(),
    };
    savepoint
        .prepare_cached(
            "INSERT INTO messages (id, chat_id, sender_id, sender_name, content, created_at, client_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            message.id,
            message.chat_id,
            message.sender_id,
            message.sender_name,
            message.content,
            message.created_at,
            new.client_id,
        ])?;
    let frame = record_event(&savepoint, new.chat_id, |seq| {
        ServerMessage::ChatMessage(MessageCreated {
            chat_id: message.chat_id.clone(),
            message: message.clone(),
            seq: Some(seq),
        })
    })?;
    savepoint.commit()?;
    Ok(Posted {
        message,
        frame: Some(frame),
    })
}

fn message_seq(db: &Connection, chat_id: &str, message_id: &str) -> Result<i64, StoreError> {
    db.prepare_cached("SELECT seq FROM messages WHERE id = ?1 AND chat_id = ?2")?
        .query_row(params![message_id, chat_id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::MessageNotFound(message_id.to_owned()))
}

/// Records that `user_id` read up to `message_id`.
pub(crate) fn mark_read(
    db: &mut Connection,
    chat_id: &str,
    user_id: &str,
    message_id: &str,
) -> Result<StoredRead, StoreError> {
    // A savepoint: the store may already have the batch's transaction open.
    let savepoint = db.savepoint()?;
    require_participant(&savepoint, chat_id, user_id)?;
    let seq = message_seq(&savepoint, chat_id, message_id)?;
    let current: Option<(String, String)> = savepoint
        .prepare_cached(
            "SELECT message_id, read_at FROM read_receipts WHERE chat_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![chat_id, user_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    if let Some((current_id, read_at)) = &current
        && message_seq(&savepoint, chat_id, current_id)? >= seq
    {
        return Ok(StoredRead {
            receipt: ReadReceipt {
                chat_id: chat_id.to_owned(),
                message_id: current_id.clone(),
                user_id: user_id.to_owned(),
                read_at: read_at.clone(),
                seq: None,
            },
            frame: None,
        });
    }
    let receipt = ReadReceipt {
        chat_id: chat_id.to_owned(),
        message_id: message_id.to_owned(),
        user_id: user_id.to_owned(),
        read_at: now_rfc3339(),
        seq: None,
    };
    savepoint.execute(
        "INSERT INTO read_receipts (chat_id, user_id, message_id, read_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (chat_id, user_id) DO UPDATE SET message_id = excluded.message_id, read_at = excluded.read_at",
        params![receipt.chat_id, receipt.user_id, receipt.message_id, receipt.read_at],
    )?;
    let frame = record_event(&savepoint, chat_id, |seq| {
        ServerMessage::ChatRead(ReadReceipt {
            seq: Some(seq),
            ..receipt.clone()
        })
    })?;
    savepoint.commit()?;
    Ok(StoredRead {
        receipt,
        frame: Some(frame),
    })
}

/// The latest read receipt of every participant of a chat.
pub(crate) fn read_receipts(
    db: &Connection,
    chat_id: &str,
) -> Result<Vec<ReadReceipt>, StoreError> {
    let mut statement = db.prepare_cached(
        "SELECT chat_id, message_id, user_id, read_at FROM read_receipts WHERE chat_id = ?1 ORDER BY user_id",
    )?;
    let receipts = statement
        .query_map([chat_id], |row| {
            Ok(ReadReceipt {
                chat_id: row.get(0)?,
                message_id: row.get(1)?,
                user_id: row.get(2)?,
                read_at: row.get(3)?,
                seq: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(receipts)
}

/// A page of a chat's history, oldest message first.
pub(crate) fn history(
    db: &Connection,
    chat_id: &str,
    cursor: &HistoryCursor,
    limit: usize,
) -> Result<MessagePage, StoreError> {
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let (sql, anchor) = match cursor {
        HistoryCursor::Latest => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
            ),
            i64::MAX,
        ),
        HistoryCursor::Before(id) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
            ),
            message_seq(db, chat_id, id)?,
        ),
        HistoryCursor::After(id) => (
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
            ),
            message_seq(db, chat_id, id)?,
        ),
    };
    let mut rows: Vec<ChatMessage> = db
        .prepare_cached(&sql)?
        .query_map(params![chat_id, anchor, fetch], message_from_row)?
        .map(|row| row.map(|(_, message)| message))
        .collect::<Result<_, _>>()?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    if !matches!(cursor, HistoryCursor::After(_)) {
        rows.reverse();
    }
    Ok(MessagePage {
        messages: rows,
        has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated in-memory store with `general`, an open chat of alice and bob.
    fn db() -> Connection {
        let mut db = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut db).unwrap();
        create_chat(
            &mut db,
            &CreateChat {
                id: Some("general".into()),
                title: "General".into(),
                open: Some(true),
                participant_ids: Some(vec!["alice".into(), "bob".into()]),
            },
        )
        .unwrap();
        db
    }

    /// [`db`] plus `staff`, a closed chat of alice alone.
    fn db_with_staff() -> Connection {
        let mut db = db();
        create_chat(
            &mut db,
            &CreateChat {
                id: Some("staff".into()),
                title: "Staff".into(),
                open: None,
                participant_ids: Some(vec!["alice".into()]),
            },
        )
        .unwrap();
        db
    }

    fn post(db: &mut Connection, sender: &str, content: &str, client_id: Option<&str>) -> Posted {
        post_message(
            db,
            &NewMessage {
                chat_id: "general",
                sender_id: sender,
                sender_name: sender,
                content,
                client_id,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_resent_client_id_is_stored_once() {
        let mut db = db();
        let first = post(&mut db, "alice", "hi", Some("c1"));
        let again = post(&mut db, "alice", "hi", Some("c1"));
        assert!(!first.duplicate());
        assert!(again.duplicate());
        assert_eq!(first.message, again.message);
        // Another sender may use the same client id.
        assert!(!post(&mut db, "bob", "hi", Some("c1")).duplicate());
    }

    #[test]
    fn history_pages_both_ways() {
        let mut db = db();
        let ids: Vec<String> = (0..5)
            .map(|i| post(&mut db, "alice", &format!("m{i}"), None).message.id)
            .collect();
        let latest = history(&db, "general", &HistoryCursor::Latest, 2).unwrap();
        assert_eq!(
            latest
                .messages
                .iter()
                .map(|m| &m.content)
                .collect::<Vec<_>>(),
            ["m3", "m4"]
        );
        assert!(latest.has_more);
        let before = history(&db, "general", &HistoryCursor::Before(ids[3].clone()), 10).unwrap();
        assert_eq!(before.messages.len(), 3);
        assert!(!before.has_more);
        let after = history(&db, "general", &HistoryCursor::After(ids[1].clone()), 2).unwrap();
        assert_eq!(
            after
                .messages
                .iter()
                .map(|m| &m.content)
                .collect::<Vec<_>>(),
            ["m2", "m3"]
        );
        assert!(after.has_more);
        assert!(matches!(
            history(&db, "general", &HistoryCursor::After("nope".into()), 2),
            Err(StoreError::MessageNotFound(_))
        ));
    }

    #[test]
    fn read_receipts_only_move_forward() {
        let mut db = db();
        let first = post(&mut db, "alice", "one", None).message.id;
        let second = post(&mut db, "alice", "two", None).message.id;
        assert!(
            mark_read(&mut db, "general", "bob", &second)
                .unwrap()
                .frame
                .is_some()
        );
        let stale = mark_read(&mut db, "general", "bob", &first).unwrap();
        assert!(stale.frame.is_none());
        assert_eq!(stale.receipt.message_id, second);
        assert_eq!(read_receipts(&db, "general").unwrap().len(), 1);
    }

    #[test]
    fn events_are_numbered_and_replayed_per_participant() {
        let mut db = db_with_staff();
        assert_eq!(head_seq(&db).unwrap().get(), 0);
        let first = post(&mut db, "alice", "one", None);
        post_message(
            &mut db,
            &NewMessage {
                chat_id: "staff",
                sender_id: "alice",
                sender_name: "alice",
                content: "secret",
                client_id: None,
            },
        )
        .unwrap();
        let third = post(&mut db, "bob", "two", None);
        mark_read(&mut db, "general", "bob", &third.message.id).unwrap();
        assert_eq!(head_seq(&db).unwrap().get(), 4);
        assert!(first.frame.as_deref().unwrap().contains(r#""seq":1"#));

        let zero = Seq::new(0).unwrap();
        assert_eq!(events_since(&db, "alice", zero, 10).unwrap().len(), 4);
        let bob = events_since(&db, "bob", zero, 10).unwrap();
        assert_eq!(bob.len(), 3, "bob is not in staff");
        assert!(bob.iter().all(|frame| !frame.contains("secret")));
        let after_first = events_since(&db, "bob", Seq::new(1).unwrap(), 10).unwrap();
        assert_eq!(after_first.len(), 2);
        assert_eq!(events_since(&db, "bob", zero, 1).unwrap().len(), 1);
    }

    #[test]
    fn membership_rules() {
        let mut db = db_with_staff();
        assert!(matches!(
            join_chat(&db, "staff", "bob"),
            Err(StoreError::ChatClosed(_))
        ));
        assert!(matches!(
            join_chat(&db, "nope", "bob"),
            Err(StoreError::ChatNotFound(_))
        ));
        assert!(join_chat(&db, "general", "carol").unwrap());
        assert!(!join_chat(&db, "general", "carol").unwrap());
        leave_chat(&db, "general", "carol").unwrap();
        assert!(matches!(
            leave_chat(&db, "general", "carol"),
            Err(StoreError::NotParticipant(_))
        ));
        assert!(matches!(
            post_message(
                &mut db,
                &NewMessage {
                    chat_id: "staff",
                    sender_id: "bob",
                    sender_name: "Bob",
                    content: "x",
                    client_id: None
                }
            ),
            Err(StoreError::NotParticipant(_))
        ));
        let visible: Vec<_> = visible_chats(&db, "bob")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(visible, ["general"]);
        assert!(matches!(
            create_chat(
                &mut db,
                &CreateChat {
                    id: Some("staff".into()),
                    title: "x".into(),
                    open: None,
                    participant_ids: None
                }
            ),
            Err(StoreError::ChatExists(_))
        ));
    }
}
