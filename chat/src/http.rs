//! Bodies of the chat server's own HTTP API (chats, participants, history, receipts).
//! The bodies every Relaywire server shares (pushes, status, errors) are
//! [`relaywire_protocol::http`]'s.

use serde::{Deserialize, Serialize};

use crate::{ChatMessage, ReadReceipt};

/// A chat as the HTTP API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    /// The chat id.
    pub id: String,
    /// Its display title.
    pub title: String,
    /// Whether anyone may join it with `chat:join`.
    pub open: bool,
    /// Its participants.
    pub participant_ids: Vec<String>,
    /// When it was created, RFC 3339 in UTC with milliseconds.
    pub created_at: String,
}

/// Body of `POST /api/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(optional_fields))]
#[serde(rename_all = "camelCase")]
pub struct CreateChat {
    /// The id to use; the server makes one up when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Display title.
    pub title: String,
    /// Whether anyone may join it (default: closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// Its first participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_ids: Option<Vec<String>>,
}

/// Response of `GET /api/chats` and `GET /api/me/chats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChatList {
    /// The chats, oldest first.
    pub chats: Vec<ChatSummary>,
}

/// Body of `POST /api/chats/{chatId}/participants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AddParticipants {
    /// The users to add.
    pub user_ids: Vec<String>,
}

/// Response of `GET /api/chats/{chatId}/receipts`: where each participant has read to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ReceiptList {
    /// The latest receipt of each participant who has read something.
    pub receipts: Vec<ReadReceipt>,
}

/// Response of `GET /api/chats/{chatId}/messages?before=&after=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// Messages in the order they were sent.
    pub messages: Vec<ChatMessage>,
    /// Whether more messages lie beyond this page in the direction asked for.
    pub has_more: bool,
}
