//! The chaos test: several clients send numbered messages to one chat through a proxy
//! that cuts, stalls and delays their connections on a seeded schedule, while the
//! server is killed and restarted. At the end every sender's messages must be stored
//! once each, in the order sent, and every participant must have received every stored
//! message once, in order.
//!
//! With `CHAOS_CLUSTER=n`, the server is `n` nodes on a private PostgreSQL and Redis,
//! behind the proxy as behind a load balancer, and the chaos kills nodes (SIGKILL),
//! restarts Redis (which loses everything: no persistence) and restarts PostgreSQL.
//!
//! `cargo xtask test chaos` builds what it needs and runs it, on one node and on three;
//! `CHAOS_SEED` replays a schedule, `CHAOS_SECONDS` sets how long the chaos lasts and
//! `CHAOS_MESSAGES` how many messages each client sends (`cargo xtask chaos --long`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relaywire_chat::http::MessagePage;
use relaywire_chat::{ChatProtocol, ClientMessage, SendMessage, ServerMessage};
use relaywire_client::core::{Auth, HeartbeatPolicy, ReconnectPolicy, Status};
use relaywire_client::native::{Client, Options};
use relaywire_tests::chaos::{ChaosProxy, Rng};
use relaywire_tests::services::{Postgres, Redis};
use relaywire_tests::{SECRET, token, wait_healthy};

const NATIVE_CLIENTS: usize = 3;
/// Messages each client sends, unless `CHAOS_MESSAGES` says otherwise.
const MESSAGES_PER_CLIENT: usize = 120;
const SEND_INTERVAL: Duration = Duration::from_millis(40);
const SERVICE_KEY: &str = "chaos-service-key";
const CHAT: &str = "chaos";
/// How long a (re)started server may take to answer `/healthz`.
const HEALTHY_WITHIN: Duration = Duration::from_secs(10);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

type Result<T = ()> = std::result::Result<T, String>;

/// The reference server as a child process, so it can be killed outright.
struct ServerProcess {
    binary: PathBuf,
    port: u16,
    data_dir: PathBuf,
    static_dir: Option<PathBuf>,
    /// `DATABASE_URL`, and `REDIS_URL` for a node of a cluster.
    database: String,
    redis: Option<String>,
    child: Option<Child>,
}

impl ServerProcess {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) -> Result {
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .env("JWT_SECRET", SECRET)
            .env("WS_PORT", self.port.to_string())
            .env("DATA_DIR", &self.data_dir)
            .env("DATABASE_URL", &self.database)
            .env("SERVICE_KEYS", SERVICE_KEY)
            .env("HEARTBEAT_INTERVAL", "1000")
            .env("CONNECTION_TIMEOUT", "10000")
            .env("RATE_LIMIT", "10000")
            .env("RATE_LIMIT_BURST", "10000")
            .env("USER_RATE_LIMIT", "10000")
            .env("USER_RATE_LIMIT_BURST", "10000")
            .env("OUTBOUND_QUEUE", "8192")
            .env("CORS_ORIGIN", self.url())
            .env("LOG_LEVEL", "warn")
            .env("EXIT_ON_STDIN_CLOSE", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if let Some(dir) = &self.static_dir {
            command.env("STATIC_DIR", dir);
        }
        if let Some(redis) = &self.redis {
            command
                .env("REDIS_URL", redis)
                .env("REDIS_KEY_PREFIX", "chaos");
        }
        self.child = Some(
            command
                .spawn()
                .map_err(|err| format!("cannot start {}: {err}", self.binary.display()))?,
        );
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until every node's store answers again (`/readyz`).
async fn wait_ready(http: &reqwest::Client, servers: &[ServerProcess]) -> Result {
    let deadline = tokio::time::Instant::now() + HEALTHY_WITHIN;
    for server in servers {
        loop {
            let ready = http
                .get(format!("{}/readyz", server.url()))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{} is not ready again", server.url()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// What one client did.
#[derive(Debug, Default)]
struct Record {
    sent: Vec<String>,
    received: Vec<String>,
    opens: u64,
}

fn native_options(url: &str, user: &str) -> Options<ChatProtocol> {
    let mut options = Options::new(url, Auth::Token(token(user)));
    options.core.reconnect = ReconnectPolicy {
        initial_delay_ms: 50,
        max_delay_ms: 500,
        ..ReconnectPolicy::default()
    };
    options.core.heartbeat = Some(HeartbeatPolicy {
        interval_ms: 1_000,
        timeout_ms: 1_000,
    });
    options.core.connect_timeout_ms = 2_000;
    options.core.queue_size = 10_000;
    options
}

/// The browser client, driven by `chaos-browser.mjs` over stdin and stdout.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Browser {
    fn start(dir: &PathBuf, page: &str) -> Result<Browser> {
        let mut child = Command::new("node")
            .arg("chaos-browser.mjs")
            .current_dir(dir)
            .env("CHAOS_PAGE", page)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot start node: {err}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut browser = Browser {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        browser.expect("READY")?;
        Ok(browser)
    }

    fn expect(&mut self, prefix: &str) -> Result<String> {
        for line in self.lines.by_ref() {
            let line = line.map_err(|err| err.to_string())?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.trim().to_owned());
            }
        }
        Err(format!("the browser ended before {prefix}"))
    }

    fn say(&mut self, line: &str) -> Result {
        writeln!(self.stdin, "{line}").map_err(|err| err.to_string())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_browser_result(json: &str) -> Result<Record> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(errors) = value["errors"].as_array()
        && !errors.is_empty()
    {
        return Err(format!("the browser client refused messages: {errors:?}"));
    }
    Ok(Record {
        sent: strings("sent"),
        received: strings("received"),
        opens: value["opens"].as_u64().unwrap_or(0),
    })
}

/// Every message the server stored in the chat, oldest first: the history endpoint
/// pages backwards from the newest, so the pages are read that way and put in order.
async fn stored_messages(http: &reqwest::Client, url: &str) -> Result<Vec<(String, String)>> {
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut request = http
            .get(format!("{url}/api/chats/{CHAT}/messages"))
            .bearer_auth(SERVICE_KEY)
            .query(&[("limit", "200")]);
        if let Some(before) = &before {
            request = request.query(&[("before", before.as_str())]);
        }
        let page: MessagePage = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        before = page.messages.first().map(|m| m.id.clone());
        let has_more = page.has_more;
        pages.push(page.messages);
        if !has_more || before.is_none() {
            break;
        }
    }
    Ok(pages
        .into_iter()
        .rev()
        .flatten()
        .map(|m| (m.sender_id, m.content))
        .collect())
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(()) => {}
        Err(message) => {
            eprintln!("chaos: FAILED: {message}");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result {
    let seed: u64 = env("CHAOS_SEED").and_then(|s| s.parse().ok()).unwrap_or(42);
    let seconds: u64 = env("CHAOS_SECONDS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let binary = env("RELAYWIRE_SERVER_BIN")
        .ok_or("RELAYWIRE_SERVER_BIN is not set: run `cargo xtask test chaos`")?;
    let browser_dir = env("RELAYWIRE_CHAOS_BROWSER").map(PathBuf::from);
    let static_dir = env("RELAYWIRE_CHAOS_STATIC").map(PathBuf::from);
    println!("chaos: seed {seed}, {seconds} s of chaos");

    let nodes: usize = env("CHAOS_CLUSTER")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let messages_per_client: usize = env("CHAOS_MESSAGES")
        .and_then(|s| s.parse().ok())
        .unwrap_or(MESSAGES_PER_CLIENT);
    let data_dir = std::env::temp_dir().join(format!("relaywire-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    // A cluster's shared parts, private to this run.
    let (postgres, mut redis) = if nodes > 0 {
        (Some(Postgres::start()?), Some(Redis::start()?))
    } else {
        (None, None)
    };
    let database = match &postgres {
        Some(postgres) => postgres.create_database("chaos")?,
        None => data_dir.join("chat.db").display().to_string(),
    };
    let mut servers = Vec::new();
    for _ in 0..nodes.max(1) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut server = ServerProcess {
            binary: PathBuf::from(&binary),
            port,
            data_dir: data_dir.clone(),
            static_dir: static_dir.clone(),
            database: database.clone(),
            redis: redis.as_ref().map(Redis::url),
            child: None,
        };
        server.start()?;
        servers.push(server);
    }
    let http = reqwest::Client::new();
    for server in &servers {
        wait_healthy(&http, &server.url(), HEALTHY_WITHIN).await?;
    }
    let url = servers[0].url();
    if nodes > 0 {
        println!("chaos: {nodes} nodes on PostgreSQL and Redis");
    }

    let native_users: Vec<String> = (1..=NATIVE_CLIENTS)
        .map(|i| format!("native-{i}"))
        .collect();
    let browser_user = "browser".to_owned();
    let mut participants = native_users.clone();
    participants.push(browser_user.clone());
    http.post(format!("{url}/api/chats"))
        .bearer_auth(SERVICE_KEY)
        .json(&serde_json::json!({"id": CHAT, "title": "Chaos", "participantIds": participants}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("cannot create the chat: {e}"))?;

    let upstreams = servers
        .iter()
        .map(|server| {
            format!("127.0.0.1:{}", server.port)
                .parse()
                .map_err(|_| "address")
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let proxy = ChaosProxy::balancing(upstreams, seed)
        .await
        .map_err(|e| e.to_string())?;
    let ws_url = format!("ws://{}/ws", proxy.addr());

    // The clients, each recording what it sends and receives.
    let mut natives = Vec::new();
    for user in &native_users {
        let (client, mut messages) =
            Client::connect(native_options(&ws_url, user)).expect("valid options");
        let record = Arc::new(Mutex::new(Record::default()));
        let sink = Arc::clone(&record);
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                if let ServerMessage::ChatMessage(created) = message {
                    sink.lock().unwrap().received.push(created.message.content);
                }
            }
        });
        let opens = Arc::clone(&record);
        let mut watch = client.watch();
        tokio::spawn(async move {
            let mut was_open = false;
            loop {
                let open = watch.borrow_and_update().status == Status::Open;
                if open && !was_open {
                    opens.lock().unwrap().opens += 1;
                }
                was_open = open;
                if watch.changed().await.is_err() {
                    return;
                }
            }
        });
        client
            .wait_for(Status::Open, Duration::from_secs(20))
            .await
            .map_err(|s| format!("{user} did not connect: {s:?}"))?;
        natives.push((user.clone(), client, record));
    }
    let mut browser = match (&browser_dir, &static_dir) {
        (Some(dir), Some(_)) => {
            let page = format!(
                "{url}/chaos.html?ws={ws_url}&token={}",
                token(&browser_user)
            );
            Some(Browser::start(dir, &page)?)
        }
        _ => {
            println!(
                "chaos: no browser client (set RELAYWIRE_CHAOS_BROWSER and RELAYWIRE_CHAOS_STATIC)"
            );
            None
        }
    };

    // Chaos: the proxy misbehaves while every client sends; the server dies twice.
    let senders: Vec<_> = natives
        .iter()
        .map(|(user, client, record)| {
            let (user, client, record) = (user.clone(), client.clone(), Arc::clone(record));
            tokio::spawn(async move {
                for n in 0..messages_per_client {
                    let content = format!("{user}#{n}");
                    let message = ClientMessage::from(SendMessage {
                        chat_id: CHAT.to_owned(),
                        content: content.clone(),
                    });
                    match client.send(message).await {
                        Ok(()) => record.lock().unwrap().sent.push(content),
                        Err(err) => return Err(format!("{user} could not send {content}: {err}")),
                    }
                    tokio::time::sleep(SEND_INTERVAL).await;
                }
                Ok(())
            })
        })
        .collect();
    if let Some(browser) = &mut browser {
        browser.say(&format!(
            "SEND {messages_per_client} {}",
            SEND_INTERVAL.as_millis()
        ))?;
    }
    let mut schedule = Rng::new(seed ^ 0x5EED);
    let mut restarts = 0;
    let (mut redis_restarts, mut postgres_restarts) = (0, 0);
    let chaos_end = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut tick = 0;
    while tokio::time::Instant::now() < chaos_end {
        tokio::time::sleep(Duration::from_millis(3_000 + schedule.below(3_000))).await;
        if tokio::time::Instant::now() >= chaos_end {
            break;
        }
        tick += 1;
        let outage = Duration::from_millis(300 + schedule.below(1_200));
        match (&postgres, &mut redis, tick % 3) {
            // A cluster's second event restarts Redis, its third PostgreSQL.
            (Some(_), Some(redis), 2) => {
                redis.stop();
                tokio::time::sleep(outage).await;
                redis.restart()?;
                redis_restarts += 1;
            }
            (Some(postgres), Some(_), 0) => {
                postgres.stop()?;
                tokio::time::sleep(outage).await;
                postgres.restart()?;
                wait_ready(&http, &servers).await?;
                postgres_restarts += 1;
            }
            _ => {
                let victim = usize::try_from(schedule.below(servers.len() as u64)).unwrap_or(0);
                let server = &mut servers[victim];
                server.kill();
                tokio::time::sleep(outage).await;
                server.start()?;
                wait_healthy(&http, &server.url(), HEALTHY_WITHIN).await?;
                restarts += 1;
            }
        }
    }
    for sender in senders {
        sender.await.map_err(|e| e.to_string())??;
    }
    let browser_sent = match &mut browser {
        Some(browser) => browser.expect("SENT")?.parse::<usize>().unwrap_or(0),
        None => 0,
    };

    // Calm: the proxy behaves, stalled connections are cut, and everything settles.
    proxy.set_chaos(false);
    proxy.cut_all();
    let total: usize = natives
        .iter()
        .map(|(_, _, r)| r.lock().unwrap().sent.len())
        .sum::<usize>()
        + browser_sent;
    let settle_end = tokio::time::Instant::now() + Duration::from_secs(60 + seconds);
    for (user, client, record) in &natives {
        loop {
            let snapshot = client.snapshot();
            let received = record.lock().unwrap().received.len();
            if snapshot.status == Status::Open && snapshot.pending == 0 && received >= total {
                break;
            }
            if tokio::time::Instant::now() > settle_end {
                return Err(format!(
                    "{user} did not settle: status {:?}, {} pending, {received} of {total} received",
                    snapshot.status, snapshot.pending
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let browser_record = match &mut browser {
        Some(browser) => {
            browser.say(&format!("EXPECT {total}"))?;
            Some(parse_browser_result(&browser.expect("RESULT")?)?)
        }
        None => None,
    };

    // The verdict.
    let stored = stored_messages(&http, &url).await?;
    let mut records: Vec<(String, Record)> = natives
        .into_iter()
        .map(|(user, _client, record)| (user, std::mem::take(&mut *record.lock().unwrap())))
        .collect();
    if let Some(record) = browser_record {
        records.push((browser_user, record));
    }
    let stored_contents: Vec<&str> = stored.iter().map(|(_, content)| content.as_str()).collect();
    let mut lost = 0;
    let mut duplicated = 0;
    let mut out_of_order = Vec::new();
    let mut problems = Vec::new();
    for (user, record) in &records {
        let mine: Vec<&str> = stored
            .iter()
            .filter(|(sender, _)| sender == user)
            .map(|(_, c)| c.as_str())
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for content in &mine {
            *counts.entry(content).or_default() += 1;
        }
        duplicated += counts
            .values()
            .filter(|n| **n > 1)
            .map(|n| n - 1)
            .sum::<usize>();
        lost += record
            .sent
            .iter()
            .filter(|c| !counts.contains_key(c.as_str()))
            .count();
        let sent: Vec<&str> = record.sent.iter().map(String::as_str).collect();
        if mine != sent {
            out_of_order.push(user.clone());
        }
        let received: Vec<&str> = record.received.iter().map(String::as_str).collect();
        if received != stored_contents {
            let extra = received.len().saturating_sub(stored_contents.len());
            let missing = stored_contents
                .iter()
                .filter(|c| !received.contains(c))
                .count();
            problems.push(format!(
                "{user} received {} messages ({missing} missing, {extra} extra) instead of the {} stored, in order",
                received.len(),
                stored_contents.len()
            ));
        }
    }
    let reconnects: u64 = records.iter().map(|(_, r)| r.opens.saturating_sub(1)).sum();
    let stats = proxy.stats();
    use std::sync::atomic::Ordering::Relaxed;
    println!("chaos: clients            {}", records.len());
    println!("chaos: messages sent      {total}");
    println!("chaos: messages stored    {}", stored.len());
    println!(
        "chaos: connections        {}",
        stats.connections.load(Relaxed)
    );
    println!("chaos: cut mid-stream     {}", stats.cuts.load(Relaxed));
    println!("chaos: stalled half-open  {}", stats.stalls.load(Relaxed));
    println!("chaos: delayed chunks     {}", stats.delays.load(Relaxed));
    println!("chaos: server restarts    {restarts} (SIGKILL)");
    if nodes > 0 {
        println!("chaos: Redis restarts     {redis_restarts}");
        println!("chaos: PostgreSQL restarts {postgres_restarts}");
    }
    println!("chaos: reconnects         {reconnects}");
    println!("chaos: lost               {lost}");
    println!("chaos: duplicated         {duplicated}");
    println!("chaos: out of order       {}", out_of_order.len());
    let _ = std::fs::remove_dir_all(&data_dir);
    if lost > 0
        || duplicated > 0
        || !out_of_order.is_empty()
        || !problems.is_empty()
        || stored.len() != total
    {
        return Err(format!(
            "{lost} lost, {duplicated} duplicated, out of order for {out_of_order:?}; {}",
            problems.join("; ")
        ));
    }
    if restarts == 0 || stats.cuts.load(Relaxed) == 0 {
        return Err("the schedule caused no restart or no cut: the run proves nothing".to_owned());
    }
    if nodes > 0 && (redis_restarts == 0 || postgres_restarts == 0) {
        return Err(
            "the run was too short for a Redis and a PostgreSQL restart: raise CHAOS_SECONDS"
                .to_owned(),
        );
    }
    drop(servers);
    drop(postgres);
    println!("chaos: passed: 0 lost, 0 duplicated, every sender's order kept");
    Ok(())
}
