//! Building the browser client: the size-optimised wasm, wasm-bindgen's JS glue and
//! `.d.ts`, then `wasm-opt -Oz` from the `binaryen` npm package.
//!
//! Debian's binaryen (108) cannot be used: reading and writing a module with two
//! tables, as wasm-bindgen emits for externrefs, it points the `__wbindgen_externrefs`
//! export at the function table, and the module fails to instantiate.

use std::path::PathBuf;

use crate::Result;
use crate::cmd::Cmd;
use crate::tools::{
    ensure_npm_packages, ensure_wasm_bindgen_cli, ensure_wasm_target, project_root, target_dir,
};

/// Features rustc's output uses; wasm-bindgen drops the section that would say so.
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

/// The `wasm-opt` of the pinned `binaryen` npm package, installed when missing.
pub(crate) fn wasm_opt() -> Result<PathBuf> {
    let bindings = project_root().join("bindings");
    ensure_npm_packages(&bindings)?;
    let wasm_opt = bindings.join("node_modules/binaryen/bin/wasm-opt");
    if wasm_opt.exists() {
        Ok(wasm_opt)
    } else {
        Err(format!(
            "{} is missing after installing bindings/",
            wasm_opt.display()
        ))
    }
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
            "--features",
            "small-allocator",
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
    let path = out.join("relaywire_client_bg.wasm").display().to_string();
    let wasm_opt = wasm_opt()?.display().to_string();
    Cmd::new("node", &root)
        .args([wasm_opt.as_str(), "-Oz"])
        .args(WASM_OPT_FEATURES.iter().copied())
        .args([path.as_str(), "-o", path.as_str()])
        .run()?;
    Ok(out)
}
