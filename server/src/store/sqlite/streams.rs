//! Every user's numbered stream in SQLite, kept as runs rather than a row per delivery.
//!
//! A run says: the user's numbers `first_seq..=last_seq` are, in order, the events a
//! room's fan-outs stored from one position to another (or one event alone, for an
//! event sent to named users). While a member receives every fan-out of one room and
//! nothing else, their open run (kept in their `heads` row) grows by one with each:
//! a fan-out to a room numbers all of its members with one `UPDATE` of their heads and
//! writes nothing per member besides. A row per member and event (an insert at 200
//! places of a B-tree keyed by user, splitting pages and writing each to the WAL) cost
//! 6–7 µs per delivery at SQL level with the bench's 200-member room, the runs 1.2–1.6;
//! in `cargo xtask bench`'s fan-out the store thread's CPU per delivery went from 8.8 µs
//! to under 3.
//!
//! A member's run can only grow with the event that follows, in its room, the last
//! one the run holds: a member who missed a fan-out (away between a leave and a
//! rejoin), got an event of another room or one sent to them alone, or whose run is
//! [`MAX_RUN`] long, gets a new run instead and the old one is filed in `runs`.
//! Replay reads a run's events by the room's fan-out index, so the numbers are the
//! same ones the fan-out gave.
//!
//! PostgreSQL keeps a row per delivery (`inbox`): there, runs measured about a fifth
//! faster with `pgbench` on the bench's room, since most of its cost is updating each
//! member's head (a new row version each), which runs keep.

use relaywire_protocol::Seq;
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, StoreResult, backend, count, seq_of};
use crate::store::with_seq;

/// The longest run: replay from the middle of one skips at most this many index
/// entries to reach its place.
pub(super) const MAX_RUN: i64 = 1024;

/// [`sql::INSERT_EVENT`](crate::store::sql::INSERT_EVENT), with the room whose members
/// the event fans out to (`$7`; `NULL` for an event sent to named users).
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (id, room_id, kind, sender_id, frame, created_at, audience_room)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING
     RETURNING position";

/// The position of the room's newest fan-out before `$2`.
const PREVIOUS_FANOUT: &str =
    "SELECT max(position) FROM events WHERE audience_room = $1 AND position < $2";

/// Members whose open run ends at the room's previous fan-out take the next number and
/// the new event into it.
const EXTEND_RUNS: &str = "UPDATE heads SET seq = seq + 1, run_to = $1
     WHERE user_id IN (SELECT user_id FROM members WHERE room_id = $2)
       AND run_room = $2 AND run_to = $3 AND seq - run_seq + 1 < $4
     RETURNING user_id, seq";

const MEMBER_COUNT: &str = "SELECT count(*) FROM members WHERE room_id = $1";

/// Files the open run of every member the fan-out at `$2` did not extend.
const CLOSE_RUNS: &str =
    "INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
     SELECT h.user_id, h.seq, h.run_seq, h.run_room, h.run_from, h.run_to
     FROM members m JOIN heads h ON h.user_id = m.user_id
     WHERE m.room_id = $1 AND h.run_to <> $2";

/// Starts a run at the fan-out at `$2` for every member it did not extend.
const START_RUNS: &str = "INSERT INTO heads (user_id, seq, run_seq, run_room, run_from, run_to)
     SELECT user_id, 1, 1, $1, $2, $2 FROM members WHERE room_id = $1 ORDER BY user_id
     ON CONFLICT (user_id) DO UPDATE SET
         seq = heads.seq + 1, run_seq = heads.seq + 1, run_room = excluded.run_room,
         run_from = excluded.run_from, run_to = excluded.run_to
     WHERE heads.run_to IS NOT excluded.run_to
     RETURNING user_id, seq";

const CLOSE_RUN: &str =
    "INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
     SELECT user_id, seq, run_seq, run_room, run_from, run_to FROM heads
     WHERE user_id = $1 AND run_to IS NOT NULL";

/// A run of the one event at `$2`.
const START_SINGLE_RUN: &str =
    "INSERT INTO heads (user_id, seq, run_seq, run_room, run_from, run_to)
     VALUES ($1, 1, 1, NULL, $2, $2)
     ON CONFLICT (user_id) DO UPDATE SET
         seq = heads.seq + 1, run_seq = heads.seq + 1, run_room = NULL,
         run_from = excluded.run_from, run_to = excluded.run_to
     RETURNING seq";

/// The user's filed runs holding a number in (`$2`, `$3`], oldest first.
const RUNS: &str = "SELECT first_seq, last_seq, room_id, first_position, last_position
     FROM runs WHERE user_id = $1 AND last_seq > $2 AND first_seq <= $3
     ORDER BY last_seq LIMIT $4";

const OPEN_RUN: &str = "SELECT run_seq, seq, run_room, run_from, run_to
     FROM heads WHERE user_id = $1 AND run_to IS NOT NULL";

/// Part of a room run's events, by the room's fan-out index.
const RUN_EVENTS: &str = "SELECT frame FROM events
     WHERE audience_room = $1 AND position >= $2 AND position <= $3
     ORDER BY position LIMIT $4 OFFSET $5";

const EVENT_FRAME: &str = "SELECT frame FROM events WHERE position = $1";

/// Numbers the fan-out stored at `position` in the stream of every member of
/// `room_id`; the event's `audience_room` is `room_id` already.
pub(super) fn number_room(
    db: &Connection,
    room_id: &str,
    position: i64,
) -> StoreResult<Vec<(String, Seq)>> {
    let previous: Option<i64> = db
        .prepare_cached(PREVIOUS_FANOUT)
        .map_err(backend)?
        .query_row(params![room_id, position], |row| row.get(0))
        .map_err(backend)?;
    let mut numbered = match previous {
        Some(previous) => numbered_rows(
            db,
            EXTEND_RUNS,
            params![position, room_id, previous, MAX_RUN],
        )?,
        None => Vec::new(),
    };
    let members: i64 = db
        .prepare_cached(MEMBER_COUNT)
        .map_err(backend)?
        .query_row([room_id], |row| row.get(0))
        .map_err(backend)?;
    if count(numbered.len()) < members {
        db.prepare_cached(CLOSE_RUNS)
            .map_err(backend)?
            .execute(params![room_id, position])
            .map_err(backend)?;
        numbered.extend(numbered_rows(db, START_RUNS, params![room_id, position])?);
    }
    numbered.sort_unstable();
    Ok(numbered)
}

fn numbered_rows(
    db: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<(String, Seq)>> {
    let rows: Vec<(String, i64)> = db
        .prepare_cached(sql)
        .map_err(backend)?
        .query_map(params, |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    rows.into_iter()
        .map(|(user_id, seq)| Ok((user_id, seq_of(seq)?)))
        .collect()
}

/// Gives the next number in `user_id`'s stream to the event at `position` alone.
pub(super) fn number_user(db: &Connection, user_id: &str, position: i64) -> StoreResult<Seq> {
    db.prepare_cached(CLOSE_RUN)
        .map_err(backend)?
        .execute([user_id])
        .map_err(backend)?;
    let seq: i64 = db
        .prepare_cached(START_SINGLE_RUN)
        .map_err(backend)?
        .query_row(params![user_id, position], |row| row.get(0))
        .map_err(backend)?;
    seq_of(seq)
}

/// A run as stored: numbers `first_seq..=last_seq`, the events of `room`'s fan-outs
/// from `from` to `to`, or the event at `from` when `room` is `None`.
struct Run {
    first_seq: i64,
    last_seq: i64,
    room: Option<String>,
    from: i64,
    to: i64,
}

fn run_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        first_seq: row.get(0)?,
        last_seq: row.get(1)?,
        room: row.get(2)?,
        from: row.get(3)?,
        to: row.get(4)?,
    })
}

/// The user's events numbered after `after` and at most `up_to`, at most `limit`, each
/// frame with its number.
pub(super) fn numbered(
    db: &Connection,
    user_id: &str,
    after: Seq,
    up_to: Option<Seq>,
    limit: usize,
) -> StoreResult<Vec<(Seq, String)>> {
    let after = i64::try_from(after.get()).unwrap_or(i64::MAX);
    let up_to = up_to.map_or(i64::MAX, |seq| i64::try_from(seq.get()).unwrap_or(i64::MAX));
    let mut runs: Vec<Run> = db
        .prepare_cached(RUNS)
        .map_err(backend)?
        .query_map(params![user_id, after, up_to, count(limit)], run_of)
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    let open = db
        .prepare_cached(OPEN_RUN)
        .map_err(backend)?
        .query_row([user_id], run_of)
        .optional()
        .map_err(backend)?;
    runs.extend(open.filter(|run| run.last_seq > after && run.first_seq <= up_to));

    let mut found = Vec::new();
    for run in runs {
        let first = run.first_seq.max(after.saturating_add(1));
        let last = run.last_seq.min(up_to);
        let wanted = (last - first + 1).min(count(limit.saturating_sub(found.len())));
        if wanted <= 0 {
            break;
        }
        let frames: Vec<String> = match &run.room {
            Some(room) => db
                .prepare_cached(RUN_EVENTS)
                .map_err(backend)?
                .query_map(
                    params![room, run.from, run.to, wanted, first - run.first_seq],
                    |row| row.get(0),
                )
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?,
            None => db
                .prepare_cached(EVENT_FRAME)
                .map_err(backend)?
                .query_row([run.from], |row| row.get(0))
                .optional()
                .map_err(backend)?
                .into_iter()
                .collect(),
        };
        // Fewer events than numbers would number the rest wrongly: refuse instead.
        if count(frames.len()) != wanted {
            return Err(StoreError::Backend(format!(
                "the stream of {user_id} lacks events numbered {first} to {}",
                first + wanted - 1
            )));
        }
        for (seq, frame) in (first..).zip(frames) {
            let seq = seq_of(seq)?;
            found.push((seq, with_seq(&frame, seq)));
        }
    }
    Ok(found)
}
