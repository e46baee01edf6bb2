//! What each message type is: how a client delivers the messages it sends, and which
//! server messages are numbered events.
//!
//! A catalogue line names its class (`durable`, `request`, `ephemeral`; `numbered`,
//! `live`), and [`catalogue!`](crate::catalogue) turns it into a [`ClientPolicy`] or a
//! [`ServerPolicy`]. The clients' connection core and the server act on these values;
//! no driver decides anything per message type on its own.
//!
//! ```
//! use relaywire_protocol::policy::{ClientPolicy, Delivery};
//!
//! let typing = ClientPolicy::ephemeral().key("chatId").active("isTyping").checked();
//! assert_eq!(typing.delivery, Delivery::Ephemeral);
//! assert!(!typing.delivery.is_tracked());
//! assert!(ClientPolicy::durable().delivery.is_deduplicated());
//! ```

/// How a client delivers a message of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Stored exactly once: the message gets an id, waits in the client's outbox until
    /// its `ack` or `error`, is sent again after a reconnect, and the server
    /// deduplicates it by (user, id), across connections and restarts.
    Durable,
    /// Answered by `ack` or `error`: the message gets an id and waits until answered; it
    /// is sent again after a reconnect, so its effect must be idempotent (joins,
    /// leaves, read positions). The server does not deduplicate it.
    Request,
    /// Dropped when not connected, never queued, no id: typing indicators, pings.
    Ephemeral,
}

impl Delivery {
    /// The class as the catalogue line and the TypeScript descriptor spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Delivery::Durable => "durable",
            Delivery::Request => "request",
            Delivery::Ephemeral => "ephemeral",
        }
    }

    /// Parses [`Delivery::as_str`].
    pub fn from_name(name: &str) -> Option<Delivery> {
        [Delivery::Durable, Delivery::Request, Delivery::Ephemeral]
            .into_iter()
            .find(|delivery| delivery.as_str() == name)
    }

    /// Whether messages of this class get an id and wait for their answer.
    pub const fn is_tracked(self) -> bool {
        !matches!(self, Delivery::Ephemeral)
    }

    /// Whether the server stores the answer under (user, id) and gives it again for a
    /// message sent twice.
    pub const fn is_deduplicated(self) -> bool {
        matches!(self, Delivery::Durable)
    }
}

/// An ephemeral state with expiry, like a typing indicator: per value of `key`, the
/// latest message wins; while its `active` field is `true` the client repeats it before
/// the server's state lifetime runs out, and sends it with `active: false` by itself
/// when the application stops renewing it.
///
/// `S` is `&'static str` in a catalogue and `String` in a [`Descriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateFields<S = &'static str> {
    /// The payload field (a string) that names the state, e.g. `chatId`.
    pub key: S,
    /// The payload field (a boolean) that says whether the state is on, e.g. `isTyping`.
    pub active: S,
}

/// Whether a room changes for the sender once the server acknowledges a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomChange {
    /// The sender joined the room.
    Join,
    /// The sender left the room.
    Leave,
}

/// The room a message's acknowledgement changes: the room id is the string payload
/// field `field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomEffect<S = &'static str> {
    /// Joined or left.
    pub change: RoomChange,
    /// The payload field naming the room, e.g. `chatId`.
    pub field: S,
}

/// Everything a client acts on for a message type it sends.
///
/// `S` is `&'static str` in a catalogue and `String` in a [`Descriptor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientPolicy<S = &'static str> {
    /// How it is delivered.
    pub delivery: Delivery,
    /// For ephemeral states: the fields that key and switch it.
    pub state: Option<StateFields<S>>,
    /// The room its acknowledgement joins or leaves.
    pub room: Option<RoomEffect<S>>,
}

impl ClientPolicy {
    const fn of(delivery: Delivery) -> Self {
        Self {
            delivery,
            state: None,
            room: None,
        }
    }

    /// [`Delivery::Durable`].
    pub const fn durable() -> Self {
        Self::of(Delivery::Durable)
    }

    /// [`Delivery::Request`].
    pub const fn request() -> Self {
        Self::of(Delivery::Request)
    }

    /// [`Delivery::Ephemeral`].
    pub const fn ephemeral() -> Self {
        Self::of(Delivery::Ephemeral)
    }

    /// An ephemeral state named by the string payload field `key`.
    pub const fn key(mut self, key: &'static str) -> Self {
        let active = match self.state {
            Some(state) => state.active,
            None => "",
        };
        self.state = Some(StateFields { key, active });
        self
    }

    /// An ephemeral state switched by the boolean payload field `active`.
    pub const fn active(mut self, active: &'static str) -> Self {
        let key = match self.state {
            Some(state) => state.key,
            None => "",
        };
        self.state = Some(StateFields { key, active });
        self
    }

    /// Its acknowledgement means the sender joined the room named by `field`.
    pub const fn joins(mut self, field: &'static str) -> Self {
        self.room = Some(RoomEffect {
            change: RoomChange::Join,
            field,
        });
        self
    }

    /// Its acknowledgement means the sender left the room named by `field`.
    pub const fn leaves(mut self, field: &'static str) -> Self {
        self.room = Some(RoomEffect {
            change: RoomChange::Leave,
            field,
        });
        self
    }

    /// The policy, after checking (at compile time, in a catalogue) that its options
    /// fit its class: a state needs both fields and is ephemeral; a room change is
    /// acknowledged, so it cannot be ephemeral.
    pub const fn checked(self) -> Self {
        if let Some(state) = self.state {
            assert!(
                !state.key.is_empty() && !state.active.is_empty(),
                "an ephemeral state needs both `key` and `active`"
            );
            assert!(
                matches!(self.delivery, Delivery::Ephemeral),
                "`key` and `active` are options of `ephemeral` messages"
            );
        }
        assert!(
            !(self.room.is_some() && matches!(self.delivery, Delivery::Ephemeral)),
            "`joins` and `leaves` need an acknowledged class: `request` or `durable`"
        );
        self
    }

    /// The same policy with owned strings, as a [`Descriptor`] holds it.
    pub fn to_owned_policy(&self) -> ClientPolicy<String> {
        ClientPolicy {
            delivery: self.delivery,
            state: self.state.map(|state| StateFields {
                key: state.key.to_owned(),
                active: state.active.to_owned(),
            }),
            room: self.room.map(|room| RoomEffect {
                change: room.change,
                field: room.field.to_owned(),
            }),
        }
    }
}

impl<S: AsRef<str>> ClientPolicy<S> {
    /// Whether its options fit its class: a state's fields are named and on an
    /// ephemeral type; a room change is on an acknowledged one.
    pub fn is_consistent(&self) -> bool {
        let state_fits = self.state.as_ref().is_none_or(|state| {
            self.delivery == Delivery::Ephemeral
                && !state.key.as_ref().is_empty()
                && !state.active.as_ref().is_empty()
        });
        let room_fits = self
            .room
            .as_ref()
            .is_none_or(|room| self.delivery.is_tracked() && !room.field.as_ref().is_empty());
        state_fits && room_fits
    }
}

/// Everything a client acts on for a message type it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerPolicy {
    /// A stored event with a per-user `seq`: replayed after a reconnect, dropped by a
    /// client that saw it already.
    pub numbered: bool,
}

impl ServerPolicy {
    /// A numbered, stored event.
    pub const fn numbered() -> Self {
        Self { numbered: true }
    }

    /// A message delivered live only.
    pub const fn live() -> Self {
        Self { numbered: false }
    }
}

/// Every message type of a protocol and its policy: what a client must know about the
/// messages of a catalogue it was not compiled with. [`Protocol::descriptor`](crate::Protocol::descriptor)
/// builds it from a catalogue; the browser client reads it from the JavaScript
/// descriptor the generated TypeScript exports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Descriptor {
    /// Client message types and their policies, control types included.
    pub client: Vec<(String, ClientPolicy<String>)>,
    /// Server message types and their policies, control types included.
    pub server: Vec<(String, ServerPolicy)>,
}

impl Descriptor {
    /// The policy of the client message type `type_name`.
    pub fn client_policy(&self, type_name: &str) -> Option<&ClientPolicy<String>> {
        self.client
            .iter()
            .find(|(name, _)| name == type_name)
            .map(|(_, policy)| policy)
    }

    /// The policy of the server message type `type_name`, `None` when it is unknown.
    pub fn server_policy(&self, type_name: &str) -> Option<ServerPolicy> {
        self.server
            .iter()
            .find(|(name, _)| name == type_name)
            .map(|(_, policy)| *policy)
    }
}
