//! `cargo xtask test`: everything CI runs, in the order that fails fastest.

use crate::Result;
use crate::cmd::{Cmd, step};
use std::collections::BTreeMap;

use crate::supervisor::{ServerSpec, Supervisor};
use crate::tools::{
    ensure_chromium, ensure_npm_packages, ensure_wasm_bindgen_cli, ensure_wasm_pack,
    ensure_wasm_target, free_port, project_root, target_dir,
};
use crate::{app, package, wasm};

/// One named check; `cargo xtask test <name>...` runs a subset.
struct Check {
    name: &'static str,
    title: &'static str,
    run: fn() -> Result,
}

const CHECKS: &[Check] = &[
    Check {
        name: "fmt",
        title: "formatting (cargo fmt --check)",
        run: fmt,
    },
    Check {
        name: "clippy",
        title: "lints (cargo clippy -D warnings)",
        run: clippy,
    },
    Check {
        name: "native",
        title: "native tests, vectors, property tests and generated-file freshness",
        run: native_tests,
    },
    Check {
        name: "postgres",
        title: "the chat server's integration tests again, on a private PostgreSQL",
        run: postgres_tests,
    },
    Check {
        name: "wasm",
        title: "wasm32 build of the protocol and the browser client package",
        run: wasm_build,
    },
    Check {
        name: "size",
        title: "the browser payload stays within its gzip budget",
        run: crate::bench::check_budget,
    },
    Check {
        name: "doc",
        title: "documentation (cargo doc -D warnings)",
        run: docs,
    },
    Check {
        name: "aws",
        title: "the AWS template passes cfn-lint",
        run: aws_template,
    },
    Check {
        name: "ts",
        title: "TypeScript: the generated types compile strictly and type the vectors",
        run: typescript,
    },
    Check {
        name: "fuzz",
        title: "a short fuzzing run of both decoders and the server's frame handling",
        run: fuzz_briefly,
    },
    Check {
        name: "browser",
        title: "the browser client in headless Chromium against the real server",
        run: browser,
    },
    Check {
        name: "chaos",
        title: "chaos: clients through a misbehaving proxy and server restarts, nothing lost",
        run: chaos,
    },
    Check {
        name: "probe",
        title: "probes: what an attacker or a careless client tries, against the chat server binary",
        run: probe,
    },
    Check {
        name: "notify",
        title: "the notification service's typed web page, users in headless Chromium",
        run: notify,
    },
    Check {
        name: "tasks",
        title: "a catalogue of the test crate drives the prebuilt browser client in Chromium",
        run: tasks,
    },
    Check {
        name: "node",
        title: "the package in Node: its WebSocket or ws, server rendering, the provider under Vitest",
        run: node,
    },
    Check {
        name: "next",
        title: "a Next.js app: the README quick start prerendered, hydrated and chatting in Chromium",
        run: next,
    },
    Check {
        name: "shared",
        title: "tabs sharing one connection in Chromium: one socket, a leader closed mid-burst, nothing lost",
        run: shared,
    },
    Check {
        name: "rust-web",
        title: "the chat page written in Rust (typed browser client), two users in Chromium, with a server restart",
        run: rust_web,
    },
    Check {
        name: "aws-e2e",
        title: "the React example app, unchanged, on the Lambda functions behind the local API Gateway",
        run: aws_e2e,
    },
    Check {
        name: "e2e",
        title: "the React example app, two users in headless Chromium, with a server restart",
        run: e2e,
    },
];

pub(crate) fn run(names: &[String]) -> Result {
    if names.iter().any(|name| name == "--list") {
        for check in CHECKS {
            println!("{:10} {}", check.name, check.title);
        }
        return Ok(());
    }
    for name in names {
        if !CHECKS.iter().any(|check| check.name == name) {
            let known: Vec<_> = CHECKS.iter().map(|check| check.name).collect();
            return Err(format!(
                "unknown check `{name}`; checks: {}",
                known.join(", ")
            ));
        }
    }
    let selected = CHECKS
        .iter()
        .filter(|check| names.is_empty() || names.iter().any(|name| name == check.name));
    for check in selected {
        step(check.title);
        (check.run)().map_err(|err| format!("check `{}` failed: {err}", check.name))?;
    }
    println!("\nall checks passed");
    Ok(())
}

fn cargo(args: &[&str]) -> Result {
    Cmd::new("cargo", &project_root())
        .args(args.iter().copied())
        .run()
}

fn fmt() -> Result {
    cargo(&["fmt", "--all", "--", "--check"])
        .map_err(|err| format!("{err}; run `cargo fmt --all`"))?;
    // The fuzz targets are a workspace of their own.
    cargo(&[
        "fmt",
        "--manifest-path",
        "tests/fuzz/Cargo.toml",
        "--",
        "--check",
    ])
    .map_err(|err| format!("{err}; run `cargo fmt --manifest-path tests/fuzz/Cargo.toml`"))
}

fn clippy() -> Result {
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])?;
    // The browser clients and the Rust page exist only for wasm32.
    ensure_wasm_target()?;
    cargo(&[
        "clippy",
        "-p",
        "relaywire-client",
        "-p",
        "relaywire-web-chat",
        "--target",
        "wasm32-unknown-unknown",
        "--all-targets",
        "--features",
        "small-allocator",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])
}

fn native_tests() -> Result {
    cargo(&["test", "--workspace", "--quiet"])?;
    // The protocol without its `typescript` feature, as Rust services build it.
    cargo(&["check", "--quiet", "-p", "relaywire-protocol", "--lib"])
}

/// The server's integration suite with every test on its own new PostgreSQL database
/// (the suite reads `RELAYWIRE_TEST_POSTGRES`), so both stores pass the same tests.
fn postgres_tests() -> Result {
    let postgres = crate::services::Postgres::start()?;
    Cmd::new("cargo", &project_root())
        .args([
            "test",
            "--quiet",
            "-p",
            "relaywire-chat-server",
            "--test",
            "server",
        ])
        .env("RELAYWIRE_TEST_POSTGRES", postgres.url("postgres"))
        .run()
}

fn wasm_build() -> Result {
    ensure_wasm_target()?;
    cargo(&[
        "build",
        "--quiet",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "relaywire-protocol",
    ])?;
    wasm::build().map(drop)
}

fn docs() -> Result {
    Cmd::new("cargo", &project_root())
        .args(["doc", "--workspace", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;
    // The browser's typed Rust client exists on wasm32 only.
    Cmd::new("cargo", &project_root())
        .args([
            "doc",
            "-p",
            "relaywire-client",
            "--no-deps",
            "--quiet",
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
            "--features",
            "web,chat",
        ])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()
}

/// The SAM template, checked offline (the SAM transform included) by cfn-lint; the
/// functions it names are the binaries the AWS tests run behind the simulator.
fn aws_template() -> Result {
    Cmd::new("cfn-lint", &project_root())
        .args(["deploy/aws/template.yaml"])
        .run()
        .map_err(|err| format!("{err} (cfn-lint comes from PyPI: pip install cfn-lint)"))
}

fn typescript() -> Result {
    let dir = project_root().join("tests/ts");
    ensure_npm_packages(&dir)?;
    Cmd::new("node", &dir)
        .args(["generate-vectors.mjs"])
        .run()?;
    // The client's declarations, as the package ships them.
    let declarations = wasm::out_dir().join("relaywire_client.d.ts");
    if !declarations.exists() {
        wasm::build()?;
    }
    std::fs::copy(&declarations, dir.join("generated/relaywire_client.d.ts"))
        .map_err(|err| format!("cannot copy {}: {err}", declarations.display()))?;
    Cmd::new("node", &dir)
        .args([
            "node_modules/typescript/bin/tsc",
            "--project",
            "tsconfig.json",
        ])
        .run()
}

/// The reference chat server for a browser-driven check: a fresh database in
/// `target/<name>` that survives the restarts the tests cause, plus `extra` settings.
fn test_server(name: &str, extra: &[(&str, &str)]) -> Result<ServerSpec> {
    let mut settings = vec![("SEED_DEMO", "true")];
    settings.extend_from_slice(extra);
    server_of(
        "relaywire-chat-server",
        "relaywire-chat-server",
        name,
        &settings,
    )
}

/// The server `binary` of `package` for a browser-driven check, as [`test_server`]
/// describes.
fn server_of(
    package: &str,
    binary: &str,
    name: &str,
    extra: &[(&str, &str)],
) -> Result<ServerSpec> {
    cargo(&["build", "--quiet", "-p", package, "--bin", binary])?;
    let data_dir = target_dir().join(name);
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|err| format!("{}: {err}", data_dir.display()))?;
    let port = free_port(0)?;
    let mut env: BTreeMap<String, String> = [
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("DEV_LOGIN", "true"),
        ("LOG_LEVEL", "info"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("DATA_DIR".to_owned(), data_dir.display().to_string());
    env.insert(
        "DATABASE_URL".to_owned(),
        data_dir.join("chat.db").display().to_string(),
    );
    env.entry("CORS_ORIGIN".to_owned())
        .or_insert_with(|| format!("http://127.0.0.1:{port}"));
    Ok(ServerSpec {
        binary: target_dir().join("debug").join(binary),
        port,
        env,
        log: data_dir.join("server.log"),
    })
}

/// The ports of the browser tests' fixture: the chat server, its supervisor, and the
/// page the test runner serves (the cookie tests need its origin named: `*` never
/// carries credentials).
struct FixturePorts {
    server: u16,
    supervisor: u16,
    runner: u16,
}

/// Where `cargo xtask serve-tests` keeps the fixture, and where the browser tests look
/// for it when no server was named at build time (`client-wasm/tests/support/env.rs`).
const FIXTURE_PORTS: FixturePorts = FixturePorts {
    server: 18_420,
    supervisor: 18_421,
    runner: 18_422,
};

/// The chat server the browser tests run against, with test hooks, a short heartbeat
/// and room for their bursts, under a supervisor that kills and restarts it.
fn browser_fixture(ports: &FixturePorts) -> Result<Supervisor> {
    let mut spec = test_server(
        "browser-tests",
        &[
            ("SERVICE_KEYS", "browser-tests-key"),
            ("TEST_HOOKS", "true"),
            ("HEARTBEAT_INTERVAL", "1000"),
            ("RATE_LIMIT", "1000"),
            ("RATE_LIMIT_BURST", "2000"),
            ("USER_RATE_LIMIT", "1000"),
            ("USER_RATE_LIMIT_BURST", "2000"),
        ],
    )?;
    std::net::TcpListener::bind(("127.0.0.1", ports.server))
        .map_err(|err| format!("the test server's port 127.0.0.1:{}: {err}", ports.server))?;
    spec.port = ports.server;
    spec.env.insert(
        "CORS_ORIGIN".to_owned(),
        format!("http://127.0.0.1:{}", ports.runner),
    );
    Supervisor::start(spec, ports.supervisor)
}

/// Free ports for one run of the browser tests.
fn free_fixture_ports() -> Result<FixturePorts> {
    // Held together, so the three differ.
    let listeners: Vec<std::net::TcpListener> = (0..3)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<_>>()
        .map_err(|err| format!("no free port on 127.0.0.1: {err}"))?;
    let port = |i: usize| {
        listeners[i]
            .local_addr()
            .map(|addr| addr.port())
            .map_err(|err| err.to_string())
    };
    Ok(FixturePorts {
        server: port(0)?,
        supervisor: port(1)?,
        runner: port(2)?,
    })
}

/// The browser tests (`client-wasm/tests/`: the JavaScript API and the typed Rust
/// client) run as a user runs them, with `wasm-pack test`, against a fixture on ports
/// of their own, which the tests read at build time.
fn browser() -> Result {
    ensure_wasm_target()?;
    ensure_wasm_bindgen_cli()?;
    ensure_wasm_pack()?;
    ensure_chromium()?;
    let ports = free_fixture_ports()?;
    let supervisor = browser_fixture(&ports)?;
    Cmd::new("wasm-pack", &project_root())
        .args(["test", "--headless", "--chrome", "client-wasm"])
        .env(
            "WASM_BINDGEN_TEST_ADDRESS",
            format!("127.0.0.1:{}", ports.runner),
        )
        .env("RELAYWIRE_TEST_SERVER", supervisor.server_url())
        .env("RELAYWIRE_TEST_SUPERVISOR", supervisor.control_url())
        .run()
}

/// `cargo xtask serve-tests`: the browser tests' fixture on its fixed ports, until
/// interrupted (or an hour has passed), for `wasm-pack test` run by hand.
pub(crate) fn serve_tests() -> Result {
    let ports = FIXTURE_PORTS;
    let supervisor = browser_fixture(&ports)?;
    println!(
        "The browser tests' chat server is on {} and its supervisor on {}.\n\
         In another terminal, from the repository's root:\n\n    \
         WASM_BINDGEN_TEST_ADDRESS=127.0.0.1:{} wasm-pack test --headless --chrome client-wasm\n\n\
         Ctrl-C stops it; it stops by itself after an hour.",
        supervisor.server_url(),
        supervisor.control_url(),
        ports.runner
    );
    std::thread::sleep(std::time::Duration::from_secs(3600));
    Ok(())
}

/// Runs `node tests/e2e/<script>`, which drives Chromium against the supervised server
/// it finds in `RELAYWIRE_APP` (its supervisor in `RELAYWIRE_SUPERVISOR`), with `extra`
/// variables.
fn page_script(script: &str, supervisor: &Supervisor, extra: &[(&str, String)]) -> Result {
    node_script(
        script,
        (supervisor.server_url(), supervisor.control_url()),
        extra,
    )
}

/// Runs `node tests/e2e/<script>` against the app at `app`, which `control` takes down
/// (`/kill`) and brings back (`/start`).
fn node_script(script: &str, (app, control): (String, String), extra: &[(&str, String)]) -> Result {
    let chromium = ensure_chromium()?;
    let e2e = project_root().join("tests/e2e");
    ensure_npm_packages(&e2e)?;
    let mut command = Cmd::new("node", &e2e)
        .args([script])
        .env("RELAYWIRE_APP", app)
        .env("RELAYWIRE_SUPERVISOR", control)
        .env(
            "CHROMIUM",
            chromium.with_file_name("chromium").display().to_string(),
        );
    for (key, value) in extra {
        command = command.env(key, value.clone());
    }
    command.run()
}

fn notify() -> Result {
    let dist = app::build(app::NOTIFY_WEB)?;
    let dist = dist.display().to_string();
    let spec = server_of(
        "relaywire-notify-server",
        "relaywire-notify-server",
        "notify",
        &[
            ("SERVICE_KEYS", "notify-service-key"),
            ("STATIC_DIR", &dist),
        ],
    )?;
    let supervisor = Supervisor::start(spec, 0)?;
    page_script(
        "notify.mjs",
        &supervisor,
        &[("RELAYWIRE_SERVICE_KEY", "notify-service-key".to_owned())],
    )
}

/// Serves the npm package as built, the task board's TypeScript compiled to
/// JavaScript and a page importing both, from the task board's server.
fn tasks() -> Result {
    package::build()?;
    let root = project_root();
    let site = target_dir().join("tasks-web");
    let _ = std::fs::remove_dir_all(&site);
    copy_dir(&target_dir().join("npm/relaywire"), &site)?;
    let ts = root.join("tests/ts");
    ensure_npm_packages(&ts)?;
    Cmd::new("node", &ts)
        .args([
            "node_modules/typescript/bin/tsc",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--outDir",
            &site.display().to_string(),
            "../bindings/tasks.ts",
        ])
        .run()?;
    let e2e = root.join("tests/e2e");
    std::fs::copy(e2e.join("tasks.html"), site.join("tasks.html"))
        .map_err(|err| format!("cannot copy tasks.html: {err}"))?;
    let site = site.display().to_string();
    let spec = server_of(
        "relaywire-tests",
        "task-server",
        "tasks",
        &[("TEST_HOOKS", "true"), ("STATIC_DIR", &site)],
    )?;
    let supervisor = Supervisor::start(spec, 0)?;
    page_script("tasks.mjs", &supervisor, &[])
}

/// `relaywire/shared` in Chromium: `tests/e2e/shared.html` next to the package as
/// built, served by the chat server, opened in several tabs by `tests/e2e/shared.mjs`.
fn shared() -> Result {
    package::build()?;
    let site = target_dir().join("shared-static");
    let _ = std::fs::remove_dir_all(&site);
    copy_dir(&target_dir().join("npm/relaywire"), &site.join("relaywire"))?;
    let e2e = project_root().join("tests/e2e");
    std::fs::copy(e2e.join("shared.html"), site.join("shared.html"))
        .map_err(|err| format!("cannot copy shared.html: {err}"))?;
    let site = site.display().to_string();
    let spec = test_server(
        "shared",
        &[
            ("SERVICE_KEYS", "shared-tests-service-key"),
            ("STATIC_DIR", &site),
            // One socket carries every tab's burst: the per-connection limit sees their sum.
            ("RATE_LIMIT", "1000"),
            ("RATE_LIMIT_BURST", "2000"),
            ("USER_RATE_LIMIT", "1000"),
            ("USER_RATE_LIMIT_BURST", "2000"),
        ],
    )?;
    let supervisor = Supervisor::start(spec, 0)?;
    page_script(
        "shared.mjs",
        &supervisor,
        &[
            (
                "RELAYWIRE_SERVICE_KEY",
                "shared-tests-service-key".to_owned(),
            ),
            ("RELAYWIRE_TEST_JWT_SECRET", TEST_JWT_SECRET.to_owned()),
        ],
    )
}

/// Copies the files of `from` (not its folders) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result {
    std::fs::create_dir_all(to).map_err(|err| format!("{}: {err}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|err| format!("{}: {err}", from.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|err| format!("{}: {err}", from.display()))?
            .path();
        if path.is_file()
            && let Some(name) = path.file_name()
        {
            std::fs::copy(&path, to.join(name))
                .map_err(|err| format!("{}: {err}", path.display()))?;
        }
    }
    Ok(())
}

fn e2e() -> Result {
    let dist = app::build(app::REACT_CHAT)?;
    let dist = dist.display().to_string();
    let spec = test_server(
        "e2e",
        &[
            ("SERVICE_KEYS", "e2e-tests-service-key"),
            ("STATIC_DIR", &dist),
        ],
    )?;
    let supervisor = Supervisor::start(spec, 0)?;
    let screenshots = target_dir().join("e2e");
    page_script(
        "chat.mjs",
        &supervisor,
        &[
            ("RELAYWIRE_SERVICE_KEY", "e2e-tests-service-key".to_owned()),
            ("RELAYWIRE_SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
}

/// The React app's end-to-end script (`chat.mjs`), unchanged, against the serverless
/// deployment run locally: "killing the server" takes the gateway down (connections
/// cut, handshakes refused), "starting" it brings it back.
fn aws_e2e() -> Result {
    let dist = app::build(app::REACT_CHAT)?;
    let key = "aws-e2e-service-key";
    let port = free_port(0)?;
    let local =
        crate::aws_local::AwsLocal::start(port, &dist, &[("SERVICE_KEYS", key.to_owned())])?;
    let screenshots = target_dir().join("aws-e2e");
    node_script(
        "chat.mjs",
        (local.url(), local.control_url()),
        &[
            ("RELAYWIRE_SERVICE_KEY", key.to_owned()),
            ("RELAYWIRE_SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
}

/// `examples/web-chat`, the page written in Rust, driven by `tests/e2e/web-chat.mjs`.
fn rust_web() -> Result {
    let dist = app::build_rust_web()?;
    let dist = dist.display().to_string();
    let spec = test_server(
        "rust-web",
        &[
            ("SERVICE_KEYS", "rust-web-service-key"),
            ("STATIC_DIR", &dist),
        ],
    )?;
    let supervisor = Supervisor::start(spec, 0)?;
    let screenshots = target_dir().join("e2e");
    page_script(
        "web-chat.mjs",
        &supervisor,
        &[
            ("RELAYWIRE_SERVICE_KEY", "rust-web-service-key".to_owned()),
            ("RELAYWIRE_SCREENSHOTS", screenshots.display().to_string()),
        ],
    )
}

/// The secret the test servers sign and verify tokens with.
const TEST_JWT_SECRET: &str = "browser-tests-secret-0123456789";

/// `tests/node`: the package installed as a user installs it, run by Node against the
/// chat server: the client with `ws` and with Node's own WebSocket, from CommonJS, the
/// React provider under Vitest with happy-dom; its declarations compiled with
/// `skipLibCheck: false` under the Vite and Next.js templates' settings, with every
/// TypeScript example of the READMEs.
fn node() -> Result {
    let dir = app::install_package("tests/node")?;
    write_readme_examples(&dir)?;
    let supervisor = Supervisor::start(test_server("node-tests", &[])?, 0)?;
    let run = |args: &[&str]| {
        Cmd::new("node", &dir)
            .args(args.iter().copied())
            .env("RELAYWIRE_TEST_SERVER", supervisor.server_url())
            .env("RELAYWIRE_TEST_JWT_SECRET", TEST_JWT_SECRET)
            .run()
    };
    run(&["client.mjs"])?;
    // Node 20's WebSocket is behind a flag; from 22 it is always there.
    run(&["--experimental-websocket", "client.mjs"])?;
    // So is `require()` of an ES module, before 22.12.
    run(&["--experimental-require-module", "require.cjs"])?;
    run(&["node_modules/vitest/vitest.mjs", "run"])?;
    let tsc = "node_modules/typescript/bin/tsc";
    run(&[tsc, "--project", "tsconfig.vite.json"])?;
    run(&[tsc, "--project", "tsconfig.next.json"])
}

/// The fenced code blocks of `lang` in the Markdown file at `path` (from the project
/// root), in order.
fn code_blocks(path: &str, lang: &str) -> Result<Vec<String>> {
    let file = project_root().join(path);
    let text =
        std::fs::read_to_string(&file).map_err(|err| format!("{}: {err}", file.display()))?;
    let fence = format!("```{lang}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match current.as_mut() {
            None if line == fence => current = Some(String::new()),
            None => {}
            Some(_) if line == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    Ok(blocks)
}

/// The README's React quick start, its one `tsx` block.
fn readme_quick_start() -> Result<String> {
    match code_blocks("README.md", "tsx")?.as_slice() {
        [quick_start] => Ok(quick_start.clone()),
        blocks => Err(format!(
            "README.md should have one tsx block, the React quick start; it has {}",
            blocks.len()
        )),
    }
}

/// Writes every TypeScript example of the READMEs into `tests/node/readme/`, where
/// `tsconfig.next.json` compiles them against the installed package (the root
/// README's imports of `./bindings/chat` find a link to it there).
fn write_readme_examples(dir: &std::path::Path) -> Result {
    let out = dir.join("readme");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("bindings"))
        .map_err(|err| format!("{}: {err}", out.display()))?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        project_root().join("bindings/chat.ts"),
        out.join("bindings/chat.ts"),
    )
    .map_err(|err| format!("{}: {err}", out.display()))?;
    let mut written = 0;
    for (readme, stem) in [
        ("README.md", "root"),
        ("bindings/npm/README.md", "package"),
        ("client-wasm/README.md", "client"),
    ] {
        for lang in ["ts", "tsx"] {
            for (index, block) in code_blocks(readme, lang)?.iter().enumerate() {
                let file = out.join(format!("{stem}-{index}.{lang}"));
                std::fs::write(&file, block).map_err(|err| format!("{}: {err}", file.display()))?;
                written += 1;
            }
        }
    }
    if written < 5 {
        return Err(format!(
            "only {written} TypeScript examples found in the READMEs"
        ));
    }
    Ok(())
}

/// A `next start` server, stopped when dropped.
struct NextServer(std::process::Child);

impl Drop for NextServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tests/next-app`: the README's quick start and the Next-Auth token pattern in a
/// Next.js App Router app, built by `next build`, served by `next start` with the chat
/// server behind its rewrites, and driven in Chromium.
fn next() -> Result {
    let quick_start = project_root().join("tests/next-app/app/quickstart.tsx");
    std::fs::write(&quick_start, readme_quick_start()?)
        .map_err(|err| format!("{}: {err}", quick_start.display()))?;
    let dir = app::install_package("tests/next-app")?;
    let mut spec = test_server("next-app", &[])?;
    let port = std::iter::repeat_with(|| free_port(0))
        .find(|port| !matches!(port, Ok(port) if *port == spec.port))
        .unwrap_or_else(|| Err("no free port".into()))?;
    let origin = format!("http://127.0.0.1:{port}");
    // The page's origin is the app's: the chat server sits behind its rewrites.
    spec.env.insert("CORS_ORIGIN".to_owned(), origin.clone());
    let supervisor = Supervisor::start(spec, 0)?;
    let next_bin = dir
        .join("node_modules/next/dist/bin/next")
        .display()
        .to_string();
    Cmd::new("node", &dir)
        .args([next_bin.as_str(), "build"])
        .env("RELAYWIRE_SERVER", supervisor.server_url())
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .run()?;
    let child = std::process::Command::new("node")
        .args([next_bin.as_str(), "start", "-H", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .current_dir(&dir)
        .env("RELAYWIRE_SERVER", supervisor.server_url())
        .env("JWT_SECRET", TEST_JWT_SECRET)
        .env("NEXT_TELEMETRY_DISABLED", "1")
        .spawn()
        .map_err(|err| format!("cannot start next: {err}"))?;
    let _next = NextServer(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            return Err(format!("next start did not listen on {origin} within 30 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    page_script("next.mjs", &supervisor, &[("RELAYWIRE_NEXT", origin)])
}

/// Builds the chat server and the test crate's binaries (the probe suite, the chaos
/// test); returns the chat server's path.
fn build_server_and_test_binaries() -> Result<std::path::PathBuf> {
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "relaywire-chat-server",
        "-p",
        "relaywire-tests",
        "--bins",
    ])?;
    Ok(target_dir().join("debug/relaywire-chat-server"))
}

fn probe() -> Result {
    let server = build_server_and_test_binaries()?;
    Cmd::new(
        &target_dir().join("debug/probe").display().to_string(),
        &project_root(),
    )
    .env("RELAYWIRE_SERVER_BIN", server.display().to_string())
    .run()
}

fn chaos() -> Result {
    run_chaos(&[])?;
    step("chaos on three nodes, with node kills and Redis and PostgreSQL restarts");
    run_chaos(&[("CHAOS_CLUSTER", "3"), ("CHAOS_SECONDS", "20")])
}

/// `cargo xtask chaos [--long]`: the cluster chaos run on its own; `--long` sends
/// 10,000 messages (2,500 from each of four clients) through two minutes of chaos.
pub(crate) fn chaos_command(args: &[String]) -> Result {
    let long = match args {
        [] => false,
        [flag] if flag == "--long" => true,
        _ => return Err("usage: cargo xtask chaos [--long]".to_owned()),
    };
    let mut settings = vec![("CHAOS_CLUSTER", "3")];
    if long {
        settings.extend([("CHAOS_MESSAGES", "2500"), ("CHAOS_SECONDS", "120")]);
    } else {
        settings.push(("CHAOS_SECONDS", "20"));
    }
    run_chaos(&settings)
}

/// Builds the chaos run's parts and runs it with `settings` (`CHAOS_*`).
fn run_chaos(settings: &[(&str, &str)]) -> Result {
    let chromium = ensure_chromium()?;
    package::build()?;
    let e2e = project_root().join("tests/e2e");
    ensure_npm_packages(&e2e)?;
    let server = build_server_and_test_binaries()?;
    // The page the browser client runs in, next to the package it imports.
    let site = target_dir().join("chaos-static");
    let _ = std::fs::remove_dir_all(&site);
    let package_dir = site.join("relaywire");
    std::fs::create_dir_all(&package_dir)
        .map_err(|err| format!("{}: {err}", package_dir.display()))?;
    let built = target_dir().join("npm/relaywire");
    for entry in std::fs::read_dir(&built).map_err(|err| format!("{}: {err}", built.display()))? {
        let path = entry.map_err(|err| err.to_string())?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, package_dir.join(name)).map_err(|err| err.to_string())?;
        }
    }
    std::fs::copy(e2e.join("chaos.html"), site.join("chaos.html"))
        .map_err(|err| err.to_string())?;
    let program = target_dir().join("debug/chaos").display().to_string();
    let root = project_root();
    let mut command = Cmd::new(&program, &root);
    for (name, value) in settings {
        command = command.env(name, *value);
    }
    command
        .env("RELAYWIRE_SERVER_BIN", server.display().to_string())
        .env("RELAYWIRE_CHAOS_BROWSER", e2e.display().to_string())
        .env("RELAYWIRE_CHAOS_STATIC", site.display().to_string())
        .env(
            "CHROMIUM",
            chromium.with_file_name("chromium").display().to_string(),
        )
        .run()
}

fn fuzz_briefly() -> Result {
    crate::fuzz::run_all(10)
}
