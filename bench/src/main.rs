//! `relaywire-bench`: measures the npm package's size, the browser client's speed in
//! headless Chromium and the reference server under load, each beside what users would
//! pick instead, in one run on one machine, and writes `report.md`, `report.json` and
//! the README's table.
//!
//! `cargo xtask bench [size] [browser] [server]` builds what this needs and runs it;
//! the inputs come from the environment it sets.

mod browser;
mod load;
mod report;
mod size;
mod stats;
mod wasm_profile;

use std::path::{Path, PathBuf};

type Result<T = (), E = String> = std::result::Result<T, E>;

fn var(name: &str) -> Result<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| format!("{name} is not set: run `cargo xtask bench`"))
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .map_err(|_| format!("{name}={value} is not a number")),
        _ => Ok(default),
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() {
    if let Err(err) = run() {
        eprintln!("bench: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result {
    let parts: Vec<String> = std::env::args().skip(1).collect();
    for part in &parts {
        if !["size", "browser", "server"].contains(&part.as_str()) {
            return Err(format!(
                "unknown part `{part}`: the parts are size, browser and server"
            ));
        }
    }
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let root = project_root();
    let js_dir = root.join("bench/js");
    let out_dir = var("RELAYWIRE_BENCH_OUT")?;
    std::fs::create_dir_all(&out_dir).map_err(|err| format!("{}: {err}", out_dir.display()))?;
    let mut report = report::Report {
        machine: report::Machine::describe(),
        size: None,
        browser: None,
        server: None,
    };
    if wants("size") {
        eprintln!("bench: sizes");
        report.size = Some(size::run(&size::Inputs {
            js_dir: js_dir.clone(),
            package: var("RELAYWIRE_PACKAGE")?,
            steps: var("RELAYWIRE_SIZE_STEPS")?,
            named_wasm: var("RELAYWIRE_NAMED_WASM")?,
            budget_gzip: number("RELAYWIRE_GZIP_BUDGET", 0)?,
            out_dir: out_dir.clone(),
        })?);
    }
    if wants("browser") {
        eprintln!("bench: the browser client in headless Chromium");
        report.browser = Some(browser::run(
            &js_dir,
            &var("RELAYWIRE_SERVER_BIN")?,
            &var("RELAYWIRE_PACKAGE")?,
            &out_dir,
        )?);
    }
    if wants("server") {
        eprintln!("bench: the servers under load");
        let settings = load::Settings {
            idle: number("BENCH_IDLE", 10_000)?,
            receivers: number("BENCH_RECEIVERS", 200)?,
            messages: number("BENCH_FANOUT_MESSAGES", 2_000)?,
            window: number("BENCH_WINDOW", 16)?,
            runs: number("BENCH_RUNS", 3)?,
        };
        let runtime = tokio::runtime::Runtime::new().map_err(|err| err.to_string())?;
        report.server =
            Some(runtime.block_on(load::run(&var("RELAYWIRE_SERVER_BIN")?, &js_dir, settings))?);
    }
    report::write(&report, &out_dir, &root.join("README.md"))?;
    println!("{}", report::markdown(&report));
    eprintln!(
        "bench: wrote {} and report.json",
        out_dir.join("report.md").display()
    );
    Ok(())
}
