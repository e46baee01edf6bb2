//! `cargo xtask test`: everything CI runs, in the order that fails fastest.

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::tools::{ensure_npm_packages, ensure_wasm_target, project_root};

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
        name: "wasm",
        title: "wasm32 build of the protocol and the client",
        run: wasm_build,
    },
    Check {
        name: "doc",
        title: "documentation (cargo doc -D warnings)",
        run: docs,
    },
    Check {
        name: "ts",
        title: "TypeScript: the generated types compile strictly and type the vectors",
        run: typescript,
    },
];

pub(crate) fn run(names: &[String]) -> Result {
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
    cargo(&["fmt", "--all", "--", "--check"]).map_err(|err| format!("{err}; run `cargo fmt --all`"))
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
    ])
}

fn native_tests() -> Result {
    cargo(&["test", "--workspace", "--quiet"])?;
    // The protocol without its `typescript` feature, as Rust services build it.
    cargo(&["check", "--quiet", "-p", "relaywire-protocol", "--lib"])
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
        "-p",
        "relaywire-client",
    ])
}

fn docs() -> Result {
    Cmd::new("cargo", &project_root())
        .args(["doc", "--workspace", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()
}

fn typescript() -> Result {
    let dir = project_root().join("tests/ts");
    ensure_npm_packages(&dir)?;
    Cmd::new("node", &dir)
        .args(["generate-vectors.mjs"])
        .run()?;
    Cmd::new("node", &dir)
        .args([
            "node_modules/typescript/bin/tsc",
            "--project",
            "tsconfig.json",
        ])
        .run()
}
