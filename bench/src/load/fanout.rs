//! Fan-out: one sender posts to a chat of many participants, keeping a window of
//! unacknowledged messages in flight; every participant's connection counts what it
//! receives and how long each message took from the sender's write to its read.

use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use relaywire_chat::{ClientEnvelope, SendMessage};
use relaywire_protocol::{ACK_FIELD, encode};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::connection::{Socket, next_text, open};
use super::cpu::{self, ThreadTime};
use super::process::{Kind, SERVICE_KEY, Server};
use crate::Result;
use crate::stats::percentile;

/// Connections opened at once.
const CONCURRENCY: usize = 64;
/// A run that takes longer has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// What every message's content starts with, before its send time in microseconds.
const STAMP: &str = "t:";

/// One fan-out run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fanout {
    /// Participants receiving (the sender's own copy is not counted).
    pub(crate) receivers: usize,
    /// Messages sent.
    pub(crate) messages: usize,
    /// Deliveries counted: `receivers × messages` when nothing is lost.
    pub(crate) delivered: u64,
    /// From the first send to the last delivery.
    pub(crate) seconds: f64,
    /// Deliveries per second.
    pub(crate) per_second: f64,
    /// WebSocket frames the participants read: fewer than `delivered` when the server
    /// sends several messages in one frame.
    pub(crate) frames: u64,
    /// Delivery latency, milliseconds.
    pub(crate) p50_ms: f64,
    /// Delivery latency, milliseconds.
    pub(crate) p99_ms: f64,
    /// Where the server spent the run: CPU seconds by thread.
    pub(crate) server_cpu: Vec<ThreadTime>,
    /// CPU seconds the load generator itself used (it shares the machine).
    pub(crate) generator_cpu_seconds: f64,
}

fn micros_now() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The send times stamped into a delivered frame (several in a batch frame), found
/// without parsing the frame so the generator spends as little as possible of the
/// machine.
fn stamps(frame: &str) -> impl Iterator<Item = u64> + '_ {
    const KEY: &str = "\"content\":\"t:";
    frame.match_indices(KEY).filter_map(|(at, _)| {
        let digits = &frame[at + KEY.len()..];
        let end = digits.find(|c: char| !c.is_ascii_digit())?;
        digits[..end].parse().ok()
    })
}

/// Creates the chat on the reference server (Socket.IO rooms need nothing).
async fn create_chat(server: &Server, chat: &str, users: &[String]) -> Result {
    if server.kind != Kind::Relaywire {
        return Ok(());
    }
    let body = serde_json::json!({ "id": chat, "title": chat, "participantIds": users });
    reqwest::Client::new()
        .post(format!("{}/api/chats", server.http_url()))
        .bearer_auth(SERVICE_KEY)
        .json(&body)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(|err| format!("cannot create {chat}: {err}"))
}

/// A receiver: counts deliveries of `chat` until `expected`, returning the latencies
/// and how many frames carried them.
async fn receive(mut socket: Socket, expected: usize) -> Result<(Vec<f64>, u64)> {
    let mut latencies = Vec::with_capacity(expected);
    let mut frames = 0;
    while latencies.len() < expected {
        let frame = next_text(&mut socket).await?;
        frames += 1;
        let now = micros_now();
        for sent in stamps(&frame) {
            latencies.push(now.saturating_sub(sent) as f64 / 1000.0);
        }
    }
    Ok((latencies, frames))
}

fn frame(kind: Kind, chat: &str, id: usize) -> Result<String> {
    let content = format!("{STAMP}{}", micros_now());
    match kind {
        Kind::Relaywire => encode(&ClientEnvelope::with_id(
            format!("m{id}"),
            SendMessage {
                chat_id: chat.to_owned(),
                content,
            },
        ))
        .map_err(|err| err.to_string()),
        Kind::SocketIo => {
            let payload = serde_json::json!({ "chatId": chat, "content": content });
            Ok(format!("42{id}[\"chat:message\",{payload}]"))
        }
    }
}

/// How many of the sender's messages a frame acknowledges: Relaywire's `ack`s and
/// (protocol 3) the sender's copies carrying one, in a batch or alone; Socket.IO's
/// acknowledgement packets.
fn acks_in(kind: Kind, frame: &str) -> usize {
    match kind {
        Kind::Relaywire => {
            let acknowledges = |message: &serde_json::Value| {
                message["type"] == "ack" || message.get(ACK_FIELD).is_some()
            };
            match serde_json::from_str::<serde_json::Value>(frame) {
                Ok(serde_json::Value::Array(messages)) => {
                    messages.iter().filter(|m| acknowledges(m)).count()
                }
                Ok(message) => usize::from(acknowledges(&message)),
                Err(_) => 0,
            }
        }
        Kind::SocketIo => usize::from(frame.starts_with("43")),
    }
}

/// Reads the sender's acks, returning a window slot for each.
async fn read_acks(
    kind: Kind,
    mut stream: SplitStream<Socket>,
    window: Arc<Semaphore>,
    messages: usize,
) -> Result {
    let mut acked = 0;
    while acked < messages {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                let acks = acks_in(kind, text.as_str());
                acked += acks;
                window.add_permits(acks);
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("the sender was closed: {frame:?}"));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.to_string()),
            None => return Err("the sender's connection ended".to_owned()),
        }
    }
    Ok(())
}

async fn send_all(
    kind: Kind,
    mut sink: SplitSink<Socket, Message>,
    chat: &str,
    messages: usize,
    window: Arc<Semaphore>,
) -> Result<SplitSink<Socket, Message>> {
    for id in 1..=messages {
        window
            .acquire()
            .await
            .map_err(|err| err.to_string())?
            .forget();
        sink.send(Message::text(frame(kind, chat, id)?))
            .await
            .map_err(|err| err.to_string())?;
    }
    Ok(sink)
}

/// One run: `receivers` participants, `messages` sent with `window` in flight. With
/// several `nodes` (one deployment), participants are spread over them in turn, as a
/// load balancer would; the sender is on the first.
pub(crate) async fn run(
    nodes: &[Server],
    run: usize,
    receivers: usize,
    messages: usize,
    window: usize,
) -> Result<Fanout> {
    let server = nodes.first().ok_or("no server to run against")?;
    let chat = format!("fanout-{run}");
    let users: Vec<String> = (0..=receivers).map(|i| format!("fan-{run}-{i}")).collect();
    create_chat(server, &chat, &users).await?;
    let chats = [chat.clone()];
    let mut sockets = Vec::with_capacity(users.len());
    let mut opening = futures_util::stream::iter(
        users
            .iter()
            .enumerate()
            .map(|(i, user)| open(&nodes[i % nodes.len()], user, &chats)),
    )
    .buffered(CONCURRENCY);
    while let Some(socket) = opening.next().await {
        sockets.push(socket?);
    }
    // Presence notices of everyone joining settle before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sender = sockets.remove(0);
    let mut tasks = JoinSet::new();
    for socket in sockets {
        tasks.spawn(receive(socket, messages));
    }

    let pids = nodes.iter().map(Server::pid).collect::<Result<Vec<_>>>()?;
    let server_before: Vec<_> = pids.iter().map(|pid| cpu::snapshot(*pid)).collect();
    let generator_before = cpu::snapshot(std::process::id());
    let started = Instant::now();
    let (sink, stream) = sender.split();
    let slots = Arc::new(Semaphore::new(window));
    let acks = tokio::spawn(read_acks(server.kind, stream, Arc::clone(&slots), messages));
    let everything = async {
        let sink = send_all(server.kind, sink, &chat, messages, slots).await?;
        let mut latencies = Vec::with_capacity(receivers * messages);
        let mut frames = 0;
        while let Some(result) = tasks.join_next().await {
            let (received, read) = result.map_err(|err| err.to_string())??;
            latencies.extend(received);
            frames += read;
        }
        let seconds = started.elapsed().as_secs_f64();
        acks.await.map_err(|err| err.to_string())??;
        drop(sink);
        Ok::<_, String>((latencies, frames, seconds))
    };
    let (latencies, frames, seconds) = tokio::time::timeout(RUN_TIMEOUT, everything)
        .await
        .map_err(|_| format!("the fan-out did not finish within {RUN_TIMEOUT:?}"))??;
    let server_cpu = pids
        .iter()
        .zip(&server_before)
        .flat_map(|(pid, before)| cpu::used(before, &cpu::snapshot(*pid)))
        .collect();
    let generator_cpu_seconds = cpu::used(&generator_before, &cpu::snapshot(std::process::id()))
        .iter()
        .map(|t| t.seconds)
        .sum();
    let delivered = latencies.len() as u64;
    Ok(Fanout {
        receivers,
        messages,
        delivered,
        seconds,
        per_second: delivered as f64 / seconds,
        frames,
        p50_ms: percentile(&latencies, 50.0).unwrap_or(f64::NAN),
        p99_ms: percentile(&latencies, 99.0).unwrap_or(f64::NAN),
        server_cpu,
        generator_cpu_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::{Kind, STAMP, acks_in, stamps};

    #[test]
    fn the_send_times_are_found_in_either_servers_frames() {
        assert_eq!(STAMP, "t:", "the key stamps() looks for");
        let relaywire = r#"{"type":"chat:message","payload":{"chatId":"c","message":{"id":"1","content":"t:1234","senderId":"u"},"seq":3}}"#;
        let socketio =
            r#"42["chat:message",{"chatId":"c","message":{"content":"t:99","senderId":"u"}}]"#;
        let batch = format!("[{relaywire},{relaywire}]");
        assert_eq!(stamps(relaywire).collect::<Vec<_>>(), [1234]);
        assert_eq!(stamps(&batch).collect::<Vec<_>>(), [1234, 1234]);
        assert_eq!(stamps(socketio).collect::<Vec<_>>(), [99]);
        assert_eq!(stamps(r#"{"type":"user:online"}"#).count(), 0);
    }

    #[test]
    fn acknowledgements_are_counted_alone_in_copies_and_in_batches() {
        let ack = r#"{"type":"ack","payload":{"id":"m1"}}"#;
        let copy = r#"{"type":"chat:message","payload":{},"ack":{"id":"m2","messageId":"x"}}"#;
        let plain = r#"{"type":"chat:message","payload":{}}"#;
        assert_eq!(acks_in(Kind::Relaywire, ack), 1);
        assert_eq!(acks_in(Kind::Relaywire, copy), 1);
        assert_eq!(acks_in(Kind::Relaywire, plain), 0);
        assert_eq!(
            acks_in(Kind::Relaywire, &format!("[{ack},{plain},{copy}]")),
            2
        );
        assert_eq!(acks_in(Kind::SocketIo, "43[{}]"), 1);
    }
}
