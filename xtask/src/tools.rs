//! Where things are, and installing what a task needs when it is missing.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd::Cmd;

/// The workspace root.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

/// A free TCP port on 127.0.0.1, preferring `preferred`.
pub(crate) fn free_port(preferred: u16) -> Result<u16> {
    let bind = |port| std::net::TcpListener::bind(("127.0.0.1", port));
    let listener = bind(preferred)
        .or_else(|_| bind(0))
        .map_err(|err| format!("cannot find a free port on 127.0.0.1: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| err.to_string())
}

/// Installs the `wasm32-unknown-unknown` target with rustup when it is missing.
pub(crate) fn ensure_wasm_target() -> Result {
    let root = project_root();
    let installed = Cmd::new("rustup", &root)
        .args(["target", "list", "--installed"])
        .read();
    match installed {
        Some(list) if list.lines().any(|t| t.trim() == "wasm32-unknown-unknown") => Ok(()),
        Some(_) => Cmd::new("rustup", &root)
            .args(["target", "add", "wasm32-unknown-unknown"])
            .run(),
        None => Err("rustup is not available to add the wasm32 target; run \
             `rustup target add wasm32-unknown-unknown` with your toolchain manager"
            .to_owned()),
    }
}

/// Checks that Node.js 18 or newer and npm are installed.
pub(crate) fn ensure_node() -> Result {
    let root = project_root();
    let hint = "install Node.js 20 and npm (Debian: `apt-get install -y nodejs npm`)";
    let version = Cmd::new("node", &root)
        .arg_version()
        .read()
        .ok_or_else(|| format!("Node.js is missing: {hint}"))?;
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    if major < 18 {
        return Err(format!("Node.js {} is too old: {hint}", version.trim()));
    }
    Cmd::new("npm", &root)
        .arg_version()
        .read()
        .map(drop)
        .ok_or_else(|| format!("npm is missing: {hint}"))
}

/// Installs the Node packages of `dir` when `node_modules` is missing or older than
/// the lockfile.
pub(crate) fn ensure_npm_packages(dir: &Path) -> Result {
    ensure_node()?;
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => installed >= lock,
        (None, Some(_)) => true,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    let install = if lock.exists() { "ci" } else { "install" };
    Cmd::new("npm", dir)
        .args([install, "--no-audit", "--no-fund", "--loglevel=error"])
        .run()
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Cmd<'_> {
    fn arg_version(self) -> Self {
        self.args(["--version"])
    }
}

/// The `wasm-bindgen` version pinned in the workspace manifest.
pub(crate) fn wasm_bindgen_version() -> Result<String> {
    let manifest = std::fs::read_to_string(project_root().join("Cargo.toml"))
        .map_err(|err| format!("cannot read Cargo.toml: {err}"))?;
    manifest
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("wasm-bindgen = \"=")?;
            Some(rest.trim_end_matches('"').to_owned())
        })
        .ok_or_else(|| "Cargo.toml does not pin `wasm-bindgen = \"=X\"`".to_owned())
}

/// Installs `wasm-bindgen-cli` at exactly the workspace's version when it is missing
/// (it takes several minutes to build).
pub(crate) fn ensure_wasm_bindgen_cli() -> Result {
    let root = project_root();
    let version = wasm_bindgen_version()?;
    let installed = Cmd::new("wasm-bindgen", &root).args(["--version"]).read();
    let runner = Cmd::new("wasm-bindgen-test-runner", &root)
        .args(["--version"])
        .read();
    if installed.is_some_and(|v| v.trim() == format!("wasm-bindgen {version}")) && runner.is_some()
    {
        return Ok(());
    }
    println!("installing wasm-bindgen-cli {version} (a few minutes, once)");
    Cmd::new("cargo", &root)
        .args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &version,
            "--force",
        ])
        .run()
}

/// Installs wasm-pack with cargo when it is missing (its own downloads of binaryen and
/// wasm-bindgen are not needed: the crate turns wasm-opt off, and it uses the
/// wasm-bindgen-cli installed beside it when the versions match).
pub(crate) fn ensure_wasm_pack() -> Result {
    let root = project_root();
    if Cmd::new("wasm-pack", &root)
        .args(["--version"])
        .read()
        .is_some()
    {
        return Ok(());
    }
    println!("installing wasm-pack (a minute or two, once)");
    Cmd::new("cargo", &root)
        .args(["install", "wasm-pack"])
        .run()
}

/// Finds Debian's Chromium and ChromeDriver, installing them when running as root.
pub(crate) fn ensure_chromium() -> Result<PathBuf> {
    let driver = PathBuf::from("/usr/bin/chromedriver");
    let browser = PathBuf::from("/usr/bin/chromium");
    if driver.exists() && browser.exists() {
        return Ok(driver);
    }
    let root = project_root();
    let is_root = Cmd::new("id", &root)
        .args(["-u"])
        .read()
        .is_some_and(|uid| uid.trim() == "0");
    let hint = "apt-get install -y chromium chromium-driver";
    if !is_root {
        return Err(format!(
            "Chromium and its driver are missing: run `sudo {hint}`"
        ));
    }
    Cmd::new("apt-get", &root).args(["update", "-q"]).run()?;
    Cmd::new("apt-get", &root)
        .args(["install", "-y", "-q", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    if driver.exists() {
        Ok(driver)
    } else {
        Err(format!("`{hint}` did not install {}", driver.display()))
    }
}
