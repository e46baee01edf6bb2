//! Fuzzing with cargo-fuzz (libFuzzer) on stable Rust: `--sanitizer none` keeps it off
//! nightly; libFuzzer still guides by coverage and catches panics, and its RSS and
//! malloc limits catch unbounded allocation.
//!
//! `cargo xtask test fuzz` runs each target briefly; `cargo xtask fuzz [seconds]` runs
//! each for longer. A crash is copied into `tests/vectors/regressions/`, where
//! `cargo test` replays it from then on.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::tools::{project_root, target_dir};

/// The targets: both decoders and the server's frame handling.
pub(crate) const TARGETS: &[&str] = &["decode_client", "decode_server", "server_frames"];

fn fuzz_dir() -> PathBuf {
    project_root().join("tests/fuzz")
}

/// Installs cargo-fuzz when it is missing.
fn ensure_cargo_fuzz() -> Result {
    let root = project_root();
    if Cmd::new("cargo", &root)
        .args(["fuzz", "--version"])
        .read()
        .is_some()
    {
        return Ok(());
    }
    println!("installing cargo-fuzz (a minute or two, once)");
    Cmd::new("cargo", &root)
        .args(["install", "cargo-fuzz"])
        .run()
}

/// A corpus seeded with the conformance vectors and every regression input.
fn corpus(target: &str) -> Result<PathBuf> {
    let corpus = target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|err| format!("{}: {err}", corpus.display()))?;
    let vectors = project_root().join("tests/vectors");
    for dir in [vectors.clone(), vectors.join("regressions")] {
        for entry in std::fs::read_dir(&dir).map_err(|err| format!("{}: {err}", dir.display()))? {
            let path = entry.map_err(|err| err.to_string())?.path();
            if path.is_file() && path.extension().is_none_or(|ext| ext != "md") {
                let name = format!(
                    "seed-{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                std::fs::copy(&path, corpus.join(name)).map_err(|err| err.to_string())?;
            }
        }
    }
    Ok(corpus)
}

/// Copies any crash libFuzzer left into the regression vectors.
fn keep_crashes(target: &str) -> Vec<PathBuf> {
    let artifacts = fuzz_dir().join("artifacts").join(target);
    let regressions = project_root().join("tests/vectors/regressions");
    let Ok(entries) = std::fs::read_dir(&artifacts) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name().is_some_and(|name| {
                name.to_string_lossy().starts_with("crash-")
                    || name.to_string_lossy().starts_with("oom-")
            })
        })
        .filter_map(|path| {
            let name = format!("{target}-{}", path.file_name()?.to_string_lossy());
            let kept = regressions.join(name);
            std::fs::copy(&path, &kept).ok()?;
            let _ = std::fs::remove_file(&path);
            Some(kept)
        })
        .collect()
}

/// Runs every target for `seconds`.
pub(crate) fn run_all(seconds: u64) -> Result {
    ensure_cargo_fuzz()?;
    let root = project_root();
    let fuzz_dir = fuzz_dir().display().to_string();
    let dict = fuzz_dir_path("protocol.dict");
    for target in TARGETS {
        step(&format!("fuzzing {target} for {seconds} s"));
        let corpus = corpus(target)?.display().to_string();
        let outcome = Cmd::new("cargo", &root)
            .args([
                "fuzz",
                "run",
                "--fuzz-dir",
                fuzz_dir.as_str(),
                "--sanitizer",
                "none",
            ])
            .args([*target, corpus.as_str(), "--"])
            .args([
                format!("-max_total_time={seconds}"),
                format!("-dict={}", dict.display()),
                "-rss_limit_mb=2048".to_owned(),
                "-malloc_limit_mb=256".to_owned(),
                "-print_final_stats=1".to_owned(),
            ])
            .run();
        if let Err(err) = outcome {
            let kept = keep_crashes(target);
            return Err(format!(
                "{target}: {err}; crash inputs kept as regression vectors: {kept:?} (commit them)"
            ));
        }
    }
    Ok(())
}

fn fuzz_dir_path(name: &str) -> PathBuf {
    Path::new(&fuzz_dir()).join(name)
}

/// `cargo xtask fuzz [seconds]`: every target for `seconds` (default 300).
pub(crate) fn run(args: &[String]) -> Result {
    let seconds = match args.first() {
        None => 300,
        Some(arg) => arg.parse().map_err(|_| {
            format!("`cargo xtask fuzz [seconds]`: `{arg}` is not a number of seconds")
        })?,
    };
    run_all(seconds)
}
