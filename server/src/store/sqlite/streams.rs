//! Every user's numbered stream in SQLite, kept as runs rather than a row per delivery.
//!
//! A run says: the user's numbers `first_seq..=last_seq` are, in order, the events a
//! room's fan-outs stored from one position to another (or one event alone, for an
//! event sent to named users). A row per member and event (an insert at 200 places of
//! a B-tree keyed by user, splitting pages and writing each to the WAL) cost 6–7 µs per
//! delivery at SQL level with the bench's 200-member room.
//!
//! A member's open run (kept in their `heads` row) is live: it holds every fan-out of
//! its room from the one it started with, which the room counts (`rooms.fanouts`), so
//! the member's number for the room's fan-out number `n` is `seq + n - run_base`. A
//! fan-out therefore writes the room's count and reads its members' numbers, and writes
//! nothing per member; the store thread keeps what it read ([`LIVE_ROOMS`]), so while
//! no run or membership changes, the next fan-out reads nothing per member either. In
//! `cargo xtask bench`'s fan-out the store thread's CPU per delivery went from 8.8 µs
//! (a row each) to 1.9 (an `UPDATE` of every member's head per fan-out), 1.5 (live
//! runs) and 0.9–1.2 (numbered from the store thread's copy).
//!
//! Whatever would break that holds a run must file it in `runs` first: leaving the room
//! ([`leave_room`]), an event of another room or one sent to the member alone, or the
//! run reaching [`MAX_RUN`] events. Replay reads a run's events by the room's fan-out
//! index, so the numbers are the same ones the fan-out gave.
//!
//! PostgreSQL keeps a row per delivery (`inbox`) and a head updated per delivery: the
//! writes per member that live runs spare SQLite.

use std::cell::RefCell;
use std::collections::HashMap;

use relaywire_protocol::Seq;
use rusqlite::{Connection, OptionalExtension, params};

use super::{StoreError, StoreResult, backend, count, seq_of};
use crate::store::with_seq;

/// The longest run: replay from the middle of one skips at most this many index
/// entries to reach its place.
pub(super) const MAX_RUN: i64 = 1024;

/// [`sql::INSERT_EVENT`](crate::store::sql::INSERT_EVENT), with the room whose members
/// the event fans out to (`?7`; `NULL` for an event sent to named users).
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO events (id, room_id, kind, sender_id, frame, created_at, audience_room)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING
     RETURNING position";

/// How many fan-outs the room has stored.
const ROOM_FANOUTS: &str = "SELECT fanouts FROM rooms WHERE id = ?1";

/// Counts the fan-out at `?2` as the room's newest.
const COUNT_FANOUT: &str = "UPDATE rooms SET fanouts = fanouts + 1, last_fanout = ?2 WHERE id = ?1";

/// Every member with the number the room's fan-out number `?2` takes in their stream,
/// and whether their open run takes it (a live run of this room, not yet
/// [`MAX_RUN`] long).
const MEMBER_NUMBERS: &str = "SELECT m.user_id, h.seq + ?2 - h.run_base,
         coalesce(h.run_room = ?1 AND ?2 - h.run_base <= ?3, 0), h.run_base
     FROM members m LEFT JOIN heads h ON h.user_id = m.user_id
     WHERE m.room_id = ?1";

/// The newest number of a head `h` whose live run's room is `r` (joined).
macro_rules! newest {
    () => {
        "CASE WHEN h.run_room IS NULL THEN h.seq ELSE h.seq + r.fanouts - h.run_base END"
    };
}

/// The position of the last event of the open run of a head `h` (room `r` joined).
macro_rules! last_position {
    () => {
        "CASE WHEN h.run_room IS NULL THEN h.run_to ELSE r.last_fanout END"
    };
}

/// Files the open run of every member of `?1` whose run does not take its fan-out
/// number `?2`.
const CLOSE_RUNS: &str = concat!(
    "INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
     SELECT h.user_id, ",
    newest!(),
    ", h.run_seq, h.run_room, h.run_from, ",
    last_position!(),
    "
     FROM members m JOIN heads h ON h.user_id = m.user_id
         LEFT JOIN rooms r ON r.id = h.run_room
     WHERE m.room_id = ?1 AND h.run_seq IS NOT NULL
       AND NOT coalesce(h.run_room = ?1 AND ?2 - h.run_base <= ?3, 0)"
);

/// The newest number of the row an upsert into `heads` conflicts with.
macro_rules! newest_of_conflicting {
    () => {
        "CASE WHEN heads.run_room IS NULL THEN heads.seq
              ELSE heads.seq + (SELECT fanouts FROM rooms WHERE id = heads.run_room)
                   - heads.run_base END"
    };
}

/// Starts a live run of `?1` at its fan-out number `?3` (position `?2`) for every
/// member whose run does not take it.
const START_RUNS: &str = concat!(
    "INSERT INTO heads (user_id, seq, run_seq, run_room, run_from, run_to, run_base)
     SELECT user_id, 0, 1, ?1, ?2, NULL, ?3 - 1 FROM members WHERE room_id = ?1
         ORDER BY user_id
     ON CONFLICT (user_id) DO UPDATE SET
         seq = ",
    newest_of_conflicting!(),
    ",
         run_seq = ",
    newest_of_conflicting!(),
    " + 1,
         run_room = ?1, run_from = ?2, run_to = NULL, run_base = ?3 - 1
     WHERE NOT coalesce(heads.run_room = ?1 AND ?3 - heads.run_base <= ?4, 0)"
);

/// Files `?1`'s open run, if any.
const CLOSE_RUN: &str = concat!(
    "INSERT INTO runs (user_id, last_seq, first_seq, room_id, first_position, last_position)
     SELECT h.user_id, ",
    newest!(),
    ", h.run_seq, h.run_room, h.run_from, ",
    last_position!(),
    "
     FROM heads h LEFT JOIN rooms r ON r.id = h.run_room
     WHERE h.user_id = ?1 AND h.run_seq IS NOT NULL"
);

/// A run of the one event at `?2`, after `?1`'s newest number.
const START_SINGLE_RUN: &str = concat!(
    "INSERT INTO heads (user_id, seq, run_seq, run_room, run_from, run_to, run_base)
     VALUES (?1, 1, 1, NULL, ?2, ?2, NULL)
     ON CONFLICT (user_id) DO UPDATE SET
         seq = ",
    newest_of_conflicting!(),
    " + 1,
         run_seq = ",
    newest_of_conflicting!(),
    " + 1,
         run_room = NULL, run_from = excluded.run_from, run_to = excluded.run_to,
         run_base = NULL
     RETURNING seq"
);

/// Ends `?1`'s live run of `?2` (they left it): they have no open run after.
const END_LIVE_RUN: &str = "UPDATE heads
     SET seq = seq + (SELECT fanouts FROM rooms WHERE id = ?2) - run_base,
         run_seq = NULL, run_room = NULL, run_from = NULL, run_to = NULL, run_base = NULL
     WHERE user_id = ?1 AND run_room = ?2";

/// The user's newest number.
pub(super) const HEAD: &str = concat!(
    "SELECT ",
    newest!(),
    " FROM heads h LEFT JOIN rooms r ON r.id = h.run_room WHERE h.user_id = ?1"
);

/// The user's filed runs holding a number in (`?2`, `?3`], oldest first.
const RUNS: &str = "SELECT first_seq, last_seq, room_id, first_position, last_position
     FROM runs WHERE user_id = ?1 AND last_seq > ?2 AND first_seq <= ?3
     ORDER BY last_seq LIMIT ?4";

const OPEN_RUN: &str = concat!(
    "SELECT h.run_seq, ",
    newest!(),
    ", h.run_room, h.run_from, ",
    last_position!(),
    " FROM heads h LEFT JOIN rooms r ON r.id = h.run_room
     WHERE h.user_id = ?1 AND h.run_seq IS NOT NULL"
);

/// Part of a room run's events, by the room's fan-out index.
const RUN_EVENTS: &str = "SELECT frame FROM events
     WHERE audience_room = ?1 AND position >= ?2 AND position <= ?3
     ORDER BY position LIMIT ?4 OFFSET ?5";

const EVENT_FRAME: &str = "SELECT frame FROM events WHERE position = ?1";

/// A room whose members all hold a live run of it, as its newest fan-out left them.
struct LiveRoom {
    /// The room's fan-out count after the fan-out that left it so.
    fanouts: i64,
    /// Each member (in order), the offset of their numbers from the room's fan-out
    /// numbers (`seq - run_base`) and where their run starts (`run_base`).
    members: Vec<(String, i64, i64)>,
}

/// Members [`LIVE_ROOMS`] holds at most, over all its rooms: a room that would take it
/// past this starts the cache over (a few MiB at most).
const MAX_LIVE_MEMBERS: usize = 65_536;

/// Rooms whose members' numbers the store thread holds, and how many members that is.
#[derive(Default)]
struct LiveRooms {
    rooms: HashMap<String, LiveRoom>,
    members: usize,
}

thread_local! {
    /// The store thread's copy of what [`MEMBER_NUMBERS`] read for recent rooms: while
    /// nothing changes a member's run or the room's members, the next fan-out numbers
    /// them from here instead of reading every member's head, which was half of the
    /// store thread's CPU in `cargo xtask bench`'s fan-out. It lives with the one thread
    /// that writes the database; whatever else changes a run or a membership
    /// ([`forget_live_rooms`]) clears it, as does a batch that does not commit.
    static LIVE_ROOMS: RefCell<LiveRooms> = RefCell::default();
}

/// Clears [`LIVE_ROOMS`]: a run or a membership changed, or a batch did not commit.
pub(super) fn forget_live_rooms() {
    LIVE_ROOMS.take();
}

/// Numbers the fan-out stored at `position` in the stream of every member of
/// `room_id`; the event's `audience_room` is `room_id` already.
pub(super) fn number_room(
    db: &Connection,
    room_id: &str,
    position: i64,
) -> StoreResult<Vec<(String, Seq)>> {
    let Some(fanouts) = db
        .prepare_cached(ROOM_FANOUTS)
        .map_err(backend)?
        .query_row([room_id], |row| row.get::<_, i64>(0))
        .optional()
        .map_err(backend)?
    else {
        // No such room, so no members: the event is stored for no one.
        return Ok(Vec::new());
    };
    let this = fanouts + 1;
    // From the store thread's copy while it still holds (nothing changed since the
    // room's last fan-out, no run at its longest); else read, and kept for the next.
    let cached = LIVE_ROOMS.with_borrow(|live| {
        let room = live.rooms.get(room_id).filter(|room| {
            room.fanouts == fanouts
                && room
                    .members
                    .iter()
                    .all(|(_, _, base)| this - base <= MAX_RUN)
        })?;
        Some(recipients(&room.members, this))
    });
    if let Some(recipients) = cached {
        let recipients = recipients?;
        count_fanout(db, room_id, position)?;
        LIVE_ROOMS.with_borrow_mut(|live| {
            if let Some(room) = live.rooms.get_mut(room_id) {
                room.fanouts = this;
            }
        });
        return Ok(recipients);
    }
    let members: Vec<_> = read_numbers(db, room_id, position, this)?
        .into_iter()
        .map(|(user_id, seq, base)| (user_id, seq - this, base))
        .collect();
    count_fanout(db, room_id, position)?;
    let recipients = recipients(&members, this)?;
    LIVE_ROOMS.with_borrow_mut(|live| {
        if let Some(old) = live.rooms.remove(room_id) {
            live.members -= old.members.len();
        }
        if live.members + members.len() > MAX_LIVE_MEMBERS {
            *live = LiveRooms::default();
        }
        live.members += members.len();
        live.rooms.insert(
            room_id.to_owned(),
            LiveRoom {
                fanouts: this,
                members,
            },
        );
    });
    Ok(recipients)
}

/// Each member's number for the room's fan-out number `this`, from their offsets.
fn recipients(members: &[(String, i64, i64)], this: i64) -> StoreResult<Vec<(String, Seq)>> {
    members
        .iter()
        .map(|(user_id, offset, _)| Ok((user_id.clone(), seq_of(offset + this)?)))
        .collect()
}

/// Counts the room's fan-out at `position` ([`COUNT_FANOUT`]).
fn count_fanout(db: &Connection, room_id: &str, position: i64) -> StoreResult<()> {
    db.prepare_cached(COUNT_FANOUT)
        .map_err(backend)?
        .execute(params![room_id, position])
        .map_err(backend)?;
    Ok(())
}

/// Every member's number for the room's fan-out number `this` and where their run
/// starts, by user: runs that cannot take it are filed and new ones started first.
fn read_numbers(
    db: &Connection,
    room_id: &str,
    position: i64,
    this: i64,
) -> StoreResult<Vec<(String, i64, i64)>> {
    let mut numbered = member_numbers(db, room_id, this)?;
    if numbered.iter().any(|member| !member.taken) {
        forget_live_rooms();
        db.prepare_cached(CLOSE_RUNS)
            .map_err(backend)?
            .execute(params![room_id, this, MAX_RUN])
            .map_err(backend)?;
        db.prepare_cached(START_RUNS)
            .map_err(backend)?
            .execute(params![room_id, position, this, MAX_RUN])
            .map_err(backend)?;
        numbered = member_numbers(db, room_id, this)?;
    }
    let mut numbered = numbered
        .into_iter()
        .map(|member| match (member.taken, member.run_base) {
            (true, Some(base)) => Ok((member.user_id, member.seq, base)),
            _ => Err(StoreError::Backend(format!(
                "{} has no run for the fan-out of {room_id} at {position}",
                member.user_id
            ))),
        })
        .collect::<StoreResult<Vec<_>>>()?;
    numbered.sort_unstable();
    Ok(numbered)
}

/// A row of [`MEMBER_NUMBERS`].
struct MemberNumber {
    user_id: String,
    seq: i64,
    /// Their open run takes the fan-out.
    taken: bool,
    run_base: Option<i64>,
}

/// [`MEMBER_NUMBERS`] for the room's fan-out number `this`.
fn member_numbers(db: &Connection, room_id: &str, this: i64) -> StoreResult<Vec<MemberNumber>> {
    db.prepare_cached(MEMBER_NUMBERS)
        .map_err(backend)?
        .query_map(params![room_id, this, MAX_RUN], |row| {
            Ok(MemberNumber {
                user_id: row.get(0)?,
                seq: row.get::<_, Option<i64>>(1)?.unwrap_or(0),
                taken: row.get(2)?,
                run_base: row.get(3)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// Gives the next number in `user_id`'s stream to the event at `position` alone.
pub(super) fn number_user(db: &Connection, user_id: &str, position: i64) -> StoreResult<Seq> {
    forget_live_rooms();
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

/// Ends `user_id`'s live run of `room_id`, filing it, before they leave the room: a
/// live run holds every fan-out of its room.
pub(super) fn leave_room(db: &Connection, room_id: &str, user_id: &str) -> StoreResult<()> {
    forget_live_rooms();
    let live: bool = db
        .prepare_cached("SELECT 1 FROM heads WHERE user_id = ?1 AND run_room = ?2")
        .map_err(backend)?
        .query_row(params![user_id, room_id], |_| Ok(true))
        .optional()
        .map_err(backend)?
        .unwrap_or(false);
    if live {
        db.prepare_cached(CLOSE_RUN)
            .map_err(backend)?
            .execute([user_id])
            .map_err(backend)?;
        db.prepare_cached(END_LIVE_RUN)
            .map_err(backend)?
            .execute(params![user_id, room_id])
            .map_err(backend)?;
    }
    Ok(())
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
