//! A catalogue defined outside the crate, as an application defines one: its lines
//! drive the enums, the codec, validation, the policies, the descriptor and the
//! TypeScript.

// A test's catalogue: its payloads need no docs.
#![allow(missing_docs)]

use relaywire_protocol::policy::{Delivery, RoomChange};
use relaywire_protocol::{
    Ack, ClientEnvelope, ClientMessages, DecodeErrorKind, ErrorCode, Limits, Messages, Protocol,
    Seq, ServerMessages, Validate, catalogue, check_id, check_text, decode_client_message,
    decode_server_message, encode,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub lot_id: String,
    pub amount: u32,
    pub note: String,
}

impl Validate for Bid {
    fn validate(&self, limits: &Limits) -> Result<(), DecodeErrorKind> {
        check_id("lotId", &self.lot_id, limits)?;
        check_text("note", &self.note, limits)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    pub lot_id: String,
    pub watching: bool,
}

impl Validate for Watch {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Enter {
    pub lot_id: String,
}

impl Validate for Enter {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct BidPlaced {
    pub lot_id: String,
    pub amount: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

relaywire_protocol::numbered!(BidPlaced);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Watchers {
    pub lot_id: String,
    pub count: u32,
}

catalogue! {
    /// An auction house.
    pub protocol AuctionProtocol;

    /// What bidders send.
    pub client AuctionClient {
        /// A bid, placed exactly once.
        "lot:bid" => Bid(Bid) as durable,
        /// Watching a lot, an ephemeral state.
        "lot:watch" => Watch(Watch) as ephemeral { key: "lotId", active: "watching" },
        /// Entering a lot's room.
        "lot:enter" => Enter(Enter) as request { joins: "lotId" },
    }

    /// What the auction house sends.
    pub server AuctionServer {
        /// A bid was placed.
        "lot:bid" => BidPlaced(BidPlaced) as numbered,
        /// How many watch a lot.
        "lot:watchers" => Watchers(Watchers) as live,
    }
}

#[test]
fn control_messages_come_with_every_catalogue() {
    assert_eq!(
        AuctionClient::TYPES,
        ["auth", "ping", "lot:bid", "lot:watch", "lot:enter"]
    );
    assert_eq!(
        AuctionServer::TYPES,
        [
            "connected",
            "ack",
            "error",
            "pong",
            "user:online",
            "lot:bid",
            "lot:watchers"
        ]
    );
    let ack = AuctionServer::from(Ack {
        id: "b1".into(),
        message_id: None,
    });
    assert_eq!(
        encode(&ack).unwrap(),
        r#"{"type":"ack","payload":{"id":"b1"}}"#
    );
    assert!(ack.control().is_some());
}

#[test]
fn each_line_sets_its_policy() {
    let descriptor = AuctionProtocol::descriptor();
    let bid = descriptor.client_policy("lot:bid").unwrap();
    assert_eq!(bid.delivery, Delivery::Durable);
    let watch = descriptor.client_policy("lot:watch").unwrap();
    assert_eq!(watch.delivery, Delivery::Ephemeral);
    let state = watch.state.as_ref().unwrap();
    assert_eq!(
        (state.key.as_str(), state.active.as_str()),
        ("lotId", "watching")
    );
    let enter = descriptor.client_policy("lot:enter").unwrap();
    let room = enter.room.as_ref().unwrap();
    assert_eq!(
        (room.change, room.field.as_str()),
        (RoomChange::Join, "lotId")
    );
    assert_eq!(
        descriptor.client_policy("ping").unwrap().delivery,
        Delivery::Ephemeral
    );
    assert_eq!(
        descriptor.client_policy("auth").unwrap().delivery,
        Delivery::Request
    );
    assert!(descriptor.server_policy("lot:bid").unwrap().numbered);
    assert!(!descriptor.server_policy("lot:watchers").unwrap().numbered);
    assert!(descriptor.server_policy("lot:sold").is_none());
    assert_eq!(AuctionProtocol::NAME, "AuctionProtocol");
}

#[test]
fn the_codec_dispatches_and_validates_by_the_catalogue() {
    let frame = r#"{"id":"b7","type":"lot:bid","payload":{"lotId":"l1","amount":5,"note":"hi"}}"#;
    let envelope: ClientEnvelope<AuctionClient> =
        decode_client_message(frame, &Limits::default()).unwrap();
    assert_eq!(envelope.id.as_deref(), Some("b7"));
    assert!(envelope.message.policy().delivery.is_deduplicated());
    assert_eq!(encode(&envelope).unwrap(), frame);

    let blank = r#"{"type":"lot:bid","id":"b8","payload":{"lotId":"l1","amount":5,"note":" "}}"#;
    let err = decode_client_message::<AuctionClient>(blank, &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::EmptyField { field: "note" });
    assert_eq!(err.code(), ErrorCode::ValidationError);
    assert_eq!(err.id(), Some("b8"));

    let foreign = r#"{"type":"chat:message","payload":{}}"#;
    let err = decode_client_message::<AuctionClient>(foreign, &Limits::default()).unwrap_err();
    assert!(matches!(err.kind(), DecodeErrorKind::UnknownType { .. }));
}

#[test]
fn numbered_server_messages_carry_their_seq_and_unknown_types_are_kept() {
    let placed: AuctionServer =
        decode_server_message(r#"{"type":"lot:bid","payload":{"lotId":"l","amount":3,"seq":9}}"#)
            .unwrap();
    assert_eq!(placed.seq(), Seq::new(9).ok());
    let watchers: AuctionServer =
        decode_server_message(r#"{"type":"lot:watchers","payload":{"lotId":"l","count":2}}"#)
            .unwrap();
    assert_eq!(watchers.seq(), None);
    let newer: AuctionServer =
        decode_server_message(r#"{"type":"lot:sold","payload":{"to":"u"}}"#).unwrap();
    assert_eq!(newer.type_name(), "lot:sold");
    assert_eq!(
        newer
            .as_unknown()
            .map(|unknown| unknown.payload["to"].clone()),
        Some(serde_json::json!("u"))
    );
    assert_eq!(
        encode(&newer).unwrap(),
        r#"{"type":"lot:sold","payload":{"to":"u"}}"#
    );
}

#[cfg(feature = "typescript")]
#[test]
fn its_typescript_has_the_types_the_protocol_and_the_descriptor() {
    use relaywire_protocol::typescript::Bindings;

    let text = Bindings::of::<AuctionProtocol>().render();
    assert!(
        text.contains(r#"export type AuctionClient = { "type": "auth", "payload": Authenticate }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{ "type": "lot:bid", "payload": Bid }"#),
        "{text}"
    );
    assert!(text.contains("export type BidPlaced = "), "{text}");
    assert!(text.contains("export type ErrorCode = "), "{text}");
    assert!(text.contains(
        "export type AuctionProtocol = { client: AuctionClient; server: AuctionServer };"
    ));
    assert!(text.contains("export const auctionProtocol: {"));
    assert!(
        text.contains(
            r#""lot:watch": { delivery: "ephemeral", key: "lotId", active: "watching" },"#
        )
    );
    assert!(text.contains(r#""lot:enter": { delivery: "request", joins: "lotId" },"#));
    assert!(text.contains(r#""lot:bid": { numbered: true },"#));
    assert!(!text.contains("import "));
    let table = relaywire_protocol::typescript::catalogue_markdown::<AuctionProtocol>();
    assert!(table.contains("| `lot:bid` | client → server | durable | `Bid` | `{ lotId: string, amount: number, note: string }` |"), "{table}");
}
