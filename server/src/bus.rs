//! The bus: what carries stored events, live messages, membership changes and closes
//! to the connections that should see them, on every node.
//!
//! The store is the truth; the bus is only a doorbell. An event on the bus carries
//! each recipient's number, and a connection that sees a gap in its numbers fetches
//! what it missed from the store, so a message the bus loses is caught up, never lost.
//! [`LocalBus`] is the in-process one: a single node, nothing to run; the Redis one,
//! for many nodes, is in `cluster`.

use std::sync::Arc;

use relaywire_protocol::{CloseCode, Seq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hub::{Frame, Hub, Origin, Reach};

/// Something every node applies to its own connections. Between nodes it travels as
/// JSON, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BusMessage {
    /// A stored event: each recipient with their number, and the frame without `seq`.
    Event {
        /// The recipients.
        recipients: Vec<(String, Seq)>,
        /// The frame.
        frame: Arc<str>,
        /// The connection on this node whose message stored it, when its copy answers
        /// that message; it never travels between nodes.
        #[serde(skip)]
        origin: Option<Origin>,
    },
    /// A live frame for every connection of these users.
    ToUsers {
        /// The users.
        users: Vec<String>,
        /// The frame.
        frame: Arc<str>,
    },
    /// A live frame for the online members of a room.
    ToRoom {
        /// The room.
        room: String,
        /// The frame.
        frame: Arc<str>,
        /// A member who does not get it (its sender).
        except: Option<String>,
    },
    /// A live frame for every connection.
    Broadcast {
        /// The frame.
        frame: Arc<str>,
    },
    /// A user joined a room: their connections start receiving it.
    Joined {
        /// The user.
        user: String,
        /// The room.
        room: String,
    },
    /// A user left a room.
    Left {
        /// The user.
        user: String,
        /// The room.
        room: String,
    },
    /// Every connection of a user closes with this code.
    CloseUser {
        /// The user.
        user: String,
        /// The close code.
        #[serde(with = "close_code_number")]
        code: CloseCode,
    },
    /// A user came online or went offline in the whole cluster: the online members
    /// of their rooms are told.
    Presence {
        /// The user.
        user: String,
        /// Online or not.
        online: bool,
        /// Their rooms, whose online members are told.
        rooms: Vec<String>,
        /// Rooms whose members knew already (the user's other rooms, when they joined
        /// one): they are not told again.
        already: Vec<String>,
    },
    /// Every connection checks the store for events it has not had: the bus may have
    /// lost some.
    CatchUp,
}

/// A close code as its number on the wire between nodes.
mod close_code_number {
    use super::*;

    pub(super) fn serialize<S: Serializer>(code: &CloseCode, to: S) -> Result<S::Ok, S::Error> {
        code.code().serialize(to)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<CloseCode, D::Error> {
        u16::deserialize(from).map(CloseCode::from)
    }
}

/// A bus backend.
pub trait Bus: Send + Sync + 'static {
    /// Hands a message to every node (this one included); returns how far it got on
    /// this node.
    fn send(&self, message: BusMessage) -> Reach;
}

/// The in-process bus: messages go straight to this node's connections.
#[derive(Debug, Clone)]
pub(crate) struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

fn frame(text: &str) -> Frame {
    Frame::from(text.to_owned())
}

/// Applies a bus message to this node's hub: what every bus backend does on receipt.
pub(crate) fn apply(hub: &Hub, message: BusMessage) -> Reach {
    match message {
        BusMessage::Event {
            recipients,
            frame,
            origin,
        } => hub.deliver_event(&recipients, &frame, origin.as_ref()),
        BusMessage::ToUsers { users, frame: text } => hub.send_to_users(&users, &frame(&text)),
        BusMessage::ToRoom {
            room,
            frame: text,
            except,
        } => hub.send_to_room(&room, &frame(&text), except.as_deref()),
        BusMessage::Broadcast { frame: text } => hub.broadcast(&frame(&text)),
        BusMessage::Joined { user, room } => {
            hub.joined_room(&user, &room);
            Reach::default()
        }
        BusMessage::Left { user, room } => {
            hub.left_room(&user, &room);
            Reach::default()
        }
        BusMessage::CloseUser { user, code } => Reach {
            users: 0,
            connections: hub.close_user(&user, code),
        },
        BusMessage::Presence {
            user,
            online,
            rooms,
            already,
        } => {
            hub.deliver_presence(&user, online, &rooms, &already);
            Reach::default()
        }
        BusMessage::CatchUp => {
            hub.catch_up_all();
            Reach::default()
        }
    }
}

impl Bus for LocalBus {
    fn send(&self, message: BusMessage) -> Reach {
        apply(&self.hub, message)
    }
}
