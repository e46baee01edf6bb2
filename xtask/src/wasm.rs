//! Building the browser client: the size-optimised wasm, wasm-bindgen's JS glue and
//! `.d.ts`, then `wasm-opt -Oz` (twice, to a fixed point) from the `binaryen` npm package.
//!
//! Debian's binaryen (108) cannot be used: reading and writing a module with two
//! tables, as wasm-bindgen emits for externrefs, it points the `__wbindgen_externrefs`
//! export at the function table, and the module fails to instantiate.

use std::path::{Path, PathBuf};

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
    client_build(&project_root())
        .args(["--features", "small-allocator"])
        .run()?;
    let out = out_dir();
    bindgen(&compiled(&target_dir()), &out, Names::Drop)?;
    optimize(&out.join("relaywire_client_bg.wasm"), Names::Drop)?;
    Ok(out)
}

/// `cargo build` of the browser client for wasm32 in the size-optimised `wasm-release`
/// profile; callers add features, a target dir or profile overrides.
pub(crate) fn client_build(root: &Path) -> Cmd<'_> {
    Cmd::new("cargo", root).args([
        "build",
        "--quiet",
        "-p",
        "relaywire-client",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-release",
    ])
}

/// Where cargo leaves the client's wasm in `target`.
pub(crate) fn compiled(target: &Path) -> PathBuf {
    target.join("wasm32-unknown-unknown/wasm-release/relaywire_client.wasm")
}

/// Whether function names survive (for profiling) or go (for shipping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Names {
    Keep,
    Drop,
}

/// Runs wasm-bindgen on `wasm` into a fresh `out`.
pub(crate) fn bindgen(wasm: &Path, out: &Path, names: Names) -> Result {
    let _ = std::fs::remove_dir_all(out);
    let out_arg = out.display().to_string();
    let root = project_root();
    let mut command = Cmd::new("wasm-bindgen", &root).args(["--target", "web"]);
    if names == Names::Drop {
        command = command.args(["--remove-name-section", "--remove-producers-section"]);
    }
    command
        .args(["--out-dir", out_arg.as_str()])
        .args([wasm.display().to_string()])
        .run()
}

/// `wasm-opt -Oz` (to a fixed point, twice) in place.
pub(crate) fn optimize(wasm: &Path, names: Names) -> Result {
    let path = wasm.display().to_string();
    let wasm_opt = wasm_opt()?.display().to_string();
    let root = project_root();
    // Iterating to a fixed point, and a second round after re-deriving the control flow
    // (flatten, rereloop), each take a little more off the shipped size.
    let mut command = Cmd::new("node", &root).args([
        wasm_opt.as_str(),
        "-Oz",
        "--converge",
        "--flatten",
        "--rereloop",
        "-Oz",
        "--converge",
    ]);
    if names == Names::Keep {
        command = command.args(["-g"]);
    }
    command
        .args(WASM_OPT_FEATURES.iter().copied())
        .args([path.as_str(), "-o", path.as_str()])
        .run()
}
