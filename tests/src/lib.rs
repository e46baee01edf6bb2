//! Shared pieces of the end-to-end tests: a server on 127.0.0.1 (the reference chat
//! server, or any app on the server library) that can be restarted on the same port and
//! database, tokens for it, the chaos proxy, the probe suite, and the task board, an app
//! with a catalogue of its own.

pub mod chaos;
pub mod probe;
mod raw;
pub mod services;
pub mod tasks;

pub use raw::RawSocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relaywire_chat_server::ChatApp;
use relaywire_client::core::{Auth, ReconnectPolicy};
use relaywire_client::native;
use relaywire_server::config::Database;
use relaywire_server::{App, Config, RunningServer};

/// The HS256 secret of every test server.
pub const SECRET: &str = "end-to-end-secret-0123456789";

/// A signed token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    signed(&serde_json::json!({ "sub": user, "name": user, "iat": now, "exp": now + 3600 }))
}

/// `claims` signed with HS256 and [`SECRET`], whatever they say (expired, far in the
/// future, missing `exp`): for tests of what the server refuses.
pub fn signed(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Waits until `GET {url}/healthz` succeeds, for at most `within`: a server started as
/// a process is ready.
pub async fn wait_healthy(
    http: &reqwest::Client,
    url: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{url}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{url} did not answer /healthz within {within:?}"))
}

/// A free TCP port on 127.0.0.1, for a server started as a process.
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|err| format!("no free port on 127.0.0.1: {err}"))?;
    Ok(listener.local_addr().map_err(|err| err.to_string())?.port())
}

/// A server that keeps its port and database across restarts: the reference chat
/// server by default, or any app on the library.
#[derive(Debug)]
pub struct Server<A: App + Clone = ChatApp> {
    config: Config,
    app: A,
    running: Option<RunningServer>,
    dir: PathBuf,
}

impl Server<ChatApp> {
    /// Starts the chat server with the demo chats on a fresh database file; `adjust`
    /// may change the configuration first.
    pub async fn start(name: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_app(name, ChatApp::with_demo_chats(), adjust).await
    }
}

impl<A: App + Clone> Server<A> {
    /// Starts `app` on a fresh database file; `adjust` may change the configuration
    /// first.
    pub async fn start_app(name: &str, app: A, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "relaywire-e2e-{name}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let mut config = Config::local(SECRET);
        config.database = Database::File(dir.join("chat.db"));
        config.data_dir = dir.clone();
        adjust(&mut config);
        let running = relaywire_server::start(config.clone(), app.clone())
            .await
            .expect("the server starts");
        // Restarts reuse the port it got.
        config.listen = running.addr();
        Server {
            config,
            app,
            running: Some(running),
            dir,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// Its HTTP base URL.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Its WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }

    /// Shuts it down gracefully (sockets close with 1001).
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("a clean shutdown");
        }
    }

    /// Starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.stop().await;
        for _ in 0..50 {
            match relaywire_server::start(self.config.clone(), self.app.clone()).await {
                Ok(running) => {
                    self.running = Some(running);
                    return;
                }
                // The port may linger for a moment after the shutdown.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the server did not restart on {}", self.addr());
    }
}

impl<A: App + Clone> Drop for Server<A> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Native client options for `user` against `server`, with quick retries.
pub fn client_options<A: App + Clone>(
    server: &Server<A>,
    user: &str,
) -> native::Options<A::Protocol> {
    let mut options = native::Options::new(server.ws_url(), Auth::Token(token(user)));
    options.core.reconnect = ReconnectPolicy {
        initial_delay_ms: 100,
        max_delay_ms: 1_000,
        ..ReconnectPolicy::default()
    };
    options
}
