//! Private PostgreSQL, Redis and moto (AWS) servers for tests: Debian's binaries, started on
//! 127.0.0.1 on a free port in a temporary folder, stopped (and the folder removed)
//! when dropped. Self-contained (std only), so that the xtask and other test crates
//! include this file too.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs PostgreSQL's server programs.
const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|err| format!("no free port on 127.0.0.1: {err}"))?;
    Ok(listener.local_addr().map_err(|err| err.to_string())?.port())
}

fn temp_dir(kind: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "relaywire-{kind}-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    Ok(dir)
}

fn is_root() -> bool {
    // Without a libc binding: root's home and `id -u` agree on every Debian machine.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn wait_port(port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{what} did not listen on 127.0.0.1:{port} within 20 s"
    ))
}

/// A private PostgreSQL server (trust authentication, user `postgres`).
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    as_root: bool,
    /// Server settings beyond the defaults, as `name=value`.
    settings: Vec<String>,
}

impl Postgres {
    /// Initializes a cluster in a temporary folder and starts it. As root, the server
    /// runs as the `postgres` user, which PostgreSQL requires.
    pub fn start() -> Result<Self, String> {
        Self::start_with(&[])
    }

    /// Like [`Postgres::start`], with server settings (`name=value`), e.g.
    /// `shared_preload_libraries=pg_stat_statements`.
    pub fn start_with(settings: &[&str]) -> Result<Self, String> {
        let bin = Path::new(POSTGRES_BIN);
        if !bin.join("initdb").exists() {
            return Err(format!(
                "PostgreSQL is not installed ({POSTGRES_BIN}/initdb is missing): apt-get install postgresql"
            ));
        }
        let dir = temp_dir("postgres")?;
        let as_root = is_root();
        if as_root {
            run(Command::new("chown").arg("-R").arg("postgres").arg(&dir))?;
        }
        let postgres = Self {
            port: free_port()?,
            dir,
            as_root,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
        };
        let data = postgres.dir.join("data");
        run(postgres.command("initdb").arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        postgres.run_server()?;
        Ok(postgres)
    }

    fn command(&self, program: &str) -> Command {
        let path = Path::new(POSTGRES_BIN).join(program);
        if self.as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run_server(&self) -> Result<(), String> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-w", "-t", "30", "start"]))?;
        wait_port(self.port, "PostgreSQL")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        self.query("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(name))
    }

    /// Runs `sql` in database `name` and returns what it printed, unaligned, one row
    /// per line and `|` between columns.
    pub fn query(&self, name: &str, sql: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-d",
                name,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-A",
                "-t",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("psql: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Stops the server at once (clients see their connections drop).
    pub fn stop(&self) -> Result<(), String> {
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]))
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&self) -> Result<(), String> {
        self.run_server()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis server (no persistence: a restart loses everything, the worst case).
#[derive(Debug)]
pub struct Redis {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts `redis-server` on a free port.
    pub fn start() -> Result<Self, String> {
        let mut redis = Self {
            dir: temp_dir("redis")?,
            port: free_port()?,
            child: None,
        };
        redis.restart()?;
        Ok(redis)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (as a crash would: connections drop, data is gone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port, empty.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                format!("cannot run redis-server ({err}): apt-get install redis-server")
            })?;
        self.child = Some(child);
        wait_port(self.port, "Redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// moto's server (what `python3 -m moto.server` runs), with one lock around each
/// request: moto handles requests on threads and locks nothing, so two transactions can
/// interleave, where DynamoDB isolates them. Serialized, its transactions are atomic.
const MOTO_SERIALIZED: &str = r#"
import sys, threading
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True)
"#;

/// A private moto server (PyPI's `moto[server]`): DynamoDB and other AWS APIs,
/// in memory, on a free port.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    /// Starts moto's server on a free port.
    pub fn start() -> Result<Self, String> {
        let port = free_port()?;
        let child = Command::new("python3")
            .args(["-c", MOTO_SERIALIZED, &port.to_string()])
            .env("MOTO_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                format!("cannot run python3 with moto ({err}): pip install 'moto[server]'")
            })?;
        let moto = Self { port, child };
        wait_port(port, "moto")?;
        Ok(moto)
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("{command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
