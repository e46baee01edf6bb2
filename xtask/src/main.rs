//! Relaywire's project automation. Run `cargo xtask help`.

mod app;
mod aws_local;
mod bench;
mod cmd;
mod codegen;
mod demo;
mod fuzz;
mod package;
// The tests' private PostgreSQL, Redis and moto, shared as one file (std only) rather than
// through the test crate, which would make the xtask build the whole server.
#[allow(dead_code, unreachable_pub)]
#[path = "../../tests/src/services.rs"]
mod services;
mod supervisor;
mod test;
mod tools;
mod wasm;

use std::process::ExitCode;

const HELP: &str = "\
usage: cargo xtask <task>

tasks:
  test      everything CI runs: formatting, lints, native tests, the wasm build,
            generated-file freshness, the TypeScript checks and the browser tests
            (`cargo xtask test <check>...` runs some; `cargo xtask test --list`)
  serve-tests
            the browser tests' chat server and supervisor on fixed ports, for
            `wasm-pack test --headless --chrome client-wasm` run beside it
  demo      build and start the reference chat server with the example app
            (`--cluster`: three nodes on a private PostgreSQL and Redis;
            `--rust`: the chat page written in Rust instead of the React app;
            `--aws-local`: the serverless deployment, its Lambda functions behind
            the local API Gateway, on moto's DynamoDB)
  codegen   regenerate the generated TypeScript (bindings/) and the README tables
  package   build the npm package into target/npm/ (relaywire-<version>.tgz)
  bench     size, browser speed and server load beside socket.io and the native
            WebSocket; writes target/bench/report.md [size] [browser] [server]
  fuzz      fuzz the decoders and the server's frame handling [seconds each, 300]
  chaos     the chaos run on three nodes (node kills, Redis and PostgreSQL
            restarts); `--long` sends 10,000 messages through two minutes of it
  help      this text

Every task installs what it needs and is missing (the wasm32 target, Node packages)
or prints the one command that does.";

/// A task's failure, already worded for the person who ran it.
type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(rest),
        Some("demo") => demo::run(rest),
        Some("serve-tests") => test::serve_tests(),
        Some("codegen") => codegen::run(),
        Some("package") => package::run(rest),
        Some("fuzz") => fuzz::run(rest),
        Some("chaos") => test::chaos_command(rest),
        Some("bench") => bench::run(rest),
        Some("help" | "--help" | "-h") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nerror: {message}");
            ExitCode::FAILURE
        }
    }
}
