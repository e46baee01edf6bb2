//! `cargo xtask demo`: builds the client, the npm package and the React app, and serves
//! the app from the reference chat server at one URL.

use std::process::{Command, Stdio};

use crate::Result;
use crate::app;
use crate::cmd::{Cmd, step};
use crate::tools::{free_port, project_root, target_dir};

pub(crate) fn run(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`cargo xtask demo` takes no arguments, got `{arg}`"
        ));
    }
    let dist = app::build(app::REACT_CHAT)?;
    step("building the reference chat server");
    Cmd::new("cargo", &project_root())
        .args(["build", "--quiet", "-p", "relaywire-chat-server"])
        .run()?;

    let port = free_port(8080)?;
    let url = format!("http://127.0.0.1:{port}");
    let data_dir = target_dir().join("demo-data");
    step("starting the server");
    println!("demo: open {url} in two windows (one private) and sign in as two users");
    println!(
        "demo: messages are kept in {}; Ctrl-C stops the server",
        data_dir.display()
    );
    let server = target_dir().join("debug/relaywire-chat-server");
    // The server stops when this task ends, even when it is killed.
    let mut child = Command::new(&server)
        .stdin(Stdio::piped())
        .env("EXIT_ON_STDIN_CLOSE", "true")
        .env("WS_PORT", port.to_string())
        .env("DEV_LOGIN", "true")
        .env("SEED_DEMO", "true")
        .env("DATA_DIR", &data_dir)
        .env("STATIC_DIR", &dist)
        .env("CORS_ORIGIN", format!("{url},http://localhost:{port}"))
        .env("LOG_LEVEL", "info")
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", server.display()))?;
    // `wait` would close the child's stdin, which tells the server to stop.
    let _stdin = child.stdin.take();
    let status = child.wait().map_err(|err| err.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the server stopped: {status}"))
    }
}
