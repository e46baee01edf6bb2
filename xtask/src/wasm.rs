//! Building the browser client: the size-optimised wasm, wasm-bindgen's JS glue and
//! `.d.ts`, then Debian's `wasm-opt -Oz` when it is installed.

use std::path::PathBuf;

use crate::Result;
use crate::cmd::Cmd;
use crate::tools::{ensure_wasm_bindgen_cli, ensure_wasm_target, project_root, target_dir};

/// Feature flags Debian's binaryen needs for what rustc emits.
pub(crate) const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// The folder the wasm-bindgen output lands in.
pub(crate) fn out_dir() -> PathBuf {
    target_dir().join("wasm-pkg")
}

/// Whether a working `wasm-opt` is on the PATH.
pub(crate) fn has_wasm_opt() -> bool {
    Cmd::new("wasm-opt", &project_root())
        .args(["--version"])
        .read()
        .is_some()
}

/// Builds the browser client into [`out_dir`]: `relaywire_client.js`,
/// `relaywire_client_bg.wasm` and `relaywire_client.d.ts`.
pub(crate) fn build() -> Result<PathBuf> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen_cli()?;
    let root = project_root();
    Cmd::new("cargo", &root)
        .args([
            "build",
            "--quiet",
            "-p",
            "relaywire-client",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
        ])
        .run()?;
    let wasm = target_dir().join("wasm32-unknown-unknown/wasm-release/relaywire_client.wasm");
    let out = out_dir();
    let _ = std::fs::remove_dir_all(&out);
    let out_arg = out.display().to_string();
    Cmd::new("wasm-bindgen", &root)
        .args([
            "--target",
            "web",
            "--remove-name-section",
            "--remove-producers-section",
            "--out-dir",
            &out_arg,
        ])
        .args([wasm.display().to_string()])
        .run()?;
    let bindgen_wasm = out.join("relaywire_client_bg.wasm");
    if has_wasm_opt() {
        let path = bindgen_wasm.display().to_string();
        Cmd::new("wasm-opt", &root)
            .args(["-Oz"])
            .args(WASM_OPT_FEATURES.iter().copied())
            .args([path.as_str(), "-o", path.as_str()])
            .run()?;
    } else {
        println!(
            "note: wasm-opt is not installed (Debian: apt-get install binaryen); the wasm is not optimised further"
        );
    }
    Ok(out)
}
