//! The SQL schema, as an ordered list of migrations applied at start-up.
//!
//! `PRAGMA user_version` records how many have run and `PRAGMA application_id` marks
//! the file as a Relaywire store; each migration runs in its own transaction and
//! migrations are only ever appended.

use super::StoreError;

/// `application_id` of a Relaywire store: "RLYW".
pub(crate) const APPLICATION_ID: i64 = 0x524c_5957;

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: users, rooms and members; events, every user's numbered stream, answers to
    // durable messages, cursors.
    "
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );

    CREATE TABLE rooms (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        open INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );

    CREATE TABLE members (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        UNIQUE (room_id, user_id)
    );
    CREATE INDEX members_by_user ON members(user_id, room_id);

    CREATE TABLE events (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        room_id TEXT REFERENCES rooms(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        sender_id TEXT,
        frame TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_room ON events(room_id, kind, position);

    -- Each user's stream: the number of their newest event, and which event each
    -- number is.
    CREATE TABLE heads (
        user_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    CREATE TABLE inbox (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_position INTEGER NOT NULL REFERENCES events(position) ON DELETE CASCADE,
        PRIMARY KEY (user_id, seq)
    );

    -- The answer given to a durable message, by its sender and client id.
    CREATE TABLE answers (
        user_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        answer TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (user_id, client_id)
    );

    CREATE TABLE cursors (
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        user_id TEXT NOT NULL,
        event_position INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        moved_at TEXT NOT NULL,
        PRIMARY KEY (room_id, kind, user_id)
    );
    ",
    // 2: the digest of each deduplicated message, so that an id used again for
    // another message is refused; answers are forgotten by age.
    "
    ALTER TABLE answers ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    CREATE INDEX answers_by_age ON answers(created_at);
    ",
];

/// Applies every migration the database has not seen yet; refuses a database of
/// another application or of a newer server.
pub(crate) fn migrate(connection: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let sql = |err: rusqlite::Error| StoreError::Backend(err.to_string());
    let application: i64 = connection
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(sql)?;
    let applied: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql)?;
    if application != APPLICATION_ID && applied != 0 {
        return Err(StoreError::Backend(
            "the database was not written by a Relaywire server of this version (an older chat server's file?): point DATABASE_URL elsewhere".to_owned(),
        ));
    }
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {applied}, newer than this server's {}",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        let transaction = connection.transaction().map_err(sql)?;
        transaction.execute_batch(migration).map_err(sql)?;
        transaction
            .pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sql)?;
        transaction
            .pragma_update(None, "user_version", index as i64 + 1)
            .map_err(sql)?;
        transaction.commit().map_err(sql)?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_refuse_newer_or_foreign_databases() {
        let mut connection = rusqlite::Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        connection
            .pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut connection),
            Err(StoreError::Backend(_))
        ));

        let mut foreign = rusqlite::Connection::open_in_memory().unwrap();
        foreign.pragma_update(None, "user_version", 2).unwrap();
        assert!(matches!(migrate(&mut foreign), Err(StoreError::Backend(_))));
    }
}
