//! Shared pieces of the end-to-end tests: a reference server on 127.0.0.1 that can
//! be restarted on the same port and database, tokens for it, and the chaos proxy.

pub mod chaos;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relaywire_chat::ChatProtocol;
use relaywire_chat_server::config::Database;
use relaywire_chat_server::{ChatApp, Config, RunningServer, start};
use relaywire_client::core::{Auth, ReconnectPolicy};
use relaywire_client::native;

/// The HS256 secret of every test server.
pub const SECRET: &str = "end-to-end-secret-0123456789";

/// A signed token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({ "sub": user, "name": user, "iat": now, "exp": now + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// A reference server that keeps its port and database across restarts.
#[derive(Debug)]
pub struct Server {
    config: Config,
    running: Option<RunningServer>,
    dir: PathBuf,
}

impl Server {
    /// Starts a server with the demo chats on a fresh database file; `adjust` may
    /// change the configuration first.
    pub async fn start(name: &str, adjust: impl FnOnce(&mut Config)) -> Server {
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
        let running = start(config.clone(), ChatApp::with_demo_chats())
            .await
            .expect("the server starts");
        // Restarts reuse the port it got.
        config.listen = running.addr();
        Server {
            config,
            running: Some(running),
            dir,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
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
            match start(self.config.clone(), ChatApp::with_demo_chats()).await {
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Native client options for `user` against `server`, with quick retries.
pub fn client_options(server: &Server, user: &str) -> native::Options<ChatProtocol> {
    let mut options = native::Options::new(server.ws_url(), Auth::Token(token(user)));
    options.core.reconnect = ReconnectPolicy {
        initial_delay_ms: 100,
        max_delay_ms: 1_000,
        ..ReconnectPolicy::default()
    };
    options
}
