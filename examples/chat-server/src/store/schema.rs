//! The schema, as an ordered list of migrations applied at start-up.
//!
//! `PRAGMA user_version` records how many have run; each runs in its own transaction.
//! Migrations are only ever appended.

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: chats, participants, messages and read receipts.
    "
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    ) WITHOUT ROWID;

    -- Chats and participants keep their rowid: listings follow creation order.
    CREATE TABLE chats (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        open INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );

    CREATE TABLE participants (
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    );
    CREATE INDEX participants_by_user ON participants(user_id, chat_id);

    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        sender_id TEXT NOT NULL,
        sender_name TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at TEXT NOT NULL,
        client_id TEXT
    );
    CREATE INDEX messages_by_chat ON messages(chat_id, seq);
    -- A message re-sent with the same client id is stored once.
    CREATE UNIQUE INDEX messages_by_client_id ON messages(sender_id, client_id)
        WHERE client_id IS NOT NULL;

    CREATE TABLE read_receipts (
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        read_at TEXT NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    ) WITHOUT ROWID;
    ",
    // 2: the event log: every stored message and receipt gets a sequence number and
    // its frame, so a reconnecting client is sent what it missed.
    "
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        frame TEXT NOT NULL
    );
    CREATE INDEX events_by_chat ON events(chat_id, seq);
    ",
];

/// Applies every migration the database has not seen yet.
pub(super) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Open(format!(
            "the database is at schema version {applied}, newer than this server's {}",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer_databases() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        connection
            .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        assert!(matches!(migrate(&mut connection), Err(StoreError::Open(_))));
    }
}
