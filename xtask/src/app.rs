//! The example web apps, built against the npm package as a user would install it.

use std::path::PathBuf;

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::package;
use crate::tools::{
    ensure_node, ensure_wasm_bindgen_cli, ensure_wasm_target, project_root, target_dir,
};

/// The React chat app (`examples/react-chat`).
pub(crate) const REACT_CHAT: &str = "examples/react-chat";
/// The notification service's page (`examples/notify-server/web`).
pub(crate) const NOTIFY_WEB: &str = "examples/notify-server/web";

/// Builds the package, installs it into the app at `folder` from its tarball, and
/// builds the app (its type check first); returns the folder to serve.
pub(crate) fn build(folder: &str) -> Result<PathBuf> {
    let app = install_package(folder)?;
    Cmd::new("npm", &app)
        .args(["run", "--silent", "build"])
        .run()?;
    Ok(app.join("dist"))
}

/// Builds the package and installs it, with the other dependencies, into the Node
/// project at `folder` (which depends on `file:vendor/relaywire.tgz`), as a user
/// installs it; returns the project's path.
pub(crate) fn install_package(folder: &str) -> Result<PathBuf> {
    let tarball = package::build()?;
    step(&format!("installing the package into {folder}"));
    ensure_node()?;
    let app = project_root().join(folder);
    let vendor = app.join("vendor");
    std::fs::create_dir_all(&vendor).map_err(|err| format!("{}: {err}", vendor.display()))?;
    std::fs::copy(&tarball, vendor.join("relaywire.tgz"))
        .map_err(|err| format!("{}: {err}", tarball.display()))?;
    // npm keeps an installed tarball dependency; the package was just rebuilt.
    let _ = std::fs::remove_dir_all(app.join("node_modules/relaywire"));
    Cmd::new("npm", &app)
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .run()?;
    Ok(app)
}

/// The chat page written in Rust (`examples/web-chat`): its wasm with wasm-bindgen's
/// glue, beside its HTML and CSS; returns the folder to serve.
pub(crate) fn build_rust_web() -> Result<PathBuf> {
    step("building the Rust chat page (examples/web-chat)");
    ensure_wasm_target()?;
    ensure_wasm_bindgen_cli()?;
    let root = project_root();
    Cmd::new("cargo", &root)
        .args([
            "build",
            "--quiet",
            "-p",
            "relaywire-web-chat",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ])
        .run()?;
    let dist = target_dir().join("web-chat");
    let _ = std::fs::remove_dir_all(&dist);
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm-release/relaywire_web_chat.wasm");
    let (wasm, pkg) = (
        wasm.display().to_string(),
        dist.join("pkg").display().to_string(),
    );
    Cmd::new("wasm-bindgen", &root)
        .args(["--target", "web", "--out-dir", pkg.as_str(), wasm.as_str()])
        .run()?;
    let statics = root.join("examples/web-chat/static");
    for name in ["index.html", "style.css"] {
        std::fs::copy(statics.join(name), dist.join(name))
            .map_err(|err| format!("{}: {err}", statics.join(name).display()))?;
    }
    Ok(dist)
}
