//! `cargo xtask demo`: builds the client, the npm package and the React app, and serves
//! the app from the reference chat server at one URL. `--cluster` serves it from three
//! nodes on a private PostgreSQL and Redis instead, one URL each; `--rust` serves the
//! chat page written in Rust (`examples/web-chat`) instead of the React app;
//! `--aws-local` serves the React app from the serverless deployment, run locally.

use std::process::{Command, Stdio};

use crate::Result;
use crate::app;
use crate::cmd::{Cmd, step};
use crate::tools::{free_port, project_root, target_dir};

pub(crate) fn run(args: &[String]) -> Result {
    let rust = match args {
        [] => false,
        [flag] if flag == "--cluster" => return run_cluster(),
        [flag] if flag == "--rust" => true,
        [flag] if flag == "--aws-local" => return run_aws_local(),
        [arg, ..] => {
            return Err(format!(
                "`cargo xtask demo` takes `--cluster`, `--rust` or `--aws-local`, got `{arg}`"
            ));
        }
    };
    let dist = if rust {
        app::build_rust_web()?
    } else {
        app::build(app::REACT_CHAT)?
    };
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

/// The React app, unchanged, on the serverless deployment: the local API Gateway (the
/// WebSocket API at `/ws`, the HTTP API and the app's files on one origin) with the
/// Lambda functions behind it and moto's DynamoDB.
fn run_aws_local() -> Result {
    let dist = app::build(app::REACT_CHAT)?;
    let port = free_port(8080)?;
    let local = crate::aws_local::AwsLocal::start(port, &dist, &[])?;
    println!(
        "demo: open {} in two windows (one private) and sign in as two users; \
         Ctrl-C stops the simulator, its functions and moto",
        local.url()
    );
    local.wait()
}

/// Nodes of the demo cluster.
const DEMO_NODES: u16 = 3;

/// Three nodes of the chat server with the React app, on a private PostgreSQL and
/// Redis that stop with the demo: sign in on one node's URL and chat with a user on
/// another's.
fn run_cluster() -> Result {
    let dist = app::build(app::REACT_CHAT)?;
    step("building the reference chat server");
    Cmd::new("cargo", &project_root())
        .args(["build", "--quiet", "-p", "relaywire-chat-server"])
        .run()?;
    step("starting PostgreSQL and Redis");
    let postgres = crate::services::Postgres::start()?;
    let database = postgres.create_database("demo")?;
    let redis = crate::services::Redis::start()?;
    // One secret for every node, so a session from any node is good on all.
    let secret = random_secret()?;
    let server = target_dir().join("debug/relaywire-chat-server");
    let first = free_port(8080)?;
    let mut nodes = Vec::new();
    let mut stdins = Vec::new();
    step("starting three nodes");
    for index in 0..DEMO_NODES {
        let port = free_port(first + index)?;
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(&server)
            .stdin(Stdio::piped())
            .env("EXIT_ON_STDIN_CLOSE", "true")
            .env("WS_PORT", port.to_string())
            .env("JWT_SECRET", &secret)
            .env("DEV_LOGIN", "true")
            .env("SEED_DEMO", "true")
            .env(
                "DATA_DIR",
                target_dir().join(format!("demo-cluster-{index}")),
            )
            .env("DATABASE_URL", &database)
            .env("REDIS_URL", redis.url())
            .env("STATIC_DIR", &dist)
            .env("CORS_ORIGIN", format!("{url},http://localhost:{port}"))
            .env("LOG_LEVEL", "info")
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", server.display()))?;
        stdins.push(child.stdin.take());
        println!("demo: node {} at {url}", index + 1);
        nodes.push(child);
    }
    println!(
        "demo: sign in as one user on one node and as another on a second (a private \
         window); stop a node and its users reconnect to what they load; Ctrl-C stops all"
    );
    let mut failed = None;
    for mut node in nodes {
        let status = node.wait().map_err(|err| err.to_string())?;
        if !status.success() {
            failed = Some(status);
        }
    }
    drop(stdins);
    match failed {
        None => Ok(()),
        Some(status) => Err(format!("a node stopped: {status}")),
    }
}

/// 32 random hex digits from the kernel, for the demo's shared `JWT_SECRET`.
pub(crate) fn random_secret() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|err| format!("cannot read /dev/urandom: {err}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
