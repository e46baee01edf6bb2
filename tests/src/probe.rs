//! The probe suite: what an attacker or a careless client tries, played against the
//! real chat server binary over real sockets, each with the answer it must get.
//!
//! [`PROBES`] is the table; `cargo xtask test probe` runs every probe and prints
//! what it got, and the chat server README's bad-input table is generated from it, so
//! the table cannot claim what the binary does not do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use relaywire_protocol::{CloseCode, ErrorCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{SECRET, free_port, signed, wait_healthy};

/// What a probe tries, what it must get, and the in-process test that covers the same
/// ground in detail.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    /// What is sent.
    pub input: &'static str,
    /// What the server must answer.
    pub answer: &'static str,
    /// The test of `examples/chat-server/tests/server/` (or elsewhere) with the detail.
    pub test: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MalformedJson,
    NotAnEnvelope,
    UnknownType,
    WrongField,
    BlankContent,
    ContentTooLong,
    FrameTooLarge,
    FrameFarTooLarge,
    BinaryFrame,
    BadBatch,
    Flood,
    BatchFlood,
    UserRate,
    UserConnections,
    SlowReader,
    Silence,
    SilentTcp,
    Slowloris,
    ConnectionCap,
    NoAuth,
    BeforeAuth,
    BadTokens,
    Expired,
    ClockOverflow,
    MidSessionOverflow,
    WrongOrigin,
    AnyOriginCookie,
    Version,
    NotParticipant,
    Resend,
    IdReused,
    BadBody,
    Dotfiles,
    BadQuery,
    PerUserSeq,
    SecureCookie,
    TokensNotLogged,
    BadConfig,
    OtherDatabase,
    ClusterWithoutSharedStore,
    HooksOffLoopback,
    Warnings,
    BlockedStdout,
}

const fn probe(input: &'static str, answer: &'static str, test: &'static str, kind: Kind) -> Probe {
    Probe {
        input,
        answer,
        test,
        kind,
    }
}

/// Every probe, in the order of the README's table.
pub const PROBES: &[Probe] = &[
    probe(
        "malformed JSON (`{not json`)",
        "`error` `INVALID_MESSAGE`",
        "robustness::malformed_and_invalid_frames_get_their_code_and_change_nothing",
        Kind::MalformedJson,
    ),
    probe(
        "not an envelope (`[\"chat:message\"]`)",
        "`error` `INVALID_MESSAGE`",
        "same",
        Kind::NotAnEnvelope,
    ),
    probe(
        "unknown `type` (`chat:delete`)",
        "`error` `INVALID_MESSAGE`, with the message's `id`",
        "same",
        Kind::UnknownType,
    ),
    probe(
        "a wrongly typed field (`isTyping: \"yes\"`)",
        "`error` `VALIDATION_ERROR`",
        "same",
        Kind::WrongField,
    ),
    probe(
        "blank content",
        "`error` `VALIDATION_ERROR`, with the message's `id`",
        "same",
        Kind::BlankContent,
    ),
    probe(
        "content over 4000 characters",
        "`error` `MESSAGE_TOO_LARGE`",
        "protocol vectors, `tests/vectors/client-invalid.json`",
        Kind::ContentTooLong,
    ),
    probe(
        "a frame over `MAX_MESSAGE_SIZE` (10000 bytes)",
        "`error` `MESSAGE_TOO_LARGE`; the connection stays",
        "robustness::frames_over_the_size_limit_are_refused",
        Kind::FrameTooLarge,
    ),
    probe(
        "a frame far over the limit (1 MB)",
        "close `1009`",
        "same",
        Kind::FrameFarTooLarge,
    ),
    probe(
        "a binary frame",
        "`error` `INVALID_MESSAGE`",
        "robustness::malformed_and_invalid_frames_get_their_code_and_change_nothing",
        Kind::BinaryFrame,
    ),
    probe(
        "a batch that is none (protocol 3): `[]`, a batch cut short, a batch in a batch",
        "`error` `INVALID_MESSAGE` for each; the connection goes on",
        "version3::a_batch_that_is_no_batch_is_refused_whole",
        Kind::BadBatch,
    ),
    probe(
        "a flood beyond `RATE_LIMIT`",
        "`error` `RATE_LIMITED` with `retryAfterMs`; persisting, close `4004`",
        "robustness::floods_are_rate_limited_then_closed",
        Kind::Flood,
    ),
    probe(
        "one batch (protocol 3) of 300 messages beyond `RATE_LIMIT`",
        "each message counts: `RATE_LIMITED` with `retryAfterMs`, then close `4004`",
        "version3::a_batch_is_handled_message_by_message_in_order",
        Kind::BatchFlood,
    ),
    probe(
        "one user's connections together beyond `USER_RATE_LIMIT`",
        "`error` `RATE_LIMITED` (\"this user's connections\"); only the user's burst is stored",
        "robustness::a_users_connections_share_one_rate",
        Kind::UserRate,
    ),
    probe(
        "a connection beyond `USER_CONNECTION_LIMIT`",
        "`error` `RATE_LIMITED`, close `1013`",
        "robustness::connections_beyond_the_users_limit_are_refused_with_a_code",
        Kind::UserConnections,
    ),
    probe(
        "a reader too slow for its queue (`OUTBOUND_QUEUE`)",
        "close `4006`",
        "robustness::a_slow_reader_is_closed_instead_of_buffered",
        Kind::SlowReader,
    ),
    probe(
        "silence past `CONNECTION_TIMEOUT` (pings unanswered)",
        "close `4007`",
        "robustness::a_silent_connection_is_closed",
        Kind::Silence,
    ),
    probe(
        "a TCP connection that sends nothing",
        "closed after `HEADER_READ_TIMEOUT`",
        "robustness::connections_that_never_finish_their_headers_are_closed",
        Kind::SilentTcp,
    ),
    probe(
        "an upgrade trickling a header line at a time (slowloris)",
        "closed after `HEADER_READ_TIMEOUT`",
        "same",
        Kind::Slowloris,
    ),
    probe(
        "more than `MAX_CONNECTIONS` open",
        "the new connection is closed at once; `/healthz` answers again as they close",
        "robustness::connections_over_the_cap_are_closed_at_once_websockets_included",
        Kind::ConnectionCap,
    ),
    probe(
        "no token and no `auth` message within `AUTH_TIMEOUT`",
        "`error` `AUTH_FAILED`, close `4001`",
        "auth::a_missing_auth_message_times_out",
        Kind::NoAuth,
    ),
    probe(
        "any message before authenticating",
        "`error` `AUTH_FAILED`, close `4001`; nothing stored",
        "auth::nothing_is_processed_before_auth",
        Kind::BeforeAuth,
    ),
    probe(
        "a forged signature, a garbage token, `alg: none`, a token without `exp`",
        "`error` `AUTH_FAILED` in the server's words, close `4001`",
        "auth::bad_tokens_get_an_error_then_their_close_code",
        Kind::BadTokens,
    ),
    probe(
        "an expired token",
        "`error` `AUTH_FAILED`, close `4002`",
        "same",
        Kind::Expired,
    ),
    probe(
        "a signed `exp` past what a clock holds (2^63 s), or an `nbf` in the future",
        "`error` `AUTH_FAILED`, close `4001`; HTTP `401`",
        "same",
        Kind::ClockOverflow,
    ),
    probe(
        "a mid-session `auth` with an `exp` of 2^63",
        "`error` `AUTH_FAILED`; the session goes on, and the user is offline once it closes",
        "same",
        Kind::MidSessionOverflow,
    ),
    probe(
        "a WebSocket from an origin not in `CORS_ORIGIN`",
        "HTTP `403` at the handshake",
        "auth::origins_are_checked_at_the_handshake",
        Kind::WrongOrigin,
    ),
    probe(
        "with `CORS_ORIGIN=*`, another site's page with the user's cookie",
        "no `Access-Control-Allow-Credentials`; HTTP `401`; the socket gets no identity from the cookie",
        "auth::with_any_origin_no_other_site_acts_with_the_users_cookie",
        Kind::AnyOriginCookie,
    ),
    probe(
        "an unsupported protocol version",
        "`error`, close `4005`",
        "auth::protocol_versions_are_negotiated",
        Kind::Version,
    ),
    probe(
        "a message to a closed chat the user is not in, and to one that does not exist",
        "`error` `NOT_PARTICIPANT` for both, so chat ids cannot be probed",
        "chat::non_participants_get_not_participant",
        Kind::NotParticipant,
    ),
    probe(
        "a message sent again with the same `id`",
        "the first `ack` again; stored once",
        "delivery::a_message_resent_on_a_new_connection_is_stored_once",
        Kind::Resend,
    ),
    probe(
        "another message under a used `id`, within `DEDUP_WINDOW`",
        "`error` `ID_REUSED`, nothing stored; after the window the id is free",
        "chat::an_id_used_again_for_another_message_is_refused_and_forgotten_after_the_window",
        Kind::IdReused,
    ),
    probe(
        "a bad HTTP API body",
        "`400` with `{\"error\": {\"code\": \"VALIDATION_ERROR\"}}`",
        "http_api::chats_are_created_listed_and_joined_through_the_api",
        Kind::BadBody,
    ),
    probe(
        "a static path to a dotfile (`/.env`, `/%2Eenv`) or through a symbolic link",
        "`404`",
        "http_api::static_files_skip_dotfiles_and_symbolic_links",
        Kind::Dotfiles,
    ),
    probe(
        "a query string that does not parse (`?limit=many`)",
        "`400` with `{\"error\": {\"code\": \"VALIDATION_ERROR\"}}`",
        "http_api::users_read_their_own_chats_and_history_pages",
        Kind::BadQuery,
    ),
    probe(
        "other users' activity in chats one is not in",
        "`connected.seq` does not move: every user's stream is numbered on its own",
        "delivery::stored_events_are_numbered_in_order",
        Kind::PerUserSeq,
    ),
    probe(
        "the dev login behind an HTTPS proxy (`X-Forwarded-Proto: https`)",
        "the cookie is `HttpOnly`, `SameSite` and `Secure`",
        "http_api::dev_login_sets_an_http_only_cookie_only_when_enabled",
        Kind::SecureCookie,
    ),
    probe(
        "`LOG_LEVEL=trace` while tokens come in the URL and in `auth` messages",
        "no token in the log",
        "lifecycle::logs_never_contain_tokens",
        Kind::TokensNotLogged,
    ),
    probe(
        "a bad value of a variable (`SERVICE_KEYS=a`, `CORS_ORIGIN=localhost`, `USER_CONNECTION_LIMIT=0`, ...)",
        "exit `2`, naming the variable and what it expects; no file created",
        "lifecycle::bad_configuration_fails_at_start_naming_the_variable",
        Kind::BadConfig,
    ),
    probe(
        "`DATABASE_URL` of an engine the server cannot store in (`mysql://...`)",
        "exit `2`, naming `DATABASE_URL` and the forms it takes; no file created",
        "same",
        Kind::OtherDatabase,
    ),
    probe(
        "`REDIS_URL` (many nodes) beside a SQLite file (one process's)",
        "exit `2`, naming `REDIS_URL`: a cluster shares a PostgreSQL store",
        "same",
        Kind::ClusterWithoutSharedStore,
    ),
    probe(
        "`TEST_HOOKS=true` with `BIND_ADDR=0.0.0.0`",
        "exit `2`: test hooks only on loopback",
        "same",
        Kind::HooksOffLoopback,
    ),
    probe(
        "`DEV_LOGIN=true` and `TEST_HOOKS=true` (on loopback)",
        "the server starts, and says at `WARN` what each lets anyone do",
        "this probe only",
        Kind::Warnings,
    ),
    probe(
        "standard output that nobody reads (`server | head -3`), then SIGTERM",
        "the server exits `0` within the shutdown grace",
        "lifecycle::a_blocked_standard_output_never_blocks_the_server",
        Kind::BlockedStdout,
    ),
];

/// The README table of the probes, between its markers.
pub fn markdown_table() -> String {
    let mut table =
        String::from("| input | answer | probe, and the test with the detail |\n|---|---|---|\n");
    for probe in PROBES {
        let test = if probe.test.contains("::") {
            format!("`{}`", probe.test)
        } else {
            probe.test.to_owned()
        };
        table.push_str(&format!(
            "| {} | {} | `{:?}`; {test} |\n",
            probe.input, probe.answer, probe.kind
        ));
    }
    table
}

/// What a probe saw, or why it failed.
type Outcome = Result<String, String>;

const SERVICE_KEY: &str = "probe-service-key-0123";
const WAIT: Duration = Duration::from_secs(5);

/// A chat server binary running for the probes, stopped when dropped.
struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws(&self, query: &str) -> String {
        format!("ws://127.0.0.1:{}/ws{query}", self.port)
    }
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Starts `binary` with the probes' settings and `extra`, and waits for `/healthz`.
async fn start(binary: &Path, dir: &Path, extra: &[(&str, &str)]) -> Result<Running, String> {
    std::fs::create_dir_all(dir).map_err(|err| err.to_string())?;
    let port = free_port()?;
    let log = dir.join("server.log");
    let log_file = std::fs::File::create(&log).map_err(|err| err.to_string())?;
    let err_file = log_file.try_clone().map_err(|err| err.to_string())?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .env("WS_PORT", port.to_string())
        .env("SEED_DEMO", "true")
        .env("DATA_DIR", dir)
        .env("DATABASE_URL", dir.join("chat.db"))
        .env("SERVICE_KEYS", SERVICE_KEY)
        .env("EXIT_ON_STDIN_CLOSE", "true")
        .envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(log_file)
        .stderr(err_file);
    let child = command
        .spawn()
        .map_err(|err| format!("{}: {err}", binary.display()))?;
    let running = Running { child, port, log };
    let url = running.http("");
    wait_healthy(&reqwest::Client::new(), &url, Duration::from_secs(20)).await?;
    Ok(running)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a socket ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Closed(u16),
    Dropped,
}

async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Socket, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            request.headers_mut().insert(name, value);
        }
    }
    Ok(tokio_tungstenite::connect_async(request).await?.0)
}

async fn next(ws: &mut Socket) -> Result<Value, String> {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| "no frame within 5 s".to_owned())?
            .ok_or("the socket ended")?
            .map_err(|err| format!("the socket failed: {err}"))?;
        match frame {
            Message::Text(text) => {
                return serde_json::from_str(&text).map_err(|err| format!("not JSON: {err}"));
            }
            Message::Close(frame) => {
                return Err(format!("closed {:?}", frame.map(|f| u16::from(f.code))));
            }
            _ => continue,
        }
    }
}

/// The next message of type `kind`, looking into batch frames (protocol 3) too.
async fn next_of(ws: &mut Socket, kind: &str) -> Result<Value, String> {
    loop {
        let frame = next(ws).await?;
        let found = match frame {
            Value::Array(messages) => messages.into_iter().find(|m| m["type"] == kind),
            message => Some(message).filter(|m| m["type"] == kind),
        };
        if let Some(message) = found {
            return Ok(message);
        }
    }
}

async fn ending(ws: &mut Socket) -> Ending {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return Ending::Closed(frame.code.into()),
            Ok(Some(Ok(Message::Close(None)))) => {
                return Ending::Closed(CloseCode::NoStatus.code());
            }
            Ok(Some(Ok(_))) => continue,
            _ => return Ending::Dropped,
        }
    }
}

/// Reads (and so answers the server's pings) for `duration`, dropping what comes.
async fn keep_reading(ws: &mut Socket, duration: Duration) {
    let deadline = tokio::time::Instant::now() + duration;
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
}

async fn send(ws: &mut Socket, frame: &Value) -> Result<(), String> {
    ws.send(Message::text(frame.to_string()))
        .await
        .map_err(|err| err.to_string())
}

/// Sends `frame` with `id` and returns its answer (`ack` or `error`).
async fn request(ws: &mut Socket, id: &str, frame: Value) -> Result<Value, String> {
    let mut frame = frame;
    frame["id"] = json!(id);
    send(ws, &frame).await?;
    loop {
        let answers = |reply: &Value| {
            matches!(reply["type"].as_str(), Some("ack" | "error")) && reply["payload"]["id"] == id
        };
        let found = match next(ws).await? {
            Value::Array(messages) => messages.into_iter().find(answers),
            reply => Some(reply).filter(answers),
        };
        if let Some(reply) = found {
            return Ok(reply);
        }
    }
}

/// A fresh user, connected and in the open chat `random`.
async fn member(server: &Running, name: &str) -> Result<(Socket, String), String> {
    member_speaking(server, name, &[]).await
}

/// [`member`] on a connection of protocol 3 (batches).
async fn member_v3(server: &Running, name: &str) -> Result<(Socket, String), String> {
    member_speaking(server, name, &[("sec-websocket-protocol", "relaywire.v3")]).await
}

async fn member_speaking(
    server: &Running,
    name: &str,
    headers: &[(&str, &str)],
) -> Result<(Socket, String), String> {
    let user = unique(name);
    let mut ws = open(
        &server.ws(&format!("?token={}", crate::token(&user))),
        headers,
    )
    .await
    .map_err(|err| err.to_string())?;
    next_of(&mut ws, "connected").await?;
    let joined = request(
        &mut ws,
        "join",
        json!({"type": "chat:join", "payload": {"chatId": "random"}}),
    )
    .await?;
    expect(joined["type"] == "ack", &joined)?;
    Ok((ws, user))
}

fn say(chat: &str, content: &str) -> Value {
    json!({"type": "chat:message", "payload": {"chatId": chat, "content": content}})
}

/// The connection ends with close `code`.
async fn closes_with(ws: &mut Socket, code: CloseCode) -> Result<(), String> {
    let end = ending(ws).await;
    expect(end == Ending::Closed(code.code()), &format!("{end:?}"))
}

/// The next frame is an `error` with `error_code`, then the connection closes with
/// `close`.
async fn refused(ws: &mut Socket, error_code: ErrorCode, close: CloseCode) -> Result<(), String> {
    let error = next(ws).await?;
    expect(code(&error) == Some(error_code), &error)?;
    closes_with(ws, close).await
}

fn expect(ok: bool, seen: &impl std::fmt::Display) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("got {seen}"))
    }
}

/// The error code a frame carries, if it is an error.
fn code(frame: &Value) -> Option<ErrorCode> {
    frame["payload"]["code"].as_str().map(ErrorCode::from_wire)
}

/// The error a raw frame gets on a fresh member's connection.
async fn error_for(server: &Running, text: &str) -> Result<Value, String> {
    let (mut ws, _) = member(server, "raw").await?;
    ws.send(Message::text(text))
        .await
        .map_err(|err| err.to_string())?;
    let error = next_of(&mut ws, "error").await?;
    // The connection stays usable.
    let alive = request(&mut ws, "alive", json!({"type": "ping", "payload": {}})).await?;
    expect(alive["type"] == "ack", &alive)?;
    Ok(error)
}

async fn error_code_for(server: &Running, text: &str, want: ErrorCode) -> Outcome {
    let error = error_for(server, text).await?;
    expect(code(&error).as_ref() == Some(&want), &error)?;
    Ok(format!("error {want}"))
}

/// Like [`error_code_for`], for a frame with an `id` the error must answer.
async fn error_answering(server: &Running, text: &str, want: ErrorCode, id: &str) -> Outcome {
    let error = error_for(server, text).await?;
    expect(
        code(&error).as_ref() == Some(&want) && error["payload"]["id"] == id,
        &error,
    )?;
    Ok(format!("error {want} answering {id}"))
}

/// Where the probes run: the main server, and the binary for the ones that start
/// their own.
struct Bench {
    main: Running,
    binary: PathBuf,
    dir: PathBuf,
}

async fn admin_json(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, Value), String> {
    let response = request
        .bearer_auth(SERVICE_KEY)
        .send()
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

impl Bench {
    async fn run(&self, kind: Kind) -> Outcome {
        let server = &self.main;
        let http = reqwest::Client::new();
        match kind {
            Kind::MalformedJson => {
                error_code_for(server, "{not json", ErrorCode::InvalidMessage).await
            }
            Kind::NotAnEnvelope => {
                error_code_for(server, r#"["chat:message"]"#, ErrorCode::InvalidMessage).await
            }
            Kind::UnknownType => {
                let frame = r#"{"type":"chat:delete","id":"d1","payload":{}}"#;
                error_answering(server, frame, ErrorCode::InvalidMessage, "d1").await
            }
            Kind::WrongField => {
                error_code_for(
                    server,
                    r#"{"type":"chat:typing","payload":{"chatId":"random","isTyping":"yes"}}"#,
                    ErrorCode::ValidationError,
                )
                .await
            }
            Kind::BlankContent => {
                let frame = r#"{"type":"chat:message","id":"v2","payload":{"chatId":"random","content":"  "}}"#;
                error_answering(server, frame, ErrorCode::ValidationError, "v2").await
            }
            Kind::ContentTooLong => {
                let frame = say("random", &"x".repeat(4001)).to_string();
                error_code_for(server, &frame, ErrorCode::MessageTooLarge).await
            }
            Kind::FrameTooLarge => {
                let frame = say("random", &"x".repeat(12_000)).to_string();
                error_code_for(server, &frame, ErrorCode::MessageTooLarge).await
            }
            Kind::FrameFarTooLarge => {
                let (mut ws, _) = member(server, "huge").await?;
                let _ = ws.send(Message::text("y".repeat(1_000_000))).await;
                closes_with(&mut ws, CloseCode::MessageTooBig).await?;
                Ok("closed 1009".into())
            }
            Kind::BinaryFrame => {
                let (mut ws, _) = member(server, "binary").await?;
                ws.send(Message::binary(vec![1, 2, 3]))
                    .await
                    .map_err(|err| err.to_string())?;
                let error = next_of(&mut ws, "error").await?;
                expect(code(&error) == Some(ErrorCode::InvalidMessage), &error)?;
                Ok("error INVALID_MESSAGE".into())
            }
            Kind::BadBatch => {
                let (mut ws, _) = member_v3(server, "batcher").await?;
                for frame in ["[]", r#"[{"type":"ping"}"#, r#"[[{"type":"ping"}]]"#] {
                    ws.send(Message::text(frame))
                        .await
                        .map_err(|err| err.to_string())?;
                    let error = next_of(&mut ws, "error").await?;
                    expect(code(&error) == Some(ErrorCode::InvalidMessage), &error)?;
                }
                // The connection goes on.
                let pong = request(&mut ws, "after", json!({"type": "ping"})).await?;
                expect(pong["type"] == "ack", &pong)?;
                Ok("error INVALID_MESSAGE for each; the connection goes on".into())
            }
            Kind::BatchFlood => {
                let (mut ws, _) = member_v3(server, "batch-flood").await?;
                let batch = format!("[{}]", vec![r#"{"type":"ping"}"#; 300].join(","));
                ws.send(Message::text(batch))
                    .await
                    .map_err(|err| err.to_string())?;
                let limited = next_of(&mut ws, "error").await?;
                expect(
                    code(&limited) == Some(ErrorCode::RateLimited)
                        && limited["payload"]["details"]["retryAfterMs"].is_u64(),
                    &limited,
                )?;
                closes_with(&mut ws, CloseCode::RateLimited).await?;
                Ok("RATE_LIMITED with retryAfterMs, then close 4004".into())
            }
            Kind::Flood => {
                let (mut ws, _) = member(server, "flood").await?;
                let mut sent = 0;
                for _ in 0..300 {
                    if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                let mut limited = None;
                let end = loop {
                    match tokio::time::timeout(WAIT, ws.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            let frame: Value = serde_json::from_str(&text).unwrap_or_default();
                            if code(&frame) == Some(ErrorCode::RateLimited) && limited.is_none() {
                                limited = Some(frame);
                            }
                        }
                        Ok(Some(Ok(Message::Close(frame)))) => {
                            break frame.map(|f| u16::from(f.code));
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => break None,
                    }
                };
                let limited =
                    limited.ok_or(format!("no RATE_LIMITED error after {sent} frames"))?;
                expect(
                    limited["payload"]["details"]["retryAfterMs"].is_u64(),
                    &limited,
                )?;
                expect(
                    end == Some(CloseCode::RateLimited.code()),
                    &format!("close {end:?}"),
                )?;
                Ok(format!(
                    "RATE_LIMITED with retryAfterMs after {sent} frames, then close 4004"
                ))
            }
            Kind::UserRate => {
                // USER_RATE_LIMIT_BURST is 8 (the join took one); three connections
                // at four messages each stay within each connection's own limit of 5.
                let (first, user) = member(server, "userrate").await?;
                let mut sockets = vec![first];
                for _ in 0..2 {
                    let mut ws = open(&server.ws(&format!("?token={}", crate::token(&user))), &[])
                        .await
                        .map_err(|err| err.to_string())?;
                    next_of(&mut ws, "connected").await?;
                    sockets.push(ws);
                }
                let (mut stored, mut limited) = (0, 0);
                for (c, ws) in sockets.iter_mut().enumerate() {
                    for i in 0..4 {
                        let id = format!("u{c}-{i}");
                        let reply = request(ws, &id, say("random", &id)).await?;
                        match code(&reply) {
                            None => stored += 1,
                            Some(ErrorCode::RateLimited) => limited += 1,
                            _ => return Err(format!("got {reply}")),
                        }
                    }
                }
                expect(
                    (6..=9).contains(&stored) && limited > 0,
                    &format!("{stored} stored, {limited} limited"),
                )?;
                Ok(format!(
                    "{stored} of 12 stored across 3 connections, {limited} RATE_LIMITED"
                ))
            }
            Kind::UserConnections => {
                let user = unique("conns");
                let url = server.ws(&format!("?token={}", crate::token(&user)));
                let mut held = Vec::new();
                for _ in 0..3 {
                    let mut ws = open(&url, &[]).await.map_err(|err| err.to_string())?;
                    next_of(&mut ws, "connected").await?;
                    held.push(ws);
                }
                let mut extra = open(&url, &[]).await.map_err(|err| err.to_string())?;
                refused(&mut extra, ErrorCode::RateLimited, CloseCode::TryAgainLater).await?;
                Ok("the 4th: error RATE_LIMITED, close 1013".into())
            }
            Kind::SlowReader => {
                let server = &start(
                    &self.binary,
                    &self.dir.join("small-queue"),
                    &[("OUTBOUND_QUEUE", "8")],
                )
                .await?;
                let (mut slow, user) = member(server, "slow").await?;
                let event = json!({
                    "userId": user,
                    "message": {"type": "event", "payload": {"name": "bulk", "data": "z".repeat(3_900)}}
                });
                let mut pushed = 0;
                for _ in 0..3_000 {
                    let (_, delivery) =
                        admin_json(http.post(server.http("/api/messages/user")).json(&event))
                            .await?;
                    if delivery["connectionsReached"] == 0 {
                        break;
                    }
                    pushed += 1;
                }
                closes_with(&mut slow, CloseCode::SlowConsumer).await?;
                Ok(format!("closed 4006 after {pushed} pushed frames"))
            }
            Kind::Silence => {
                let (mut ws, _) = member(server, "silent").await?;
                // Not reading: the server's pings go unanswered.
                tokio::time::sleep(Duration::from_millis(3_200)).await;
                closes_with(&mut ws, CloseCode::IdleTimeout).await?;
                Ok("closed 4007".into())
            }
            Kind::SilentTcp => {
                let started = Instant::now();
                let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
                    .await
                    .map_err(|err| err.to_string())?;
                let mut buf = [0u8; 64];
                let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
                expect(matches!(read, Ok(Ok(0)) | Ok(Err(_))), &format!("{read:?}"))?;
                Ok(format!("closed after {} ms", started.elapsed().as_millis()))
            }
            Kind::Slowloris => {
                let started = Instant::now();
                let mut tcp = TcpStream::connect(("127.0.0.1", server.port))
                    .await
                    .map_err(|err| err.to_string())?;
                let lines = [
                    "GET /ws HTTP/1.1\r\n",
                    "Host: 127.0.0.1\r\n",
                    "Upgrade: websocket\r\n",
                    "Connection: Upgrade\r\n",
                    "X-Slow-1: a\r\n",
                    "X-Slow-2: b\r\n",
                    "X-Slow-3: c\r\n",
                    "X-Slow-4: d\r\n",
                ];
                for line in lines {
                    if tcp.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let mut buf = [0u8; 256];
                let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
                let closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
                expect(
                    closed && started.elapsed() < Duration::from_secs(4),
                    &format!("{read:?} after {:?}", started.elapsed()),
                )?;
                Ok(format!(
                    "closed after {} ms, headers unfinished",
                    started.elapsed().as_millis()
                ))
            }
            Kind::ConnectionCap => {
                let capped = start(
                    &self.binary,
                    &self.dir.join("capped"),
                    &[("MAX_CONNECTIONS", "4")],
                )
                .await?;
                // Silent connections until one is closed at once: the cap is full
                // (the health check's own connection may still hold a place a moment).
                let mut held = Vec::new();
                loop {
                    let mut tcp = TcpStream::connect(("127.0.0.1", capped.port))
                        .await
                        .map_err(|err| err.to_string())?;
                    let mut buf = [0u8; 1];
                    let read = tokio::time::timeout(Duration::from_millis(150), tcp.read(&mut buf));
                    if matches!(read.await, Ok(Ok(0) | Err(_))) {
                        break;
                    }
                    held.push(tcp);
                    if held.len() > 4 {
                        return Err("more than MAX_CONNECTIONS=4 held open".into());
                    }
                }
                let refused = open(&capped.ws(&format!("?token={}", crate::token("cap"))), &[])
                    .await
                    .is_err();
                expect(refused, &"a WebSocket over the cap was served")?;
                let held_count = held.len();
                drop(held);
                let mut healthy = false;
                for _ in 0..50 {
                    if http
                        .get(capped.http("/healthz"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                    {
                        healthy = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                expect(healthy, &"no /healthz after the connections closed")?;
                Ok(format!(
                    "{held_count} held, the next closed at once, a WebSocket too; /healthz answers once they close"
                ))
            }
            Kind::NoAuth => {
                let mut ws = open(&server.ws(""), &[])
                    .await
                    .map_err(|err| err.to_string())?;
                refused(&mut ws, ErrorCode::AuthFailed, CloseCode::AuthFailed).await?;
                Ok("error AUTH_FAILED, close 4001".into())
            }
            Kind::BeforeAuth => {
                let mut ws = open(&server.ws(""), &[])
                    .await
                    .map_err(|err| err.to_string())?;
                let marker = unique("before-auth");
                send(&mut ws, &say("random", &marker)).await?;
                refused(&mut ws, ErrorCode::AuthFailed, CloseCode::AuthFailed).await?;
                let (_, history) =
                    admin_json(http.get(server.http("/api/chats/random/messages?limit=100")))
                        .await?;
                expect(
                    !history.to_string().contains(&marker),
                    &"the message was stored",
                )?;
                Ok("error AUTH_FAILED, close 4001, nothing stored".into())
            }
            Kind::BadTokens => {
                let now = now();
                let forged = jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                    &json!({"sub": "mallory", "exp": now + 3600}),
                    &jsonwebtoken::EncodingKey::from_secret(b"not-the-servers-secret"),
                )
                .unwrap_or_default();
                let none = format!(
                    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                    base64_url(&json!({"sub": "mallory", "exp": now + 3600}).to_string())
                );
                let no_exp = signed(&json!({"sub": "mallory"}));
                let mut seen = Vec::new();
                for (name, token) in [
                    ("forged", forged),
                    ("garbage", "garbage".to_owned()),
                    ("alg none", none),
                    ("no exp", no_exp),
                ] {
                    let (message, end) = auth_failure(server, &token).await?;
                    for internal in ["JSON", "Base64", "variant", "line ", "column"] {
                        expect(!message.contains(internal), &message)?;
                    }
                    expect(
                        end == Ending::Closed(CloseCode::AuthFailed.code()),
                        &format!("{name}: {end:?}"),
                    )?;
                    seen.push(format!("{name}: 4001"));
                }
                Ok(seen.join(", "))
            }
            Kind::Expired => {
                let expired = signed(&json!({"sub": "late", "exp": 1_000_000_000}));
                let (_, end) = auth_failure(server, &expired).await?;
                expect(
                    end == Ending::Closed(CloseCode::TokenExpired.code()),
                    &format!("{end:?}"),
                )?;
                Ok("error AUTH_FAILED, close 4002".into())
            }
            Kind::ClockOverflow => {
                let overflow = signed(&json!({"sub": "far", "exp": 1u64 << 63}));
                let early =
                    signed(&json!({"sub": "early", "nbf": now() + 3600, "exp": now() + 7200}));
                let mut seen = Vec::new();
                for (name, token) in [("exp 2^63", &overflow), ("nbf +1h", &early)] {
                    let (_, end) = auth_failure(server, token).await?;
                    expect(
                        end == Ending::Closed(CloseCode::AuthFailed.code()),
                        &format!("{name}: {end:?}"),
                    )?;
                    let status = http
                        .get(server.http("/api/me"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .map_err(|err| err.to_string())?
                        .status();
                    expect(status == 401, &format!("{name}: HTTP {status}"))?;
                    seen.push(format!("{name}: 4001, HTTP 401"));
                }
                Ok(seen.join("; "))
            }
            Kind::MidSessionOverflow => {
                let (mut ws, user) = member(server, "midsession").await?;
                let overflow = signed(&json!({"sub": user, "exp": 1u64 << 63}));
                let reply = request(
                    &mut ws,
                    "reauth",
                    json!({"type": "auth", "payload": {"token": overflow}}),
                )
                .await?;
                expect(code(&reply) == Some(ErrorCode::AuthFailed), &reply)?;
                let alive =
                    request(&mut ws, "alive", json!({"type": "ping", "payload": {}})).await?;
                expect(alive["type"] == "ack", &alive)?;
                ws.close(None).await.map_err(|err| err.to_string())?;
                let _ = ending(&mut ws).await;
                let mut offline = false;
                for _ in 0..50 {
                    let (_, status) =
                        admin_json(http.get(server.http(&format!("/api/users/{user}/status"))))
                            .await?;
                    if status["online"] == false {
                        offline = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                expect(offline, &"the user stayed online")?;
                Ok("error AUTH_FAILED, the session went on, offline after close".into())
            }
            Kind::WrongOrigin => {
                let url = server.ws(&format!("?token={}", crate::token("origin")));
                match open(&url, &[("origin", "https://evil.example")]).await {
                    Err(tungstenite::Error::Http(response)) if response.status() == 403 => {
                        Ok("HTTP 403".into())
                    }
                    Err(err) => Err(format!("got {err}")),
                    Ok(_) => Err("the handshake succeeded".into()),
                }
            }
            Kind::AnyOriginCookie => {
                let open_server = start(
                    &self.binary,
                    &self.dir.join("any-origin"),
                    &[("CORS_ORIGIN", "*")],
                )
                .await?;
                let cookie = format!("authToken={}", crate::token("alice"));
                let response = http
                    .get(open_server.http("/api/me"))
                    .header("origin", "https://evil.example")
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .map_err(|err| err.to_string())?;
                let status = response.status();
                let credentials = response
                    .headers()
                    .contains_key("access-control-allow-credentials");
                expect(
                    status == 401 && !credentials,
                    &format!("HTTP {status}, credentials {credentials}"),
                )?;
                let mut ws = open(
                    &open_server.ws(""),
                    &[("origin", "https://evil.example"), ("cookie", &cookie)],
                )
                .await
                .map_err(|err| err.to_string())?;
                send(&mut ws, &json!({"type": "ping", "payload": {}})).await?;
                let error = next(&mut ws).await?;
                expect(code(&error) == Some(ErrorCode::AuthFailed), &error)?;
                Ok("HTTP 401 without credentials; the socket: AUTH_FAILED".into())
            }
            Kind::Version => {
                let url = server.ws(&format!("?token={}", crate::token("version")));
                let mut ws = open(&url, &[("sec-websocket-protocol", "relaywire.v99")])
                    .await
                    .map_err(|err| err.to_string())?;
                let error = next(&mut ws).await?;
                expect(error["type"] == "error", &error)?;
                closes_with(&mut ws, CloseCode::UnsupportedVersion).await?;
                Ok("error, close 4005".into())
            }
            Kind::NotParticipant => {
                let (mut ws, _) = member(server, "outsider").await?;
                let closed = request(&mut ws, "c1", say("design", "hi")).await?;
                let missing = request(&mut ws, "c2", say("no-such-chat", "hi")).await?;
                expect(
                    code(&closed) == Some(ErrorCode::NotParticipant)
                        && code(&missing) == Some(ErrorCode::NotParticipant),
                    &format!("{closed} / {missing}"),
                )?;
                expect(
                    closed["payload"]["message"]
                        .as_str()
                        .map(|m| m.replace("design", ""))
                        == missing["payload"]["message"]
                            .as_str()
                            .map(|m| m.replace("no-such-chat", "")),
                    &format!("{closed} / {missing}"),
                )?;
                Ok("NOT_PARTICIPANT for both, alike".into())
            }
            Kind::Resend => {
                let (mut ws, _) = member(server, "resend").await?;
                let content = unique("once");
                let first = request(&mut ws, "r1", say("random", &content)).await?;
                let again = request(&mut ws, "r1", say("random", &content)).await?;
                expect(
                    first["type"] == "ack"
                        && first["payload"]["messageId"] == again["payload"]["messageId"],
                    &format!("{first} / {again}"),
                )?;
                let (_, history) =
                    admin_json(http.get(server.http("/api/chats/random/messages?limit=100")))
                        .await?;
                let stored = history.to_string().matches(&content).count();
                expect(stored == 1, &format!("stored {stored} times"))?;
                Ok("the same ack; stored once".into())
            }
            Kind::IdReused => {
                let (mut ws, _) = member(server, "reuse").await?;
                let first = request(&mut ws, "k1", say("random", "first")).await?;
                expect(first["type"] == "ack", &first)?;
                let other = request(&mut ws, "k1", say("random", "other")).await?;
                expect(code(&other) == Some(ErrorCode::IdReused), &other)?;
                // DEDUP_WINDOW is 1500 ms here; forgotten within a second after.
                keep_reading(&mut ws, Duration::from_millis(2_800)).await;
                let later = request(&mut ws, "k1", say("random", "later")).await?;
                expect(later["type"] == "ack", &later)?;
                Ok("ID_REUSED; after the window, a new ack".into())
            }
            Kind::BadBody => {
                let (status, body) = admin_json(
                    http.post(server.http("/api/chats"))
                        .header("content-type", "application/json")
                        .body(r#"{"title": 5}"#),
                )
                .await?;
                expect(
                    status == 400 && body["error"]["code"] == ErrorCode::ValidationError.as_str(),
                    &format!("{status} {body}"),
                )?;
                Ok("400 VALIDATION_ERROR".into())
            }
            Kind::Dotfiles => {
                let mut seen = Vec::new();
                for path in ["/.env", "/%2Eenv", "/linked/secret.txt", "/index.html"] {
                    let response = http
                        .get(server.http(path))
                        .send()
                        .await
                        .map_err(|err| err.to_string())?;
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    let want = if path == "/index.html" { 200 } else { 404 };
                    expect(
                        status == want && !body.contains("SECRET"),
                        &format!("{path}: {status}"),
                    )?;
                    seen.push(format!("{path} {status}"));
                }
                Ok(seen.join(", "))
            }
            Kind::BadQuery => {
                let response = http
                    .get(server.http("/api/chats/random/messages?limit=many"))
                    .bearer_auth(SERVICE_KEY)
                    .send()
                    .await
                    .map_err(|err| err.to_string())?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                expect(
                    status == 400 && body["error"]["code"] == ErrorCode::ValidationError.as_str(),
                    &format!("{status} {body}"),
                )?;
                Ok("400 VALIDATION_ERROR as JSON".into())
            }
            Kind::PerUserSeq => {
                let loner = unique("loner");
                let url = server.ws(&format!("?token={}", crate::token(&loner)));
                let mut ws = open(&url, &[]).await.map_err(|err| err.to_string())?;
                let before = next_of(&mut ws, "connected").await?["payload"]["seq"].clone();
                drop(ws);
                let (mut talker, _) = member(server, "talker").await?;
                for i in 0..3 {
                    request(&mut talker, &format!("t{i}"), say("random", "busy")).await?;
                }
                let mut ws = open(&url, &[]).await.map_err(|err| err.to_string())?;
                let after = next_of(&mut ws, "connected").await?["payload"]["seq"].clone();
                expect(before == after, &format!("seq {before} then {after}"))?;
                Ok(format!("seq {before} before and after"))
            }
            Kind::SecureCookie => {
                let response = http
                    .post(server.http("/auth/dev-login"))
                    .header("x-forwarded-proto", "https")
                    .json(&json!({"userId": unique("secure")}))
                    .send()
                    .await
                    .map_err(|err| err.to_string())?;
                let cookie = response
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                expect(
                    cookie.contains("HttpOnly")
                        && cookie.contains("SameSite")
                        && cookie.contains("Secure"),
                    &cookie,
                )?;
                Ok("HttpOnly; SameSite; Secure".into())
            }
            Kind::TokensNotLogged => {
                let user = unique("logged");
                let token = crate::token(&user);
                let mut ws = open(&server.ws(&format!("?token={token}")), &[])
                    .await
                    .map_err(|err| err.to_string())?;
                next_of(&mut ws, "connected").await?;
                request(
                    &mut ws,
                    "a1",
                    json!({"type": "auth", "payload": {"token": token}}),
                )
                .await?;
                drop(ws);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let log = std::fs::read_to_string(&server.log).map_err(|err| err.to_string())?;
                let signature = token.rsplit('.').next().unwrap_or(&token);
                expect(
                    !log.is_empty() && !log.contains(signature),
                    &"the token in the log",
                )?;
                Ok(format!("{} log lines, no token", log.lines().count()))
            }
            Kind::BadConfig => {
                let mut seen = Vec::new();
                for (name, value) in [
                    ("SERVICE_KEYS", "a"),
                    ("CORS_ORIGIN", "localhost"),
                    ("USER_CONNECTION_LIMIT", "0"),
                    ("DEDUP_WINDOW", "forever"),
                    ("WS_PORT", "http"),
                ] {
                    refused_start(&self.binary, &self.dir, &[(name, value)], name)?;
                    seen.push(name);
                }
                Ok(format!("exit 2 naming {}", seen.join(", ")))
            }
            Kind::OtherDatabase => {
                refused_start(
                    &self.binary,
                    &self.dir,
                    &[("DATABASE_URL", "mysql://127.0.0.1/chat")],
                    "DATABASE_URL",
                )?;
                Ok("exit 2 naming DATABASE_URL".into())
            }
            Kind::ClusterWithoutSharedStore => {
                refused_start(
                    &self.binary,
                    &self.dir,
                    &[("REDIS_URL", "redis://127.0.0.1:9/")],
                    "REDIS_URL",
                )?;
                Ok("exit 2 naming REDIS_URL".into())
            }
            Kind::HooksOffLoopback => {
                refused_start(
                    &self.binary,
                    &self.dir,
                    &[("TEST_HOOKS", "true"), ("BIND_ADDR", "0.0.0.0")],
                    "TEST_HOOKS",
                )?;
                Ok("exit 2 naming TEST_HOOKS".into())
            }
            Kind::Warnings => {
                let log = std::fs::read_to_string(&server.log).map_err(|err| err.to_string())?;
                let warned = |switch: &str| {
                    log.lines().any(|line| {
                        line.contains("WARN") && line.contains(&format!("{switch} is on"))
                    })
                };
                expect(warned("DEV_LOGIN") && warned("TEST_HOOKS"), &"no warning")?;
                Ok("a WARN line for each".into())
            }
            Kind::BlockedStdout => blocked_stdout(&self.binary, &self.dir).await,
        }
    }
}

fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Connects with `token` and returns the error's message and how the socket ended.
async fn auth_failure(server: &Running, token: &str) -> Result<(String, Ending), String> {
    let mut ws = open(&server.ws(&format!("?token={token}")), &[])
        .await
        .map_err(|err| err.to_string())?;
    let error = next(&mut ws).await?;
    expect(code(&error) == Some(ErrorCode::AuthFailed), &error)?;
    let message = error["payload"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((message, ending(&mut ws).await))
}

/// Starts the binary with `vars` and expects exit 2 naming `name`, leaving no file.
fn refused_start(
    binary: &Path,
    dir: &Path,
    vars: &[(&str, &str)],
    name: &str,
) -> Result<(), String> {
    let cwd = dir.join(unique("refused"));
    std::fs::create_dir_all(&cwd).map_err(|err| err.to_string())?;
    let mut command = Command::new(binary);
    command
        .env_clear()
        .current_dir(&cwd)
        .env("JWT_SECRET", SECRET)
        .envs(vars.iter().copied());
    if !vars.iter().any(|(key, _)| *key == "DATABASE_URL") {
        command.env("DATABASE_URL", ":memory:");
    }
    let output = command.output().map_err(|err| err.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    expect(
        output.status.code() == Some(2) && stderr.contains(name),
        &format!("{:?}: {stderr}", output.status.code()),
    )?;
    let left = std::fs::read_dir(&cwd).map_or(0, |dir| dir.count());
    expect(left == 0, &format!("{left} files created"))?;
    Ok(())
}

/// Starts the binary with a pipe for standard output that is never read, makes it
/// log, and stops it with SIGTERM.
async fn blocked_stdout(binary: &Path, dir: &Path) -> Outcome {
    let dir = dir.join("blocked-stdout");
    std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
    let port = free_port()?;
    let mut child = Command::new(binary)
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .env("WS_PORT", port.to_string())
        .env("DATABASE_URL", ":memory:")
        .env("LOG_LEVEL", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Far more log than a pipe holds.
    while answered < 2_000 && Instant::now() < deadline {
        if http.get(&url).send().await.is_ok() {
            answered += 1;
        }
        let _ = open(&format!("ws://127.0.0.1:{port}/ws?token=bad"), &[]).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|err| err.to_string())? {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(15) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let status = status.ok_or("still running 15 s after SIGTERM")?;
    expect(status.code() == Some(0), &format!("{status}"))?;
    Ok(format!(
        "exit 0, {} ms after SIGTERM ({answered} requests logged into a full pipe)",
        started.elapsed().as_millis()
    ))
}

/// Writes the static folder the probes read: a page, a dotfile and a link out.
fn static_folder(dir: &Path) -> Result<PathBuf, String> {
    let site = dir.join("static");
    let outside = dir.join("outside");
    for folder in [&site, &outside] {
        std::fs::create_dir_all(folder).map_err(|err| err.to_string())?;
    }
    let write = |path: PathBuf, text: &str| std::fs::write(path, text).map_err(|e| e.to_string());
    write(
        site.join("index.html"),
        "<!doctype html><title>probe</title>",
    )?;
    write(site.join(".env"), "JWT_SECRET=SECRET")?;
    write(outside.join("secret.txt"), "SECRET")?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, site.join("linked")).map_err(|err| err.to_string())?;
    Ok(site)
}

/// Runs every probe against `binary`; prints each and what it got. `Ok` when all
/// held.
pub async fn run(binary: &Path) -> Result<(), String> {
    let dir = std::env::temp_dir().join(unique("relaywire-probe"));
    let site = static_folder(&dir)?;
    let site = site.display().to_string();
    let main = start(
        binary,
        &dir.join("main"),
        &[
            ("CORS_ORIGIN", "http://app.example"),
            ("HEADER_READ_TIMEOUT", "1000"),
            ("AUTH_TIMEOUT", "1000"),
            ("HEARTBEAT_INTERVAL", "1000"),
            ("CONNECTION_TIMEOUT", "2500"),
            ("RATE_LIMIT", "5"),
            ("RATE_LIMIT_BURST", "5"),
            ("USER_RATE_LIMIT", "1"),
            ("USER_RATE_LIMIT_BURST", "8"),
            ("USER_CONNECTION_LIMIT", "3"),
            ("DEDUP_WINDOW", "1500"),
            ("STATIC_DIR", &site),
            ("DEV_LOGIN", "true"),
            ("TEST_HOOKS", "true"),
            ("LOG_LEVEL", "trace"),
        ],
    )
    .await?;
    let bench = Bench {
        main,
        binary: binary.to_owned(),
        dir: dir.clone(),
    };
    let mut failed = 0;
    for probe in PROBES {
        let started = Instant::now();
        let outcome = bench.run(probe.kind).await;
        let took = started.elapsed().as_millis();
        match outcome {
            Ok(seen) => println!(
                "ok    {:?} ({took} ms): {}\n      got {seen}",
                probe.kind, probe.input
            ),
            Err(why) => {
                failed += 1;
                println!(
                    "FAIL  {:?} ({took} ms): {}\n      wanted {}\n      {why}",
                    probe.kind, probe.input, probe.answer
                );
            }
        }
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} probes failed", PROBES.len())),
    }
}
