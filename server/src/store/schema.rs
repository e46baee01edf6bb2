//! The SQL schema, as one ordered list of migrations applied at start-up, each in the
//! two dialects it runs in (SQLite and PostgreSQL differ only in how a table numbers
//! its rows and in booleans).
//!
//! In SQLite, `PRAGMA user_version` records how many have run and `PRAGMA
//! application_id` marks the file as a Relaywire store; in PostgreSQL the table
//! `relaywire_schema` does both. Each migration runs in its own transaction and
//! migrations are only ever appended.

use super::StoreError;

/// `application_id` of a Relaywire store: "RLYW".
pub(crate) const APPLICATION_ID: i64 = 0x524c_5957;

/// One step of the schema, in each dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// 2: the digest of each deduplicated message, so that an id used again for another
/// message is refused; answers are forgotten by age. The same in both dialects.
const FINGERPRINTS: &str = "
    ALTER TABLE answers ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    CREATE INDEX answers_by_age ON answers(created_at);
    ";

/// 3, SQLite: every user's stream as runs of a room's fan-outs instead of a row per
/// delivery (`store/sqlite/streams.rs`); what the inbox held becomes runs of one
/// event each. PostgreSQL keeps its inbox.
const SQLITE_RUNS: &str = "
    ALTER TABLE events ADD COLUMN audience_room TEXT;
    CREATE INDEX events_by_audience ON events(audience_room, position)
        WHERE audience_room IS NOT NULL;

    -- The user's open run: numbers run_seq..=seq are the fan-outs of run_room from
    -- position run_from to run_to, or the event at run_from when run_room is NULL.
    ALTER TABLE heads ADD COLUMN run_seq INTEGER;
    ALTER TABLE heads ADD COLUMN run_room TEXT;
    ALTER TABLE heads ADD COLUMN run_from INTEGER;
    ALTER TABLE heads ADD COLUMN run_to INTEGER;

    -- Every run before the open one, by the last number it holds.
    CREATE TABLE runs (
        user_id TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        room_id TEXT,
        first_position INTEGER NOT NULL REFERENCES events(position) ON DELETE CASCADE,
        last_position INTEGER NOT NULL,
        PRIMARY KEY (user_id, last_seq)
    );
    INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
        SELECT user_id, seq, seq, NULL, event_position, event_position FROM inbox;
    DROP TABLE inbox;
    ";

/// 4, SQLite: a member's open run of a room's fan-outs is live: it holds every fan-out
/// of the room since it started, counted by the room, so a fan-out writes nothing per
/// member (`store/sqlite/streams.rs`). Open runs that could not grow any more (the
/// member left the room, or the room fanned out past them) are filed.
const SQLITE_LIVE_RUNS: &str = "
    -- How many fan-outs the room has stored, and the position of the newest.
    ALTER TABLE rooms ADD COLUMN fanouts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN last_fanout INTEGER;
    UPDATE rooms SET
        fanouts = (SELECT count(*) FROM events WHERE audience_room = rooms.id),
        last_fanout = (SELECT max(position) FROM events WHERE audience_room = rooms.id);

    -- A live run holds the room's fan-outs numbered run_base + 1 onwards; seq is then
    -- the number before the run. An open run is one with run_seq set.
    ALTER TABLE heads ADD COLUMN run_base INTEGER;
    UPDATE heads SET run_seq = NULL, run_room = NULL, run_from = NULL
        WHERE run_to IS NULL;
    INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
        SELECT h.user_id, h.seq, h.run_seq, h.run_room, h.run_from, h.run_to FROM heads h
        WHERE h.run_room IS NOT NULL AND (
            h.run_to IS NOT (SELECT last_fanout FROM rooms WHERE id = h.run_room)
            OR NOT EXISTS (SELECT 1 FROM members
                           WHERE room_id = h.run_room AND user_id = h.user_id));
    UPDATE heads SET run_seq = NULL, run_room = NULL, run_from = NULL, run_to = NULL
        WHERE run_room IS NOT NULL AND (
            run_to IS NOT (SELECT last_fanout FROM rooms WHERE id = heads.run_room)
            OR NOT EXISTS (SELECT 1 FROM members
                           WHERE room_id = heads.run_room AND user_id = heads.user_id));
    UPDATE heads SET
        run_base = (SELECT fanouts FROM rooms WHERE id = heads.run_room)
                   - (seq - run_seq + 1),
        seq = run_seq - 1,
        run_to = NULL
        WHERE run_room IS NOT NULL;
    ";

/// Every migration, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: users, rooms and members; events, every user's numbered stream, answers to
    // durable messages, cursors.
    Migration {
        sqlite: "
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
        postgres: "
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );

    CREATE TABLE rooms (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        open BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TEXT NOT NULL
    );

    CREATE TABLE members (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        room_id TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        joined_at TEXT NOT NULL,
        UNIQUE (room_id, user_id)
    );
    CREATE INDEX members_by_user ON members(user_id, room_id);

    CREATE TABLE events (
        position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        room_id TEXT REFERENCES rooms(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        sender_id TEXT,
        frame TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_room ON events(room_id, kind, position);

    CREATE TABLE heads (
        user_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL
    );
    -- No foreign key on event_position here: PostgreSQL checks one per row with a
    -- trigger, which was most of a fan-out's filing time (`cargo xtask bench`'s
    -- statement profile); the row is only ever written with the event it files, in
    -- the same transaction.
    CREATE TABLE inbox (
        user_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_position BIGINT NOT NULL,
        PRIMARY KEY (user_id, seq)
    );

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
        event_position BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        moved_at TEXT NOT NULL,
        PRIMARY KEY (room_id, kind, user_id)
    );
    ",
    },
    Migration {
        sqlite: FINGERPRINTS,
        postgres: FINGERPRINTS,
    },
    Migration {
        sqlite: SQLITE_RUNS,
        postgres: "",
    },
    Migration {
        sqlite: SQLITE_LIVE_RUNS,
        postgres: "",
    },
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
        transaction.execute_batch(migration.sqlite).map_err(sql)?;
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

/// The PostgreSQL schema's bookkeeping: which application and how many migrations.
const POSTGRES_BOOKKEEPING: &str = "
    CREATE TABLE IF NOT EXISTS relaywire_schema (
        application BIGINT NOT NULL,
        version BIGINT NOT NULL
    )";

/// Applies every migration a PostgreSQL database has not seen yet, under an advisory
/// lock so that nodes starting together migrate once; refuses a newer schema.
pub(crate) async fn migrate_postgres(
    client: &mut tokio_postgres::Client,
) -> Result<(), StoreError> {
    let sql = |err: tokio_postgres::Error| StoreError::Backend(err.to_string());
    let transaction = client.transaction().await.map_err(sql)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&APPLICATION_ID])
        .await
        .map_err(sql)?;
    transaction
        .batch_execute(POSTGRES_BOOKKEEPING)
        .await
        .map_err(sql)?;
    let found = transaction
        .query_opt("SELECT application, version FROM relaywire_schema", &[])
        .await
        .map_err(sql)?;
    let applied = match found {
        None => {
            transaction
                .execute(
                    "INSERT INTO relaywire_schema (application, version) VALUES ($1, 0)",
                    &[&APPLICATION_ID],
                )
                .await
                .map_err(sql)?;
            0
        }
        Some(row) => {
            let application: i64 = row.get(0);
            if application != APPLICATION_ID {
                return Err(StoreError::Backend(
                    "the database's relaywire_schema belongs to another application: point DATABASE_URL elsewhere".to_owned(),
                ));
            }
            row.get::<_, i64>(1)
        }
    };
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database is at schema version {applied}, newer than this server's {}",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        transaction
            .batch_execute(migration.postgres)
            .await
            .map_err(sql)?;
        transaction
            .execute(
                "UPDATE relaywire_schema SET version = $1",
                &[&(index as i64 + 1)],
            )
            .await
            .map_err(sql)?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    transaction.commit().await.map_err(sql)
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
