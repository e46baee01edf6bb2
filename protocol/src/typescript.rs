//! TypeScript for a protocol, generated with ts-rs: its message types, and the small
//! runtime descriptor the npm client reads to know what to do with each message type.
//!
//! An application writes its protocol's file with one call,
//! `Bindings::of::<ShopProtocol>().render()`, and keeps it fresh with one test that
//! hands the text to [`assert_fresh`] (the chat catalogue's `tests/generated.rs` in
//! `relaywire-chat` is one). The catalogue's crate needs a `typescript` feature that
//! turns on `ts-rs` and `relaywire-protocol/typescript`, so its enums derive `TS`.
//!
//! The file is self-contained (no imports): its types, a `ClientEnvelope`, the
//! protocol type (`ShopProtocol`, for `RelaywireClient<ShopProtocol>`) and the
//! descriptor value (`shopProtocol`, for the client's `protocol` option). Optional
//! fields are `field?: T`, never `T | null`; integers are `number`, since `JSON.parse`
//! never produces a `bigint`; arbitrary JSON is `unknown`.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use ts_rs::{Config, TS, TypeVisitor};

use crate::policy::{ClientPolicy, Delivery, RoomChange};
use crate::{
    Ack, Authenticate, ClientErrorCode, ClientMessages, Connected, ErrorCode, ErrorPayload,
    Messages, Ping, Pong, PresenceChange, Protocol, Seq, ServerMessages,
};

/// The header of every generated file.
const HEADER: &str =
    "// Generated from a Relaywire catalogue by relaywire-protocol (ts-rs). Do not edit by hand.\n";

fn config() -> Config {
    // JSON.parse never yields a bigint: large integers are plain numbers.
    Config::new().with_large_int("number")
}

/// Every declaration a set of types needs, by TypeScript name.
#[derive(Default)]
struct Declarations {
    seen: HashSet<TypeId>,
    text: BTreeMap<String, String>,
}

impl Declarations {
    fn add<T: TS + 'static + ?Sized>(&mut self, config: &Config) {
        struct Visit<'a>(&'a mut Declarations, &'a Config);
        impl TypeVisitor for Visit<'_> {
            fn visit<T: TS + 'static + ?Sized>(&mut self) {
                // Primitives and wrappers have no declaration of their own.
                if T::output_path().is_some() {
                    self.0.add::<T>(self.1);
                }
            }
        }
        if !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        let mut text = T::docs().unwrap_or_default();
        text.push_str("export ");
        text.push_str(&T::decl(config));
        text.push('\n');
        self.text.insert(T::ident(config), text);
        T::visit_dependencies(&mut Visit(self, config));
    }

    fn render(&self) -> String {
        let mut out = String::from(HEADER);
        for text in self.text.values() {
            out.push('\n');
            out.push_str(text);
        }
        out
    }
}

/// The TypeScript of one protocol, plus any other types the application shares (the
/// bodies of its HTTP API, say).
pub struct Bindings {
    config: Config,
    declarations: Declarations,
    tail: String,
}

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings")
            .field("types", &self.declarations.text.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `ChatProtocol` → `chatProtocol`.
fn value_name(type_name: &str) -> String {
    let mut chars = type_name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn client_policy_js(policy: &ClientPolicy) -> String {
    let mut out = format!("{{ delivery: \"{}\"", policy.delivery.as_str());
    if let Some(state) = policy.state {
        let _ = write!(
            out,
            ", key: {}, active: {}",
            json_string(state.key),
            json_string(state.active)
        );
    }
    if let Some(room) = policy.room {
        let option = match room.change {
            RoomChange::Join => "joins",
            RoomChange::Leave => "leaves",
        };
        let _ = write!(out, ", {option}: {}", json_string(room.field));
    }
    out.push_str(" }");
    out
}

impl Bindings {
    /// The protocol's messages, their payloads and everything those use, the error
    /// codes, a `ClientEnvelope`, the protocol type and its descriptor.
    pub fn of<P: Protocol>() -> Self
    where
        P::Client: TS,
        P::Server: TS,
    {
        let config = config();
        let mut declarations = Declarations::default();
        declarations.add::<P::Client>(&config);
        declarations.add::<P::Server>(&config);
        declarations.add::<ErrorCode>(&config);
        declarations.add::<ClientErrorCode>(&config);
        let client = <P::Client as TS>::ident(&config);
        let server = <P::Server as TS>::ident(&config);
        let value = value_name(P::NAME);
        let mut tail = String::new();
        let _ = writeln!(
            tail,
            "\n/**\n * A client message as it travels: with the `id` its `ack` or `error` echoes.\n */\nexport type ClientEnvelope = {{ id?: string }} & {client};"
        );
        let _ = writeln!(
            tail,
            "\n/**\n * A server message as it travels. Under protocol 3 the sender's own copy of an event\n * its message stored carries that message's acknowledgement, and no `ack` follows.\n */\nexport type ServerEnvelope = {{ ack?: Ack }} & {server};"
        );
        let _ = writeln!(
            tail,
            "\n/**\n * A frame under protocol 3: one message, or several (a batch) handled in order.\n */\nexport type Frame<M> = M | M[];"
        );
        let _ = writeln!(
            tail,
            "\n/**\n * The messages of `{name}`: `new RelaywireClient<{name}>(...)`.\n */\nexport type {name} = {{ client: {client}; server: {server} }};",
            name = P::NAME
        );
        let _ = write!(
            tail,
            "\n/**\n * What a client does with each message type of `{name}`: pass it as the\n * client's `protocol` option.\n */\nexport const {value}: {{\n  readonly name: \"{name}\";\n  readonly client: {{ readonly [K in {client}[\"type\"]]: {{ readonly delivery: \"durable\" | \"request\" | \"ephemeral\"; readonly key?: string; readonly active?: string; readonly joins?: string; readonly leaves?: string }} }};\n  readonly server: {{ readonly [K in {server}[\"type\"]]: {{ readonly numbered: boolean }} }};\n  /** Carries the message types for the client's type parameter; never set. */\n  readonly types?: {name};\n}} = {{\n  name: \"{name}\",\n  client: {{\n",
            name = P::NAME
        );
        for (type_name, policy) in P::Client::TYPES
            .iter()
            .zip(<P::Client as ClientMessages>::POLICIES)
        {
            let _ = writeln!(
                tail,
                "    {}: {},",
                json_string(type_name),
                client_policy_js(policy)
            );
        }
        tail.push_str("  },\n  server: {\n");
        for (type_name, policy) in P::Server::TYPES
            .iter()
            .zip(<P::Server as ServerMessages>::POLICIES)
        {
            let _ = writeln!(
                tail,
                "    {}: {{ numbered: {} }},",
                json_string(type_name),
                policy.numbered
            );
        }
        tail.push_str("  },\n};\n");
        Self {
            config,
            declarations,
            tail,
        }
    }

    /// Adds the bodies of the HTTP API every Relaywire server offers
    /// ([`crate::http`]), the pushes typed with the protocol's server messages.
    pub fn with_server_api(self) -> Self {
        use crate::http::*;
        self.with::<ApiError>()
            .with::<Broadcast<crate::Ack>>()
            .with::<ConnectedUsers>()
            .with::<Delivery>()
            .with::<DevLogin>()
            .with::<Disconnected>()
            .with::<NotifyUser>()
            .with::<PushToUser<crate::Ack>>()
            .with::<PushToUsers<crate::Ack>>()
            .with::<Session>()
            .with::<UserStatus>()
    }

    /// Adds another type (and what it uses), e.g. an HTTP API body.
    pub fn with<T: TS + 'static>(mut self) -> Self {
        self.declarations.add::<T>(&self.config);
        self
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = self.declarations.render();
        out.push_str(&self.tail);
        out
    }
}

/// The control messages' types, which every protocol shares: what the npm package
/// declares beside its client.
pub fn control_declarations() -> String {
    let config = config();
    let mut declarations = Declarations::default();
    declarations.add::<Authenticate>(&config);
    declarations.add::<Ping>(&config);
    declarations.add::<Connected>(&config);
    declarations.add::<Ack>(&config);
    declarations.add::<ErrorPayload>(&config);
    declarations.add::<Pong>(&config);
    declarations.add::<PresenceChange>(&config);
    declarations.add::<Seq>(&config);
    declarations.add::<ErrorCode>(&config);
    declarations.add::<ClientErrorCode>(&config);
    declarations.render()
}

fn delivery_label(delivery: Delivery) -> &'static str {
    delivery.as_str()
}

/// The protocol's messages as a Markdown table: type, direction, class, payload type
/// and shape. A README shows it; [`assert_section_fresh`] keeps the two equal.
pub fn catalogue_markdown<P: Protocol>() -> String {
    let config = config();
    let mut table =
        String::from("| type | direction | class | payload | fields |\n|---|---|---|---|---|\n");
    let client_classes = <P::Client as ClientMessages>::POLICIES
        .iter()
        .map(|policy| delivery_label(policy.delivery));
    let server_classes = <P::Server as ServerMessages>::POLICIES
        .iter()
        .map(|policy| if policy.numbered { "numbered" } else { "live" });
    let rows = P::Client::TYPES
        .iter()
        .zip(P::Client::PAYLOAD_TYPES)
        .zip(client_classes)
        .zip(P::Client::payload_shapes(&config))
        .map(|(((type_name, payload), class), shape)| {
            ("client → server", *type_name, *payload, class, shape)
        })
        .chain(
            P::Server::TYPES
                .iter()
                .zip(P::Server::PAYLOAD_TYPES)
                .zip(server_classes)
                .zip(P::Server::payload_shapes(&config))
                .map(|(((type_name, payload), class), shape)| {
                    ("server → client", *type_name, *payload, class, shape)
                }),
        );
    for (direction, type_name, payload, class, shape) in rows {
        let shape = without_comments(&shape)
            .replace("Record<symbol, never>", "{}")
            .replace(", }", " }")
            .replace('|', "\\|");
        let _ = writeln!(
            table,
            "| `{type_name}` | {direction} | {class} | `{payload}` | `{shape}` |"
        );
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

const BLESS_HINT: &str = "run the tests again (they regenerated it) and commit the result";

/// Compares `path` with `contents`; when they differ, rewrites the file and panics, so
/// a changed message cannot ship with stale TypeScript. For an application's tests.
///
/// # Panics
///
/// When the file was missing or stale (it has been rewritten), or cannot be written.
pub fn assert_fresh(path: &Path, contents: &str) {
    let current = std::fs::read_to_string(path).ok();
    if current.as_deref() == Some(contents) {
        return;
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(err) = std::fs::write(path, contents) {
        panic!("cannot write {}: {err}", path.display());
    }
    panic!(
        "{} was stale and has been regenerated: {BLESS_HINT}",
        path.display()
    );
}

/// Like [`assert_fresh`] for the part of a Markdown file between
/// `<!-- {name}:start ... -->` and `<!-- {name}:end -->`.
///
/// # Panics
///
/// When the markers are missing, or the section was stale (it has been rewritten).
pub fn assert_section_fresh(path: &Path, name: &str, contents: &str) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let start_marker = format!("<!-- {name}:start");
    let end_marker = format!("<!-- {name}:end -->");
    let start = text
        .find(&start_marker)
        .and_then(|at| text[at..].find("-->\n").map(|end| at + end + 4))
        .unwrap_or_else(|| panic!("{} has no `{name}` start marker", path.display()));
    let end = text[start..]
        .find(&end_marker)
        .map(|end| end + start)
        .unwrap_or_else(|| panic!("{} has no `{name}` end marker", path.display()));
    if text[start..end] == *contents {
        return;
    }
    let updated = format!("{}{contents}{}", &text[..start], &text[end..]);
    if let Err(err) = std::fs::write(path, updated) {
        panic!("cannot write {}: {err}", path.display());
    }
    panic!(
        "the `{name}` section of {} was stale and has been regenerated: {BLESS_HINT}",
        path.display()
    );
}
