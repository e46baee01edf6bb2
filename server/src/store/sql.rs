//! Every statement the SQL stores run, written once for SQLite and PostgreSQL alike,
//! except SQLite's streams, which are runs rather than rows and keep their statements
//! beside their code (`store/sqlite/streams.rs`).
//!
//! Parameters are `$1`, `$2`, ... in order of first appearance: PostgreSQL binds them by
//! number and SQLite by first appearance, so one text serves both. Types are the
//! common subset (TEXT, BIGINT, booleans compared as truth values); `RETURNING` and
//! `ON CONFLICT` are spelled the same in both.

/// PostgreSQL only: serializes a room's publishes, so its history (by position) and
/// every member's stream (by `seq`) have one order. `NO KEY UPDATE` leaves the row's
/// key free for the foreign-key checks of new members and events. SQLite's single
/// writer needs no lock.
pub(crate) const LOCK_ROOM: &str = "SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE";

pub(crate) const ROOM_OPEN: &str = "SELECT open FROM rooms WHERE id = $1";

pub(crate) const IS_MEMBER: &str = "SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2";

pub(crate) const MEMBERS: &str = "SELECT user_id FROM members WHERE room_id = $1 ORDER BY position";

pub(crate) const ADD_MEMBER: &str =
    "INSERT INTO members (room_id, user_id, joined_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

pub(crate) const ALL_ROOMS: &str =
    "SELECT id, title, open, created_at FROM rooms ORDER BY position";

pub(crate) const VISIBLE_ROOMS: &str = "SELECT id, title, open, created_at FROM rooms
     WHERE open OR id IN (SELECT room_id FROM members WHERE user_id = $1)
     ORDER BY position";

pub(crate) const ROOM: &str = "SELECT id, title, open, created_at FROM rooms WHERE id = $1";

pub(crate) const CREATE_ROOM: &str = "INSERT INTO rooms (id, title, open, created_at)
     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";

pub(crate) const LEAVE: &str = "DELETE FROM members WHERE room_id = $1 AND user_id = $2";

/// PostgreSQL only: SQLite's heads may hold a live run ([`super::sqlite`]'s streams).
pub(crate) const HEAD: &str = "SELECT seq FROM heads WHERE user_id = $1";

/// A user's events numbered in (`$2`, `$3`], at most `$4`, with their numbers
/// (PostgreSQL's inbox).
pub(crate) const NUMBERED: &str = "SELECT i.seq, e.frame FROM inbox i
     JOIN events e ON e.position = i.event_position
     WHERE i.user_id = $1 AND i.seq > $2 AND i.seq <= $3
     ORDER BY i.seq LIMIT $4";

pub(crate) const UPSERT_USER: &str =
    "INSERT INTO users (id, name, last_seen_at) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, last_seen_at = excluded.last_seen_at";

pub(crate) const USER_ROOMS: &str =
    "SELECT room_id FROM members WHERE user_id = $1 ORDER BY position";

/// Everyone who shares a room with the user, without them.
pub(crate) const PEERS: &str = "SELECT DISTINCT other.user_id FROM members own
     JOIN members other ON other.room_id = own.room_id
     WHERE own.user_id = $1 AND other.user_id <> $1
     ORDER BY other.user_id";

pub(crate) const ANSWER: &str =
    "SELECT answer, fingerprint FROM answers WHERE user_id = $1 AND client_id = $2";

pub(crate) const FORGET_ANSWERS: &str = "DELETE FROM answers WHERE created_at < $1";

pub(crate) const RECORD_ANSWER: &str =
    "INSERT INTO answers (user_id, client_id, fingerprint, answer, created_at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";

pub(crate) const EVENT_POSITION: &str =
    "SELECT position FROM events WHERE id = $1 AND room_id = $2";

pub(crate) const CURSOR: &str = "SELECT event_position, event_id, moved_at FROM cursors
     WHERE room_id = $1 AND kind = $2 AND user_id = $3";

/// PostgreSQL only (SQLite keeps streams as runs, `store/sqlite/streams.rs`): gives
/// every member of a room the next number in their stream and files the event under
/// it, as one statement (a data-modifying `WITH`), filing straight from the numbers it
/// returns: one round trip and no join per fan-out, measured by `cargo xtask bench`'s
/// statement profile. It locks the heads in user order, so that concurrent fan-outs
/// take the locks in one order and never deadlock.
pub(crate) const NUMBER_AND_FILE_ROOM: &str = "WITH numbered AS (
         INSERT INTO heads (user_id, seq)
         SELECT user_id, 1 FROM members WHERE room_id = $1 ORDER BY user_id
         ON CONFLICT (user_id) DO UPDATE SET seq = heads.seq + 1
         RETURNING user_id, seq
     )
     INSERT INTO inbox (user_id, seq, event_position)
     SELECT user_id, seq, CAST($2 AS BIGINT) FROM numbered
     RETURNING user_id, seq";

/// PostgreSQL only, as are [`FILE_USER`] and [`NUMBERED`].
pub(crate) const NUMBER_USER: &str = "INSERT INTO heads (user_id, seq) VALUES ($1, 1)
     ON CONFLICT (user_id) DO UPDATE SET seq = heads.seq + 1
     RETURNING seq";

pub(crate) const FILE_USER: &str =
    "INSERT INTO inbox (user_id, seq, event_position) VALUES ($1, $2, $3)";

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (id, room_id, kind, sender_id, frame, created_at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING
     RETURNING position";

pub(crate) const MOVE_CURSOR: &str =
    "INSERT INTO cursors (room_id, kind, user_id, event_position, event_id, moved_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (room_id, kind, user_id) DO UPDATE SET
         event_position = excluded.event_position,
         event_id = excluded.event_id,
         moved_at = excluded.moved_at";

/// A page of a room's events before a position, newest first.
pub(crate) const EVENTS_BEFORE: &str = "SELECT id, room_id, kind, frame, created_at FROM events
     WHERE room_id = $1 AND kind = $2 AND position < $3 ORDER BY position DESC LIMIT $4";

/// A page of a room's events after a position, oldest first.
pub(crate) const EVENTS_AFTER: &str = "SELECT id, room_id, kind, frame, created_at FROM events
     WHERE room_id = $1 AND kind = $2 AND position > $3 ORDER BY position ASC LIMIT $4";

pub(crate) const CURSORS: &str = "SELECT user_id, event_id, moved_at FROM cursors
     WHERE room_id = $1 AND kind = $2 ORDER BY user_id";
