//! Helpers for the chat protocol of the reference apps (`relaywire-chat`), behind the
//! `chat` feature: what `relaywire/chat` gives JavaScript, for both Rust clients.

use relaywire_chat::{
    ChatProtocol, ClientMessage, JoinChat, LeaveChat, MarkRead, SendMessage, SetTyping,
};
use relaywire_protocol::Ack;

use crate::typed::{Client, RequestError};

impl Client<ChatProtocol> {
    /// Posts a chat message; resolves with the `ack` carrying the stored message's id.
    pub async fn send_chat_message(
        &self,
        chat_id: impl Into<String>,
        content: impl Into<String>,
    ) -> Result<Ack, RequestError> {
        let message = SendMessage {
            chat_id: chat_id.into(),
            content: content.into(),
        };
        self.request(ClientMessage::from(message)).await
    }

    /// Marks a message (and those before it) as read.
    pub async fn mark_read(
        &self,
        chat_id: impl Into<String>,
        message_id: impl Into<String>,
    ) -> Result<Ack, RequestError> {
        let message = MarkRead {
            chat_id: chat_id.into(),
            message_id: message_id.into(),
        };
        self.request(ClientMessage::from(message)).await
    }

    /// Joins an open chat; the snapshot's rooms include it once acknowledged.
    pub async fn join_chat(&self, chat_id: impl Into<String>) -> Result<Ack, RequestError> {
        let message = JoinChat {
            chat_id: chat_id.into(),
        };
        self.request(ClientMessage::from(message)).await
    }

    /// Leaves a chat.
    pub async fn leave_chat(&self, chat_id: impl Into<String>) -> Result<Ack, RequestError> {
        let message = LeaveChat {
            chat_id: chat_id.into(),
        };
        self.request(ClientMessage::from(message)).await
    }

    /// Shows or hides the typing indicator in a chat. Call it on every keystroke: the
    /// client limits what it sends and sends the stop by itself when the calls stop.
    pub async fn set_typing(
        &self,
        chat_id: impl Into<String>,
        is_typing: bool,
    ) -> Result<(), RequestError> {
        let message = SetTyping {
            chat_id: chat_id.into(),
            is_typing,
        };
        self.send(ClientMessage::from(message)).await
    }
}
