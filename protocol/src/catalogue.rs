//! A protocol's catalogue: the traits the enums of [`catalogue!`](crate::catalogue!) implement, and the
//! macro itself.
//!
//! An application lists its messages once, one line each: the wire type, the Rust
//! variant and payload, and the delivery class. From that line come the enum variant,
//! its serde form, the decoder's dispatch, the validation call, the TypeScript type and
//! the policy the clients and the server act on.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::control::{ClientControl, ServerControl};
use crate::policy::{ClientPolicy, Descriptor, ServerPolicy};
use crate::{
    Ack, Connected, DecodeErrorKind, ErrorPayload, Limits, Pong, PresenceChange, Seq,
    UnknownMessage,
};

/// One side's messages of a protocol: an enum [`catalogue!`](crate::catalogue!) generates.
pub trait Messages:
    Sized
    + Clone
    + fmt::Debug
    + PartialEq
    + Serialize
    + DeserializeOwned
    + crate::WireMessage
    + Send
    + Sync
    + 'static
{
    /// Every wire `type`, control types first, then the catalogue's in its order.
    const TYPES: &'static [&'static str];
    /// The Rust name of each type's payload, in the order of [`Messages::TYPES`].
    const PAYLOAD_TYPES: &'static [&'static str];

    /// The wire `type` of this message, e.g. `"chat:message"`.
    fn type_name(&self) -> &str;

    /// Decodes `payload` as the payload of `type_name`; `None` when the type is not one
    /// of [`Messages::TYPES`].
    #[doc(hidden)]
    fn decode_payload<'de, D: serde::Deserializer<'de>>(
        type_name: &str,
        payload: D,
    ) -> Option<Result<Self, D::Error>>;

    /// The TypeScript shape of each type's payload, in the order of [`Messages::TYPES`].
    #[cfg(feature = "typescript")]
    #[doc(hidden)]
    fn payload_shapes(config: &ts_rs::Config) -> Vec<String> {
        let _ = config;
        Vec::new()
    }
}

/// The messages clients send.
pub trait ClientMessages: Messages {
    /// How each type is delivered, in the order of [`Messages::TYPES`].
    const POLICIES: &'static [ClientPolicy];

    /// Checks what serde cannot: each payload's [`Validate`](crate::Validate) rules.
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind>;

    /// The control message this is, if it is one.
    fn control(&self) -> Option<ClientControl<'_>>;

    /// How messages of this value's type are delivered.
    fn policy(&self) -> &'static ClientPolicy {
        let index = Self::TYPES
            .iter()
            .position(|name| *name == self.type_name())
            .unwrap_or(0);
        &Self::POLICIES[index]
    }
}

/// The messages servers send.
pub trait ServerMessages:
    Messages + From<Connected> + From<Ack> + From<ErrorPayload> + From<Pong> + From<PresenceChange>
{
    /// Which types are numbered events, in the order of [`Messages::TYPES`].
    const POLICIES: &'static [ServerPolicy];

    /// The `seq` of a numbered event, when it carries one.
    fn seq(&self) -> Option<Seq>;

    /// The control message this is, if it is one.
    fn control(&self) -> Option<ServerControl<'_>>;

    /// A message of a type this version does not know.
    fn unknown(message: UnknownMessage) -> Self;

    /// The message as received, when its type was unknown.
    fn as_unknown(&self) -> Option<&UnknownMessage>;
}

/// A protocol: its client and server messages. [`catalogue!`](crate::catalogue!) defines one.
pub trait Protocol: Send + Sync + 'static {
    /// What clients send.
    type Client: ClientMessages;
    /// What servers send.
    type Server: ServerMessages;
    /// The protocol's Rust name, e.g. `ChatProtocol`; the TypeScript uses it too.
    const NAME: &'static str;

    /// Every type and its policy, as a client needs them.
    fn descriptor() -> Descriptor {
        Descriptor {
            client: Self::Client::TYPES
                .iter()
                .zip(<Self::Client as ClientMessages>::POLICIES)
                .map(|(name, policy)| ((*name).to_owned(), policy.to_owned_policy()))
                .collect(),
            server: Self::Server::TYPES
                .iter()
                .zip(<Self::Server as ServerMessages>::POLICIES)
                .map(|(name, policy)| ((*name).to_owned(), *policy))
                .collect(),
        }
    }
}

/// A numbered event's payload: it carries the event's `seq`, which the server assigns
/// per recipient. Its `seq` is the payload's last field, serialized only when set.
///
/// [`numbered!`](crate::numbered) implements it for payloads whose field
/// `seq: Option<Seq>` holds the number, which is how every payload is written.
pub trait Numbered {
    /// The event number, once assigned.
    fn seq(&self) -> Option<Seq>;
    /// Assigns the event number.
    fn set_seq(&mut self, seq: Option<Seq>);
}

/// Implements [`Numbered`] for each payload type named, by its field
/// `seq: Option<Seq>`: `numbered!(Shipped, Refunded);`.
#[macro_export]
macro_rules! numbered {
    ($($payload:ty),+ $(,)?) => {
        $(
            impl $crate::Numbered for $payload {
                fn seq(&self) -> ::core::option::Option<$crate::Seq> {
                    self.seq
                }

                fn set_seq(&mut self, seq: ::core::option::Option<$crate::Seq>) {
                    self.seq = seq;
                }
            }
        )+
    };
}

/// Defines a protocol: a unit struct implementing [`Protocol`] and its client and server
/// message enums, each line `"wire type" => Variant(Payload) as class`.
///
/// Client classes are `durable`, `request` and `ephemeral` (see
/// [`Delivery`](crate::policy::Delivery)); options follow in braces: `key` and `active`
/// make an ephemeral message a state with expiry, `joins` and `leaves` name the room
/// field an acknowledgement joins or leaves. Server classes are `numbered` (the payload
/// implements [`Numbered`]) and `live`. Every client payload implements
/// [`Validate`](crate::Validate).
///
/// The control messages are added to every catalogue: `auth` and `ping` to the client
/// enum, `connected`, `ack`, `error`, `pong` and `user:online` to the server enum, which
/// also gets `Unknown` for types a newer server sends. Their variant names (`Auth`,
/// `Ping`, `Connected`, `Ack`, `Error`, `Pong`, `UserOnline`, `Unknown`) and wire types
/// are taken; a repeated wire type fails to compile.
///
/// The enums need `serde` in the defining crate. With a `typescript` feature that turns
/// on `ts-rs` and `relaywire-protocol/typescript`, they derive `ts_rs::TS` and
/// `typescript::Bindings` writes the protocol's TypeScript.
///
/// ```
/// use relaywire_protocol::{catalogue, check_id, DecodeErrorKind, Limits, Numbered, Seq, Validate};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// #[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
/// #[serde(rename_all = "camelCase")]
/// pub struct Order { pub order_id: String }
///
/// impl Validate for Order {
///     fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
///         check_id("orderId", &self.order_id, limits)
///     }
/// }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// #[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
/// #[serde(rename_all = "camelCase")]
/// pub struct Shipped {
///     pub order_id: String,
///     #[serde(default, skip_serializing_if = "Option::is_none")]
///     pub seq: Option<Seq>,
/// }
///
/// relaywire_protocol::numbered!(Shipped);
///
/// catalogue! {
///     /// A shop's messages.
///     pub protocol ShopProtocol;
///
///     /// What a shop client sends.
///     pub client ShopClient {
///         /// Places an order, exactly once.
///         "order:place" => Place(Order) as durable,
///     }
///
///     /// What a shop server sends.
///     pub server ShopServer {
///         /// An order shipped.
///         "order:shipped" => Shipped(Shipped) as numbered,
///     }
/// }
///
/// use relaywire_protocol::{ClientMessages, Messages, Protocol};
/// let place = ShopClient::from(Order { order_id: "o1".into() });
/// assert_eq!(place.type_name(), "order:place");
/// assert!(place.policy().delivery.is_deduplicated());
/// assert!(ShopProtocol::descriptor().server_policy("order:shipped").unwrap().numbered);
/// ```
#[macro_export]
macro_rules! catalogue {
    (
        $(#[$protocol_meta:meta])*
        $protocol_vis:vis protocol $protocol:ident;

        $(#[$client_meta:meta])*
        $client_vis:vis client $client:ident {
            $(
                $(#[$client_line_meta:meta])*
                $client_wire:literal => $client_variant:ident($client_payload:ty)
                    as $client_class:ident $({ $($client_option:ident : $client_value:literal),* $(,)? })?
            ),* $(,)?
        }

        $(#[$server_meta:meta])*
        $server_vis:vis server $server:ident {
            $(
                $(#[$server_line_meta:meta])*
                $server_wire:literal => $server_variant:ident($server_payload:ty) as $server_class:ident
            ),* $(,)?
        }
    ) => {
        $(#[$protocol_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        $protocol_vis struct $protocol;

        impl $crate::Protocol for $protocol {
            type Client = $client;
            type Server = $server;
            const NAME: &'static str = stringify!($protocol);
        }

        $(#[$client_meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(tag = "type", content = "payload"))]
        $client_vis enum $client {
            /// Authenticates the connection, or refreshes the token of an authenticated one.
            #[cfg_attr(feature = "typescript", ts(rename = "auth"))]
            Auth($crate::Authenticate),
            /// Heartbeat; the server answers with `pong`.
            #[cfg_attr(feature = "typescript", ts(rename = "ping"))]
            Ping($crate::Ping),
            $(
                $(#[$client_line_meta])*
                #[cfg_attr(feature = "typescript", ts(rename = $client_wire))]
                $client_variant($client_payload),
            )*
        }

        impl $crate::Messages for $client {
            const TYPES: &'static [&'static str] = &["auth", "ping", $($client_wire),*];
            const PAYLOAD_TYPES: &'static [&'static str] =
                &["Authenticate", "Ping", $(stringify!($client_payload)),*];

            fn type_name(&self) -> &str {
                match self {
                    Self::Auth(_) => "auth",
                    Self::Ping(_) => "ping",
                    $(Self::$client_variant(_) => $client_wire,)*
                }
            }

            fn decode_payload<'de, D: $crate::__private::serde::Deserializer<'de>>(
                type_name: &str,
                payload: D,
            ) -> Option<Result<Self, D::Error>> {
                use $crate::__private::serde::Deserialize as _;
                Some(match type_name {
                    "auth" => <$crate::Authenticate>::deserialize(payload).map(Self::Auth),
                    "ping" => <$crate::Ping>::deserialize(payload).map(Self::Ping),
                    $($client_wire => <$client_payload>::deserialize(payload).map(Self::$client_variant),)*
                    _ => return None,
                })
            }

            #[cfg(feature = "typescript")]
            fn payload_shapes(config: &$crate::__private::ts_rs::Config) -> Vec<String> {
                use $crate::__private::ts_rs::TS as _;
                vec![
                    <$crate::Authenticate>::inline(config),
                    <$crate::Ping>::inline(config),
                    $(<$client_payload>::inline(config)),*
                ]
            }
        }

        impl $crate::ClientMessages for $client {
            const POLICIES: &'static [$crate::policy::ClientPolicy] = &[
                $crate::policy::ClientPolicy::request(),
                $crate::policy::ClientPolicy::ephemeral(),
                $($crate::policy::ClientPolicy::$client_class()$($(.$client_option($client_value))*)?.checked(),)*
            ];

            fn validate(&self, limits: &$crate::Limits) -> Result<(), $crate::DecodeErrorKind> {
                match self {
                    Self::Auth(payload) => $crate::Validate::validate(payload, limits),
                    Self::Ping(payload) => $crate::Validate::validate(payload, limits),
                    $(Self::$client_variant(payload) => $crate::Validate::validate(payload, limits),)*
                }
            }

            fn control(&self) -> Option<$crate::control::ClientControl<'_>> {
                match self {
                    Self::Auth(auth) => Some($crate::control::ClientControl::Auth(auth)),
                    Self::Ping(_) => Some($crate::control::ClientControl::Ping),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        impl $crate::__private::serde::Serialize for $client {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let name = stringify!($client);
                match self {
                    Self::Auth(payload) => $crate::__private::serialize_tagged(serializer, name, "auth", payload),
                    Self::Ping(payload) => $crate::__private::serialize_tagged(serializer, name, "ping", payload),
                    $(Self::$client_variant(payload) => $crate::__private::serialize_tagged(serializer, name, $client_wire, payload),)*
                }
            }
        }

        /// Accepts the same shapes as the decoder but checks no limits: decode untrusted
        /// input with `decode_client_message`.
        impl<'de> $crate::__private::serde::Deserialize<'de> for $client {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::__private::deserialize_client(deserializer)
            }
        }

        impl $crate::WireMessage for $client {}

        impl From<$crate::Authenticate> for $client {
            fn from(payload: $crate::Authenticate) -> Self { Self::Auth(payload) }
        }
        impl From<$crate::Ping> for $client {
            fn from(payload: $crate::Ping) -> Self { Self::Ping(payload) }
        }
        $(
            impl From<$client_payload> for $client {
                fn from(payload: $client_payload) -> Self { Self::$client_variant(payload) }
            }
        )*

        $(#[$server_meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(tag = "type", content = "payload"))]
        $server_vis enum $server {
            /// Authentication succeeded; the first message of every session.
            #[cfg_attr(feature = "typescript", ts(rename = "connected"))]
            Connected($crate::Connected),
            /// The client message with this `id` was accepted.
            #[cfg_attr(feature = "typescript", ts(rename = "ack"))]
            Ack($crate::Ack),
            /// Something went wrong; `id` names the client message this answers, if any.
            #[cfg_attr(feature = "typescript", ts(rename = "error"))]
            Error($crate::ErrorPayload),
            /// Heartbeat reply to `ping`.
            #[cfg_attr(feature = "typescript", ts(rename = "pong"))]
            Pong($crate::Pong),
            /// A user who shares a room with the client came online or went offline.
            #[cfg_attr(feature = "typescript", ts(rename = "user:online"))]
            UserOnline($crate::PresenceChange),
            $(
                $(#[$server_line_meta])*
                #[cfg_attr(feature = "typescript", ts(rename = $server_wire))]
                $server_variant($server_payload),
            )*
            /// A message of a type this version does not know, kept whole.
            #[cfg_attr(feature = "typescript", ts(skip))]
            Unknown($crate::UnknownMessage),
        }

        impl $crate::Messages for $server {
            const TYPES: &'static [&'static str] =
                &["connected", "ack", "error", "pong", "user:online", $($server_wire),*];
            const PAYLOAD_TYPES: &'static [&'static str] = &[
                "Connected", "Ack", "ErrorPayload", "Pong", "PresenceChange",
                $(stringify!($server_payload)),*
            ];

            fn type_name(&self) -> &str {
                match self {
                    Self::Connected(_) => "connected",
                    Self::Ack(_) => "ack",
                    Self::Error(_) => "error",
                    Self::Pong(_) => "pong",
                    Self::UserOnline(_) => "user:online",
                    $(Self::$server_variant(_) => $server_wire,)*
                    Self::Unknown(unknown) => &unknown.type_name,
                }
            }

            fn decode_payload<'de, D: $crate::__private::serde::Deserializer<'de>>(
                type_name: &str,
                payload: D,
            ) -> Option<Result<Self, D::Error>> {
                use $crate::__private::serde::Deserialize as _;
                Some(match type_name {
                    "connected" => <$crate::Connected>::deserialize(payload).map(Self::Connected),
                    "ack" => <$crate::Ack>::deserialize(payload).map(Self::Ack),
                    "error" => <$crate::ErrorPayload>::deserialize(payload).map(Self::Error),
                    "pong" => <$crate::Pong>::deserialize(payload).map(Self::Pong),
                    "user:online" => <$crate::PresenceChange>::deserialize(payload).map(Self::UserOnline),
                    $($server_wire => <$server_payload>::deserialize(payload).map(Self::$server_variant),)*
                    _ => return None,
                })
            }

            #[cfg(feature = "typescript")]
            fn payload_shapes(config: &$crate::__private::ts_rs::Config) -> Vec<String> {
                use $crate::__private::ts_rs::TS as _;
                vec![
                    <$crate::Connected>::inline(config),
                    <$crate::Ack>::inline(config),
                    <$crate::ErrorPayload>::inline(config),
                    <$crate::Pong>::inline(config),
                    <$crate::PresenceChange>::inline(config),
                    $(<$server_payload>::inline(config)),*
                ]
            }
        }

        impl $crate::ServerMessages for $server {
            const POLICIES: &'static [$crate::policy::ServerPolicy] = &[
                $crate::policy::ServerPolicy::live(),
                $crate::policy::ServerPolicy::live(),
                $crate::policy::ServerPolicy::live(),
                $crate::policy::ServerPolicy::live(),
                $crate::policy::ServerPolicy::live(),
                $($crate::policy::ServerPolicy::$server_class(),)*
            ];

            fn seq(&self) -> Option<$crate::Seq> {
                match self {
                    $(Self::$server_variant(payload) => $crate::__seq!($server_class, payload),)*
                    _ => None,
                }
            }

            fn control(&self) -> Option<$crate::control::ServerControl<'_>> {
                use $crate::control::ServerControl;
                match self {
                    Self::Connected(payload) => Some(ServerControl::Connected(payload)),
                    Self::Ack(payload) => Some(ServerControl::Ack(payload)),
                    Self::Error(payload) => Some(ServerControl::Error(payload)),
                    Self::Pong(payload) => Some(ServerControl::Pong(payload)),
                    Self::UserOnline(payload) => Some(ServerControl::Presence(payload)),
                    _ => None,
                }
            }

            fn unknown(message: $crate::UnknownMessage) -> Self {
                Self::Unknown(message)
            }

            fn as_unknown(&self) -> Option<&$crate::UnknownMessage> {
                match self {
                    Self::Unknown(unknown) => Some(unknown),
                    _ => None,
                }
            }
        }

        impl $crate::__private::serde::Serialize for $server {
            fn serialize<S: $crate::__private::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let name = stringify!($server);
                match self {
                    Self::Connected(payload) => $crate::__private::serialize_tagged(serializer, name, "connected", payload),
                    Self::Ack(payload) => $crate::__private::serialize_tagged(serializer, name, "ack", payload),
                    Self::Error(payload) => $crate::__private::serialize_tagged(serializer, name, "error", payload),
                    Self::Pong(payload) => $crate::__private::serialize_tagged(serializer, name, "pong", payload),
                    Self::UserOnline(payload) => $crate::__private::serialize_tagged(serializer, name, "user:online", payload),
                    $(Self::$server_variant(payload) => $crate::__private::serialize_tagged(serializer, name, $server_wire, payload),)*
                    Self::Unknown(unknown) => $crate::__private::serde::Serialize::serialize(unknown, serializer),
                }
            }
        }

        /// Like `decode_server_message`: unknown types become `Unknown`.
        impl<'de> $crate::__private::serde::Deserialize<'de> for $server {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::__private::deserialize_server(deserializer)
            }
        }

        impl $crate::WireMessage for $server {}

        impl From<$crate::Connected> for $server {
            fn from(payload: $crate::Connected) -> Self { Self::Connected(payload) }
        }
        impl From<$crate::Ack> for $server {
            fn from(payload: $crate::Ack) -> Self { Self::Ack(payload) }
        }
        impl From<$crate::ErrorPayload> for $server {
            fn from(payload: $crate::ErrorPayload) -> Self { Self::Error(payload) }
        }
        impl From<$crate::Pong> for $server {
            fn from(payload: $crate::Pong) -> Self { Self::Pong(payload) }
        }
        impl From<$crate::PresenceChange> for $server {
            fn from(payload: $crate::PresenceChange) -> Self { Self::UserOnline(payload) }
        }
        $(
            impl From<$server_payload> for $server {
                fn from(payload: $server_payload) -> Self { Self::$server_variant(payload) }
            }
        )*

        const _: () = {
            $crate::__private::assert_policies(<$client as $crate::ClientMessages>::POLICIES);
            $crate::__private::assert_unique_types(<$client as $crate::Messages>::TYPES);
            $crate::__private::assert_unique_types(<$server as $crate::Messages>::TYPES);
        };
    };
}

/// The `seq` of a catalogue line's payload: read for `numbered` lines, none for `live`.
#[doc(hidden)]
#[macro_export]
macro_rules! __seq {
    (numbered, $payload:expr) => {
        $crate::Numbered::seq($payload)
    };
    (live, $payload:expr) => {{
        let _ = $payload;
        None
    }};
}
