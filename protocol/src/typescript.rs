//! TypeScript declarations of every wire type, generated with ts-rs.
//!
//! All types go to one self-contained file, `protocol.ts`, with no imports, so it can
//! be copied into an npm package or spliced into a wasm-bindgen `.d.ts` as it is.

use std::path::Path;

use ts_rs::{Config, TS};

use crate::http::{
    AddParticipants, ApiError, Broadcast, ChatList, ConnectedUsers, CreateChat, Delivery, DevLogin,
    Disconnected, MessagePage, NotifyUser, PushToUser, PushToUsers, ReceiptList, Session,
    UserStatus,
};
use crate::{ClientEnvelope, ClientErrorCode, ClientMessage, ErrorCode, ServerMessage};

/// The file every type is exported to, relative to the output folder.
pub const FILE_NAME: &str = "protocol.ts";

/// Writes `protocol.ts` into `out_dir`: every message, payload and error code type, and
/// the bodies of the reference server's HTTP API.
///
/// ```no_run
/// relaywire_protocol::typescript::export(std::path::Path::new("bindings"))?;
/// # Ok::<(), ts_rs::ExportError>(())
/// ```
pub fn export(out_dir: &Path) -> Result<(), ts_rs::ExportError> {
    // JSON.parse never yields a bigint: large integers are plain numbers.
    let config = Config::new().with_out_dir(out_dir).with_large_int("number");
    ClientEnvelope::export_all(&config)?;
    ClientMessage::export_all(&config)?;
    ServerMessage::export_all(&config)?;
    ErrorCode::export_all(&config)?;
    ClientErrorCode::export_all(&config)?;
    // The HTTP API's bodies.
    AddParticipants::export_all(&config)?;
    ApiError::export_all(&config)?;
    Broadcast::export_all(&config)?;
    ChatList::export_all(&config)?;
    ConnectedUsers::export_all(&config)?;
    CreateChat::export_all(&config)?;
    Delivery::export_all(&config)?;
    DevLogin::export_all(&config)?;
    Disconnected::export_all(&config)?;
    MessagePage::export_all(&config)?;
    NotifyUser::export_all(&config)?;
    PushToUser::export_all(&config)?;
    PushToUsers::export_all(&config)?;
    ReceiptList::export_all(&config)?;
    Session::export_all(&config)?;
    UserStatus::export_all(&config)?;
    Ok(())
}

/// The message catalogue as a Markdown table: type, direction, payload type and shape.
///
/// The README shows this table; a test keeps the two equal.
pub fn catalogue_markdown() -> String {
    let config = Config::new().with_large_int("number");
    let mut table = String::from("| type | direction | payload | fields |\n|---|---|---|---|\n");
    let sections = [
        (
            "client → server",
            ClientMessage::TYPES,
            ClientMessage::PAYLOAD_TYPES,
            ClientMessage::payload_shapes(&config),
        ),
        (
            "server → client",
            ServerMessage::TYPES,
            ServerMessage::PAYLOAD_TYPES,
            ServerMessage::payload_shapes(&config),
        ),
    ];
    for (direction, types, payloads, shapes) in sections {
        for ((type_name, payload), shape) in types.iter().zip(payloads).zip(shapes) {
            let shape = without_comments(&shape)
                .replace("Record<symbol, never>", "{}")
                .replace(", }", " }")
                .replace('|', "\\|");
            table.push_str(&format!(
                "| `{type_name}` | {direction} | `{payload}` | `{shape}` |\n"
            ));
        }
    }
    table
}

/// `{ /** doc */ a: string, }` → `{ a: string, }`, on one line.
fn without_comments(shape: &str) -> String {
    let mut rest = shape;
    let mut out = String::new();
    while let Some(start) = rest.find("/**") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
