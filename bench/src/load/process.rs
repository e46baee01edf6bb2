//! The two servers under load as child processes: the reference server's release
//! binary and the Socket.IO server on Node, each on a free port of 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::Result;

/// The secret both servers verify tokens with.
pub(crate) use relaywire_tests::SECRET;
use relaywire_tests::free_port;

/// The service key the reference server's HTTP API takes from the benchmark.
pub(crate) const SERVICE_KEY: &str = "bench-service-key";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `examples/chat-server`.
    Relaywire,
    /// `bench/js/servers/socketio.mjs`.
    SocketIo,
}

impl Kind {
    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Relaywire => "Relaywire chat server",
            Kind::SocketIo => "Socket.IO 4 on Node",
        }
    }
}

/// A running server, killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) port: u16,
    child: Child,
    data_dir: Option<PathBuf>,
}

impl Server {
    /// Starts the reference server from its release binary, taking up to
    /// `max_connections` at once (`MAX_CONNECTIONS`).
    pub(crate) async fn relaywire(binary: &Path, max_connections: usize) -> Result<Server> {
        Self::relaywire_on(binary, max_connections, &[]).await
    }

    /// Like [`Server::relaywire`], with more settings (`DATABASE_URL`, `REDIS_URL`, ...)
    /// over the defaults.
    pub(crate) async fn relaywire_on(
        binary: &Path,
        max_connections: usize,
        settings: &[(&str, &str)],
    ) -> Result<Server> {
        let port = free_port()?;
        let data_dir =
            std::env::temp_dir().join(format!("relaywire-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data_dir)
            .map_err(|err| format!("{}: {err}", data_dir.display()))?;
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("JWT_SECRET", SECRET)
            .env("WS_PORT", port.to_string())
            .env("DATA_DIR", &data_dir)
            .env("DATABASE_URL", data_dir.join("chat.db"))
            .env("SERVICE_KEYS", SERVICE_KEY)
            // One sender floods on purpose; everything else keeps its default.
            .env("RATE_LIMIT", "1000000")
            .env("RATE_LIMIT_BURST", "1000000")
            .env("USER_RATE_LIMIT", "1000000")
            .env("USER_RATE_LIMIT_BURST", "1000000")
            .env("MAX_CONNECTIONS", max_connections.to_string())
            .env("LOG_LEVEL", "warn")
            .env("EXIT_ON_STDIN_CLOSE", "true");
        for (name, value) in settings {
            command.env(name, value);
        }
        Self::spawn(Kind::Relaywire, command, port, Some(data_dir)).await
    }

    /// Starts the Socket.IO server; with `redis`, as one node of several on its
    /// Redis adapter.
    pub(crate) async fn socketio(js_dir: &Path, redis: Option<&str>) -> Result<Server> {
        let port = free_port()?;
        let mut command = Command::new("node");
        command
            .arg(js_dir.join("servers/socketio.mjs"))
            .env("PORT", port.to_string())
            .env("JWT_SECRET", SECRET);
        if let Some(redis) = redis {
            command.env("REDIS_URL", redis);
        }
        Self::spawn(Kind::SocketIo, command, port, None).await
    }

    async fn spawn(
        kind: Kind,
        mut command: Command,
        port: u16,
        data_dir: Option<PathBuf>,
    ) -> Result<Server> {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot start the {}: {err}", kind.name()))?;
        let server = Server {
            kind,
            port,
            child,
            data_dir,
        };
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("the {} did not listen on {port}", kind.name()))
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .ok_or_else(|| format!("the {} has exited", self.kind.name()))
    }

    /// Its resident memory in bytes, from `/proc`.
    pub(crate) fn rss_bytes(&self) -> Result<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|err| format!("cannot read the server's memory: {err}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .ok_or_else(|| "no VmRSS in /proc/<pid>/status".to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
