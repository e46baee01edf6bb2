//! `cargo xtask bench`: builds what the benchmark needs (the package, a build per size
//! step, the release server and `relaywire-bench`), then runs it. It writes
//! `target/bench/report.md`, `target/bench/report.json` and the README's table.
//!
//! The size budget lives here too: `cargo xtask test` fails when the package grows
//! past it.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::package;
use crate::tools::{ensure_chromium, ensure_npm_packages, project_root, target_dir};
use crate::wasm::{self, Names};

/// The most the browser payload may weigh, gzip -9 bytes: Relaywire's client bundled
/// as an app imports it (`bench/js/size.mjs`). Raise it only for a feature worth it
/// (the last four: protocol 3's batches and answering copies, 1,100 bytes for three
/// times the throughput; protocol 4's opening frame, 254 bytes, so the client reaches
/// servers that cannot speak first, API Gateway's; the close an `error` announces
/// (`closeCode`), 180 bytes, so a client behind API Gateway, whose closes are all 1000,
/// reconnects or refreshes where the server meant it to instead of stopping; the early
/// retry after a server going away or restarting, 8 bytes, so a rolling restart costs
/// its clients a fraction of the first backoff step).
pub(crate) const GZIP_BUDGET_BYTES: u64 = 40_138;

/// One step of the size work: a build of the browser client with the profile settings
/// of every step before it and its own.
struct SizeStep {
    name: &'static str,
    what: &'static str,
    /// `opt-level`, `lto`, `codegen-units`, `panic`.
    profile: [&'static str; 4],
    allocator: bool,
}

/// The steps in the order applied; each builds in its own target folder, so repeat
/// runs are quick. The last two are what `cargo xtask package` ships.
const SIZE_STEPS: &[SizeStep] = &[
    SizeStep {
        name: "release",
        what: "cargo's `release` profile: opt-level 3, no LTO, 16 codegen units, unwinding, dlmalloc",
        profile: ["3", "false", "16", "unwind"],
        allocator: false,
    },
    SizeStep {
        name: "opt-level-z",
        what: "`opt-level = \"z\"`",
        profile: ["z", "false", "16", "unwind"],
        allocator: false,
    },
    SizeStep {
        name: "lto",
        what: "`lto = true`",
        profile: ["z", "true", "16", "unwind"],
        allocator: false,
    },
    SizeStep {
        name: "codegen-units-1",
        what: "`codegen-units = 1`",
        profile: ["z", "true", "1", "unwind"],
        allocator: false,
    },
    SizeStep {
        name: "panic-abort",
        what: "`panic = \"abort\"` (wasm32-unknown-unknown aborts already)",
        profile: ["z", "true", "1", "abort"],
        allocator: false,
    },
    SizeStep {
        name: "talc",
        what: "Talc instead of dlmalloc (the `small-allocator` feature)",
        profile: ["z", "true", "1", "abort"],
        allocator: true,
    },
];

const PARTS: &[&str] = &["size", "browser", "server"];

fn steps_dir() -> PathBuf {
    target_dir().join("bench/steps")
}

/// Builds every size step; returns the manifest `relaywire-bench` reads.
fn size_steps() -> Result<PathBuf> {
    let root = project_root();
    let mut manifest = String::new();
    for (index, size_step) in SIZE_STEPS.iter().enumerate() {
        step(&format!("size step {}: {}", index + 1, size_step.name));
        let target = steps_dir().join(format!("target-{}", size_step.name));
        let target_arg = target.display().to_string();
        let [opt_level, lto, codegen_units, panic] = size_step.profile;
        let mut build = wasm::client_build(&root)
            .args(["--target-dir", target_arg.as_str()])
            .env("CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL", opt_level)
            .env("CARGO_PROFILE_WASM_RELEASE_LTO", lto)
            .env("CARGO_PROFILE_WASM_RELEASE_CODEGEN_UNITS", codegen_units)
            .env("CARGO_PROFILE_WASM_RELEASE_PANIC", panic);
        if size_step.allocator {
            build = build.args(["--features", "small-allocator"]);
        }
        build.run()?;
        let out = steps_dir().join(format!("{}-{}", index + 1, size_step.name));
        wasm::bindgen(&wasm::compiled(&target), &out, Names::Drop)?;
        manifest.push_str(&format!(
            "{}\t{}\t{}\n",
            size_step.name,
            size_step.what,
            out.display()
        ));
    }
    // The last step: wasm-opt, exactly as the package ships it.
    let shipped = wasm::out_dir();
    let out = steps_dir().join(format!("{}-wasm-opt", SIZE_STEPS.len() + 1));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|err| format!("{}: {err}", out.display()))?;
    for file in ["relaywire_client_bg.wasm", "relaywire_client.js"] {
        std::fs::copy(shipped.join(file), out.join(file)).map_err(|err| err.to_string())?;
    }
    manifest.push_str(&format!(
        "wasm-opt\t`wasm-opt -Oz` to a fixed point, then flattened, rerelooped and again (binaryen from npm): what the package ships\t{}\n",
        out.display()
    ));
    let path = steps_dir().join("steps.tsv");
    std::fs::write(&path, manifest).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok(path)
}

/// The shipped wasm, optimised the same way but with its function names kept.
fn named_wasm() -> Result<PathBuf> {
    let out = target_dir().join("bench/named");
    wasm::bindgen(&wasm::compiled(&target_dir()), &out, Names::Keep)?;
    let named = out.join("relaywire_client_bg.wasm");
    wasm::optimize(&named, Names::Keep)?;
    Ok(named)
}

/// The package with the named wasm embedded instead, so the browser's CPU profile
/// names the client's functions. Same code, same glue.
fn named_package(named: &Path) -> Result<PathBuf> {
    let shipped = target_dir().join("npm/relaywire");
    let out = target_dir().join("bench/named-package");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|err| format!("{}: {err}", out.display()))?;
    for entry in
        std::fs::read_dir(&shipped).map_err(|err| format!("{}: {err}", shipped.display()))?
    {
        let path = entry.map_err(|err| err.to_string())?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, out.join(name)).map_err(|err| err.to_string())?;
        }
    }
    let wasm = std::fs::read(named).map_err(|err| format!("{}: {err}", named.display()))?;
    let module = out.join("relaywire_client_wasm.js");
    std::fs::write(&module, package::wasm_module(&wasm))
        .map_err(|err| format!("{}: {err}", module.display()))?;
    Ok(out)
}

/// `cargo xtask bench [size] [browser] [server]`.
pub(crate) fn run(args: &[String]) -> Result {
    for arg in args {
        if !PARTS.contains(&arg.as_str()) {
            return Err(format!(
                "`cargo xtask bench` runs {} (all by default), not `{arg}`",
                PARTS.join(", ")
            ));
        }
    }
    let wants = |part: &str| args.is_empty() || args.iter().any(|a| a == part);
    let root = project_root();
    let js = root.join("bench/js");
    ensure_npm_packages(&js)?;
    package::build()?;
    let mut env: Vec<(&str, String)> = vec![
        (
            "RELAYWIRE_BENCH_OUT",
            target_dir().join("bench").display().to_string(),
        ),
        (
            "RELAYWIRE_PACKAGE",
            target_dir().join("npm/relaywire").display().to_string(),
        ),
        ("RELAYWIRE_GZIP_BUDGET", GZIP_BUDGET_BYTES.to_string()),
    ];
    let named = named_wasm()?;
    if wants("size") {
        env.push(("RELAYWIRE_SIZE_STEPS", size_steps()?.display().to_string()));
        env.push(("RELAYWIRE_NAMED_WASM", named.display().to_string()));
    }
    if wants("browser") {
        env.push((
            "RELAYWIRE_PROFILE_PACKAGE",
            named_package(&named)?.display().to_string(),
        ));
        let chromedriver = ensure_chromium()?;
        env.push((
            "CHROMIUM",
            chromedriver
                .with_file_name("chromium")
                .display()
                .to_string(),
        ));
    }
    step("building the release server and the benchmark");
    Cmd::new("cargo", &root)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "relaywire-chat-server",
            "-p",
            "relaywire-bench",
        ])
        .run()?;
    env.push((
        "RELAYWIRE_SERVER_BIN",
        target_dir()
            .join("release/relaywire-chat-server")
            .display()
            .to_string(),
    ));
    step("measuring");
    let binary = target_dir()
        .join("release/relaywire-bench")
        .display()
        .to_string();
    let mut command = Cmd::new(&binary, &root).args(args.iter().cloned());
    for (key, value) in env {
        command = command.env(key, value);
    }
    command.run()
}

/// The size check of `cargo xtask test`: the package's gzip size against the budget.
pub(crate) fn check_budget() -> Result {
    let root = project_root();
    let js = root.join("bench/js");
    ensure_npm_packages(&js)?;
    package::build()?;
    let package_dir = target_dir().join("npm/relaywire").display().to_string();
    let measured = gzip_size(&js, &package_dir)?;
    println!(
        "browser payload: {measured} bytes gzip -9, budget {GZIP_BUDGET_BYTES} ({:.0}%)",
        measured as f64 * 100.0 / GZIP_BUDGET_BYTES as f64
    );
    if measured > GZIP_BUDGET_BYTES {
        return Err(format!(
            "the browser payload is {measured} bytes gzip, over its budget of \
             {GZIP_BUDGET_BYTES} (xtask/src/bench.rs); `cargo xtask bench size` shows \
             what the wasm is made of"
        ));
    }
    Ok(())
}

fn gzip_size(js: &Path, package_dir: &str) -> Result<u64> {
    let output = Cmd::new("node", js)
        .args(["size.mjs", "budget", package_dir])
        .read()
        .ok_or("size.mjs could not measure the package")?;
    output
        .trim()
        .parse()
        .map_err(|_| format!("size.mjs printed `{}`, not a size", output.trim()))
}
