//! Start-up, restart and shutdown: what was acknowledged survives a restart, sockets
//! close with 1001, the binary exits 0 on SIGTERM and 2 on bad configuration.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use relaywire_protocol::CloseCode;
use serde_json::json;

use crate::support::{Client, Ending, SECRET, TestServer, config, file_database, json_of, token};

#[tokio::test]
async fn nothing_acknowledged_is_lost_across_a_restart() {
    let (database, dir) = file_database("restart");
    let mut first = config();
    first.database = database.clone();
    let server = TestServer::with(first).await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let ack = alice
            .request(&format!("c{i}"), json!({"type": "chat:message", "payload": {"chatId": "general", "content": format!("n{i}")}}))
            .await;
        acked.push(ack["payload"]["messageId"].as_str().unwrap().to_owned());
    }
    let last = acked.last().unwrap().clone();
    bob.request(
        "r",
        json!({"type": "chat:read", "payload": {"chatId": "general", "messageId": last}}),
    )
    .await;
    server.shutdown().await;
    assert_eq!(
        alice.ending().await,
        Ending::Closed(CloseCode::GoingAway.code())
    );

    let mut second = config();
    second.database = database;
    let server = TestServer::with(second).await;
    let (_, page) = json_of(server.admin(
        reqwest::Method::GET,
        "/api/chats/general/messages?limit=200",
    ))
    .await;
    let stored: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, acked);
    let (_, receipts) =
        json_of(server.admin(reqwest::Method::GET, "/api/chats/general/receipts")).await;
    assert_eq!(receipts["receipts"][0]["messageId"], last.as_str());
    // A client id seen before the restart is still recognised.
    let (mut alice, _) = server.connect("alice").await;
    let again = alice
        .request(
            "c0",
            json!({"type": "chat:message", "payload": {"chatId": "general", "content": "n0"}}),
        )
        .await;
    assert_eq!(again["payload"]["messageId"], acked[0].as_str());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.connect("alice").await;
    let (mut bob, _) = server.connect("bob").await;
    // One that has not authenticated yet is closed too.
    let mut pending = Client::open(&server.ws_url(), &[]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.shutdown().await;
    assert_eq!(alice.ending().await, Ending::Closed(1001));
    assert_eq!(bob.ending().await, Ending::Closed(1001));
    assert!(matches!(pending.ending().await, Ending::Closed(_)));
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relaywire-chat-server"))
}

#[test]
fn bad_configuration_fails_at_start_naming_the_variable() {
    // One bad value of every variable the server reads, each with a valid secret
    // unless the secret is what is wrong.
    let bad: &[(&str, &str)] = &[
        ("BIND_ADDR", "localhost"),
        ("WS_PORT", "http"),
        ("CORS_ORIGIN", "localhost:5173"),
        ("JWT_SECRET", "short"),
        ("JWKS_URL", "cognito"),
        ("JWT_TOKEN_USE", "refresh"),
        ("JWKS_CACHE_TTL", "0"),
        ("JWKS_REFETCH_COOLDOWN", "soon"),
        ("AUTH_MODE", "magic"),
        ("AUTH_COOKIES", "bad cookie"),
        ("AUTH_CLOSE_CODE", "1000"),
        ("AUTH_TIMEOUT", "0"),
        ("SERVICE_KEYS", "a"),
        ("DEV_LOGIN", "maybe"),
        ("CONNECTION_POLICY", "some"),
        ("HEARTBEAT_INTERVAL", "-5"),
        ("TYPING_TIMEOUT", "0"),
        ("CONNECTION_TIMEOUT", "1"),
        ("HEADER_READ_TIMEOUT", "soon"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_MESSAGE_SIZE", "-1"),
        ("RATE_LIMIT", "0"),
        ("RATE_LIMIT_BURST", "many"),
        ("USER_RATE_LIMIT", "0"),
        ("USER_RATE_LIMIT_BURST", "0"),
        ("USER_CONNECTION_LIMIT", "0"),
        ("DEDUP_WINDOW", "forever"),
        ("OUTBOUND_QUEUE", "0"),
        ("DATABASE_URL", "mysql://127.0.0.1/chat"),
        ("REDIS_URL", "localhost:6379"),
        ("STATIC_DIR", "/nonexistent/relaywire"),
        ("TEST_HOOKS", "perhaps"),
        ("LOG_LEVEL", "loud=["),
        ("SEED_DEMO", "sometimes"),
        ("EXIT_ON_STDIN_CLOSE", "perhaps"),
    ];
    let mut cases: Vec<(Vec<(&str, &str)>, &str)> = bad
        .iter()
        .map(|&(name, value)| {
            let mut vars = vec![(name, value)];
            if name != "JWT_SECRET" {
                vars.push(("JWT_SECRET", SECRET));
            }
            if name.starts_with("JWT_TOKEN") || name.starts_with("JWKS_") && name != "JWKS_URL" {
                vars.push(("JWKS_URL", "http://127.0.0.1:9/jwks.json"));
            }
            (vars, name)
        })
        .collect();
    cases.push((vec![], "JWT_SECRET"));
    cases.push((
        vec![("JWT_SECRET", SECRET), ("REDIS_KEY_PREFIX", "chat")],
        "REDIS_KEY_PREFIX",
    ));
    // A cluster shares one store: Redis beside a SQLite file is refused.
    cases.push((
        vec![
            ("JWT_SECRET", SECRET),
            ("REDIS_URL", "redis://127.0.0.1:9/"),
        ],
        "REDIS_URL",
    ));
    cases.push((
        vec![
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:9/chat"),
            ("REDIS_URL", "redis://127.0.0.1:9/"),
            ("REDIS_KEY_PREFIX", "my app"),
        ],
        "REDIS_KEY_PREFIX",
    ));
    cases.push((
        vec![
            ("JWT_SECRET", SECRET),
            ("TEST_HOOKS", "true"),
            ("BIND_ADDR", "0.0.0.0"),
        ],
        "TEST_HOOKS",
    ));
    cases.push((
        vec![("AUTH_MODE", "profile"), ("HTTP_API_URL", "localhost:3000")],
        "HTTP_API_URL",
    ));
    for (vars, name) in cases {
        let dir = std::env::temp_dir().join(format!("relaywire-badconfig-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = binary();
        command.env_clear().current_dir(&dir);
        if !vars.iter().any(|(key, _)| *key == "DATABASE_URL") {
            command.env("DATABASE_URL", ":memory:");
        }
        let output = command.envs(vars).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
        let left = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, 0, "{name}: a refused start creates no files");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_exits_zero() {
    let mut child = binary()
        .env_clear()
        .envs([
            ("JWT_SECRET", SECRET),
            ("WS_PORT", "0"),
            ("DATABASE_URL", ":memory:"),
            ("SEED_DEMO", "true"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The JSON log says where it listens.
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line: serde_json::Value = serde_json::from_str(&line.unwrap()).expect("JSON logs");
            if line["message"] == "listening" {
                return line["url"].as_str().unwrap().to_owned();
            }
        }
        panic!("no listening line");
    })
    .await
    .unwrap();
    let ws_url = url.replace("http://", "ws://");
    let mut alice = Client::open(&format!("{ws_url}/ws?token={}", token("alice")), &[]).await;
    assert_eq!(alice.next_json().await["type"], "connected");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(alice.ending().await, Ending::Closed(1001));
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn logs_never_contain_tokens() {
    // Even at trace, where the WebSocket library would log every frame received, and
    // even when LOG_LEVEL asks for that library's trace by name.
    for level in [
        "debug",
        "trace",
        "trace,tungstenite=trace,tokio_tungstenite=trace",
    ] {
        logs_without_tokens_at(level);
    }
}

fn logs_without_tokens_at(level: &str) {
    let token = token("alice");
    let mut child = binary()
        .env_clear()
        .envs([
            ("JWT_SECRET", SECRET),
            ("WS_PORT", "0"),
            ("DATABASE_URL", ":memory:"),
            ("LOG_LEVEL", level),
            ("EXIT_ON_STDIN_CLOSE", "1"),
            ("DEV_LOGIN", "true"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if line["message"] == "listening" {
            break line["url"].as_str().unwrap().replace("http://", "ws://");
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut ok = Client::open(&format!("{url}/ws?token={token}"), &[]).await;
        assert_eq!(ok.next_json().await["type"], "connected");
        let mut bad = Client::open(&format!("{url}/ws?token={token}x"), &[]).await;
        assert_eq!(bad.ending().await, Ending::Closed(4001));
        // The token in a first `auth` message, a frame the library reads.
        let mut by_message = Client::open(&format!("{url}/ws"), &[]).await;
        by_message
            .send(json!({"type": "auth", "payload": {"token": token}}))
            .await;
        assert_eq!(by_message.next_json().await["type"], "connected");
        drop(ok);
        drop(by_message);
    });
    // Closing stdin stops a supervised server.
    drop(child.stdin.take());
    let rest: Vec<String> = lines.map(|line| line.unwrap()).collect();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let all = rest.join("\n");
    assert!(all.contains("user connected"), "{all}");
    assert!(
        all.lines()
            .any(|line| line.contains(r#""level":"WARN""#) && line.contains("DEV_LOGIN")),
        "DEV_LOGIN is announced with a warning"
    );
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !all.contains(signature),
        "a token leaked into the logs at {level}"
    );
}

#[tokio::test]
async fn a_blocked_standard_output_never_blocks_the_server() {
    // Standard output is a pipe nobody reads: it fills after 64 KiB of logs.
    let mut child = binary()
        .env_clear()
        .envs([
            ("JWT_SECRET", SECRET),
            ("WS_PORT", "0"),
            ("DATABASE_URL", ":memory:"),
            ("DEV_LOGIN", "true"),
            ("LOG_LEVEL", "debug"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let url = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        loop {
            line.clear();
            stdout.read_line(&mut line).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            if parsed["message"] == "listening" {
                // Keep the pipe open, unread, for the rest of the test.
                return (parsed["url"].as_str().unwrap().to_owned(), stdout);
            }
        }
    })
    .await
    .unwrap();
    let (url, _unread) = url;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Each login logs a line; far more than the pipe holds.
    for i in 0..1500 {
        let login = http
            .post(format!("{url}/auth/dev-login"))
            .json(&json!({"userId": format!("user-{i}")}))
            .send()
            .await;
        assert!(
            login.is_ok_and(|response| response.status() == 200),
            "login {i} answered while the log pipe is full"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || child.wait().unwrap()),
    )
    .await
    .expect("the server exits after SIGTERM whatever its output does")
    .unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[tokio::test]
async fn out_of_descriptors_the_server_backs_off_and_recovers() {
    // A descriptor limit small enough to exhaust from a test.
    let mut child = Command::new("prlimit")
        .arg("--nofile=48:48")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_relaywire-chat-server"))
        .env_clear()
        .envs([
            ("JWT_SECRET", SECRET),
            ("WS_PORT", "0"),
            ("DATABASE_URL", ":memory:"),
            ("HEADER_READ_TIMEOUT", "500"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs the server");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(line) = serde_json::from_str(&line) {
                let _ = lines_tx.send(line);
            }
        }
    });
    let url = loop {
        let line = lines
            .recv()
            .await
            .expect("the server logs where it listens");
        if line["message"] == "listening" {
            break line["url"].as_str().unwrap().to_owned();
        }
    };
    let addr = url.trim_start_matches("http://").to_owned();

    // More silent connections than it has descriptors.
    let mut silent = Vec::new();
    for _ in 0..80 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let backed_off = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(line) = lines.recv().await {
            if line["message"] == "accept failed; backing off" {
                return;
            }
        }
    })
    .await;
    assert!(backed_off.is_ok(), "the accept loop reports and backs off");

    // The header deadline frees the descriptors; a real request gets through.
    let health = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match reqwest::get(format!("{url}/healthz")).await {
                Ok(response) if response.status() == 200 => return,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    assert!(health.is_ok(), "/healthz answers again");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    drop(silent);
    child.kill().unwrap();
    let _ = child.wait();
}
