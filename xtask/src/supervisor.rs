//! The reference server as a child process, and a tiny HTTP endpoint that browser
//! tests call to kill and restart it (`POST /kill`, `POST /start`; `GET /` answers
//! that it is there).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Result;

/// How to start the server: its binary and environment.
#[derive(Clone)]
pub(crate) struct ServerSpec {
    pub(crate) binary: PathBuf,
    pub(crate) port: u16,
    pub(crate) env: BTreeMap<String, String>,
    /// Where the server's log lines go (appended across restarts).
    pub(crate) log: PathBuf,
}

impl ServerSpec {
    fn spawn(&self) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|err| format!("{}: {err}", self.log.display()))?;
        let child = Command::new(&self.binary)
            .envs(&self.env)
            .env("WS_PORT", self.port.to_string())
            .env("EXIT_ON_STDIN_CLOSE", "true")
            .stdin(Stdio::piped())
            .stdout(log)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", self.binary.display()))?;
        wait_healthy(self.port)?;
        Ok(child)
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Polls `/healthz` until the server answers.
fn wait_healthy(port: u16) -> Result {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
                && response.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "the server on port {port} did not become healthy within 20 s"
    ))
}

/// A running server plus the control endpoint; dropping it stops both.
pub(crate) struct Supervisor {
    spec: ServerSpec,
    child: Arc<Mutex<Option<Child>>>,
    control_port: u16,
}

impl Supervisor {
    /// Starts the server and the control endpoint on `control_port` (0: any free port).
    pub(crate) fn start(spec: ServerSpec, control_port: u16) -> Result<Supervisor> {
        let listener = TcpListener::bind(("127.0.0.1", control_port))
            .map_err(|err| format!("the supervisor's port 127.0.0.1:{control_port}: {err}"))?;
        let child = Arc::new(Mutex::new(Some(spec.spawn()?)));
        let control_port = listener.local_addr().map_err(|err| err.to_string())?.port();
        let (thread_spec, thread_child) = (spec.clone(), Arc::clone(&child));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &thread_spec, &thread_child);
            }
        });
        Ok(Supervisor {
            spec,
            child,
            control_port,
        })
    }

    pub(crate) fn server_url(&self) -> String {
        self.spec.url()
    }

    pub(crate) fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.control_port)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(mut child) = child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Handles one control request.
fn serve(
    stream: TcpStream,
    spec: &ServerSpec,
    child: &Mutex<Option<Child>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut origin = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("origin")
        {
            origin = Some(value.trim().to_owned());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let outcome = match (method, path) {
        // Preflights, and the tests asking whether a supervisor is there.
        ("OPTIONS", _) | ("GET", "/") => Ok(()),
        ("POST", "/kill") => {
            let mut guard = child
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            if let Some(mut running) = guard.take() {
                let _ = running.kill();
                let _ = running.wait();
            }
            Ok(())
        }
        ("POST", "/start") => {
            let mut guard = child
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            if guard.is_none() {
                spec.spawn().map(|started| *guard = Some(started))
            } else {
                Ok(())
            }
        }
        _ => Err("unknown request".to_owned()),
    };
    let status = match outcome {
        Ok(()) => "204 No Content",
        Err(err) => {
            eprintln!("supervisor: {method} {path}: {err}");
            "500 Internal Server Error"
        }
    };
    // Browser tests fetch with credentials: echo the origin rather than `*`.
    let origin = origin.unwrap_or_else(|| "*".to_owned());
    let response = format!(
        "HTTP/1.1 {status}\r\nAccess-Control-Allow-Origin: {origin}\r\n\
         Access-Control-Allow-Credentials: true\r\nAccess-Control-Allow-Methods: POST\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = stream;
    stream.write_all(response.as_bytes())
}
