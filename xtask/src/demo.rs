//! `cargo xtask demo`: builds the reference chat server and serves the demo at one URL.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::tools::{free_port, project_root, target_dir};

pub(crate) fn run(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`cargo xtask demo` takes no arguments, got `{arg}`"
        ));
    }
    let root = project_root();
    step("building the reference chat server");
    Cmd::new("cargo", &root)
        .args(["build", "--quiet", "-p", "relaywire-chat-server"])
        .run()?;
    let static_dir = placeholder_page()?;

    let port = free_port(8080)?;
    let url = format!("http://127.0.0.1:{port}");
    let data_dir = target_dir().join("demo-data");
    step("starting the server");
    println!("demo: open {url} (Ctrl-C stops it)");
    println!("demo: data is kept in {}", data_dir.display());
    let server = target_dir().join("debug/relaywire-chat-server");
    // The server stops when this task ends, even when it is killed.
    let mut child = Command::new(&server)
        .stdin(Stdio::piped())
        .env("EXIT_ON_STDIN_CLOSE", "true")
        .env("WS_PORT", port.to_string())
        .env("DEV_LOGIN", "true")
        .env("SEED_DEMO", "true")
        .env("DATA_DIR", &data_dir)
        .env("STATIC_DIR", &static_dir)
        .env("CORS_ORIGIN", format!("{url},http://localhost:{port}"))
        .env("LOG_LEVEL", "info")
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", server.display()))?;
    let status = child.wait().map_err(|err| err.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the server stopped: {status}"))
    }
}

/// A page that says what the server offers until the web app is built.
fn placeholder_page() -> Result<PathBuf> {
    let dir = target_dir().join("demo-static");
    std::fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let page = "<!doctype html><meta charset=utf-8><title>Relaywire</title>\
        <h1>Relaywire reference chat server</h1>\
        <p>The WebSocket endpoint is <code>/ws</code>; <code>POST /auth/dev-login</code> \
        signs you in; <code>/healthz</code> and <code>/metrics</code> report its state.</p>";
    std::fs::write(dir.join("index.html"), page).map_err(|err| err.to_string())?;
    Ok(dir)
}
