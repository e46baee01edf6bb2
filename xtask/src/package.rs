//! `cargo xtask package`: the npm package `relaywire`, built into `target/npm/`.
//!
//! It holds the wasm-bindgen glue, the WebAssembly embedded in an ASCII string (so no bundler
//! needs configuring and the module initialises itself), the control types, the chat
//! protocol (`relaywire/chat`: its generated TypeScript and helpers), the React
//! bindings compiled from `bindings/src/`, and the README. `npm pack` turns it
//! into `target/npm/relaywire-<version>.tgz`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::tools::{ensure_npm_packages, project_root, target_dir};
use crate::wasm;

/// The files the tarball must hold, and nothing else.
pub(crate) const FILES: &[&str] = &[
    "README.md",
    "chat-protocol.d.ts",
    "chat-protocol.js",
    "chat.d.ts",
    "chat.js",
    "index.d.ts",
    "index.js",
    "package.json",
    "react.d.ts",
    "react.js",
    "relaywire_client.d.ts",
    "relaywire_client.js",
    "relaywire_client_wasm.d.ts",
    "relaywire_client_wasm.js",
    "shared.d.ts",
    "shared.js",
];

pub(crate) fn run(args: &[String]) -> Result {
    if let Some(arg) = args.first() {
        return Err(format!(
            "`cargo xtask package` takes no arguments, got `{arg}`"
        ));
    }
    let tarball = build()?;
    println!("\npackage: {}", tarball.display());
    Ok(())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |err| format!("{}: {err}", path.display())
}

fn copy(from: &Path, to: &Path) -> Result {
    fs::copy(from, to).map(drop).map_err(io(from))
}

fn write(path: &Path, contents: &str) -> Result {
    fs::write(path, contents).map_err(io(path))
}

/// The glue's async `init()` falls back to fetching `relaywire_client_bg.wasm` next to
/// it, which bundlers warn about (and try to resolve). The package embeds the wasm and
/// initialises synchronously, so that fallback goes.
fn without_wasm_url(glue: &str) -> Result<String> {
    const FALLBACK: &str = "module_or_path = new URL('relaywire_client_bg.wasm', import.meta.url);";
    if !glue.contains(FALLBACK) {
        return Err("the wasm-bindgen glue changed: no wasm URL fallback to remove".to_owned());
    }
    Ok(glue.replace(
        FALLBACK,
        "throw new Error('relaywire initialises itself: import \"relaywire\" instead');",
    ))
}

/// The glue's declarations without wasm-bindgen's own part (`initSync`, `InitOutput`
/// and the rest, which `index.ts` uses and never exports, and which hold the only `any`s
/// and the DOM-only `RequestInfo`): what the package ships is Relaywire's API alone.
fn public_declarations(declarations: &str) -> Result<String> {
    const INTERNALS: &str = "export type InitInput";
    let end = declarations
        .find(INTERNALS)
        .ok_or("the wasm-bindgen declarations changed: no `InitInput` to cut at")?;
    let public = declarations[..end].trim_end();
    if public.contains("initSync") || public.contains(": any") {
        return Err("wasm-bindgen internals before `InitInput` in the declarations".to_owned());
    }
    Ok(format!("{public}\n"))
}

/// Bytes written as themselves in [`ascii_string`]: printable ASCII but for the string
/// delimiter, the backslash and the two escape characters.
fn is_literal(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte) && !b"\"\\~`".contains(&byte)
}

/// The wasm as the body of a JS string literal, in ASCII only so no bundler or minifier
/// rewrites it: a printable byte stands for itself, any other is `~` or `` ` `` followed
/// by a printable character that indexes it. `index.ts` decodes it.
///
/// Unlike base64, every byte value always encodes the same way, so the repeats gzip and
/// brotli find in the wasm survive: the package compresses within a few percent of the
/// bare wasm, where base64 costs about 30% more.
fn ascii_string(bytes: &[u8]) -> String {
    let literals: Vec<u8> = (0..=255).filter(|&b| is_literal(b)).collect();
    let escaped: Vec<u8> = (0..=255).filter(|&b| !is_literal(b)).collect();
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &byte in bytes {
        if is_literal(byte) {
            out.push(char::from(byte));
        } else if let Some(index) = escaped.iter().position(|&b| b == byte) {
            let (prefix, index) = if index < literals.len() {
                ('~', index)
            } else {
                ('`', index - literals.len())
            };
            out.push(prefix);
            out.push(char::from(literals[index]));
        }
    }
    out
}

/// The JS module the package embeds the wasm in.
pub(crate) fn wasm_module(wasm: &[u8]) -> String {
    format!(
        "// The client's WebAssembly ({} bytes), embedded so no bundler needs configuring.\nexport default \"{}\";\n",
        wasm.len(),
        ascii_string(wasm)
    )
}

/// The workspace version, from `[workspace.package]`.
fn version() -> Result<String> {
    let manifest =
        fs::read_to_string(project_root().join("Cargo.toml")).map_err(|e| e.to_string())?;
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[workspace.package]")
        .find_map(|line| {
            line.trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')
                .map(str::to_owned)
        })
        .ok_or_else(|| "no version in [workspace.package]".to_owned())
}

/// Builds the package folder and its tarball; returns the tarball.
pub(crate) fn build() -> Result<PathBuf> {
    let root = project_root();
    let pkg = wasm::build()?;
    step("assembling the npm package");
    let bindings = root.join("bindings");
    ensure_npm_packages(&bindings)?;
    let npm = target_dir().join("npm");
    let work = npm.join("build");
    let staging = npm.join("relaywire");
    for dir in [&work, &staging] {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).map_err(io(dir))?;
    }

    // Compile the package's own TypeScript next to the generated glue it imports.
    for entry in fs::read_dir(bindings.join("src")).map_err(io(&bindings))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if let Some(name) = path.file_name() {
            copy(&path, &work.join(name))?;
        }
    }
    // The chat protocol's generated TypeScript, compiled beside the chat helpers.
    copy(&bindings.join("chat.ts"), &work.join("chat-protocol.ts"))?;
    copy(
        &pkg.join("relaywire_client.d.ts"),
        &work.join("relaywire_client.d.ts"),
    )?;
    let declarations =
        fs::read_to_string(pkg.join("relaywire_client.d.ts")).map_err(|e| e.to_string())?;
    write(
        &staging.join("relaywire_client.d.ts"),
        &public_declarations(&declarations)?,
    )?;
    let glue = fs::read_to_string(pkg.join("relaywire_client.js")).map_err(|e| e.to_string())?;
    let glue = without_wasm_url(&glue)?;
    write(&work.join("relaywire_client.js"), &glue)?;
    write(&staging.join("relaywire_client.js"), &glue)?;
    let wasm_bytes = fs::read(pkg.join("relaywire_client_bg.wasm")).map_err(|e| e.to_string())?;
    let embedded = wasm_module(&wasm_bytes);
    let declaration = "/** The client's WebAssembly, one or two ASCII characters per byte. */\ndeclare const wasm: string;\nexport default wasm;\n";
    for dir in [&work, &staging] {
        write(&dir.join("relaywire_client_wasm.js"), &embedded)?;
        write(&dir.join("relaywire_client_wasm.d.ts"), declaration)?;
    }
    copy(&bindings.join("tsconfig.json"), &work.join("tsconfig.json"))?;
    let modules = work.join("node_modules");
    #[cfg(unix)]
    std::os::unix::fs::symlink(bindings.join("node_modules"), &modules).map_err(io(&modules))?;
    let tsc = bindings
        .join("node_modules/typescript/bin/tsc")
        .display()
        .to_string();
    let out_dir = staging.display().to_string();
    Cmd::new("node", &work)
        .args([
            tsc.as_str(),
            "--project",
            "tsconfig.json",
            "--outDir",
            out_dir.as_str(),
        ])
        .run()?;

    let template =
        fs::read_to_string(bindings.join("npm/package.json")).map_err(|e| e.to_string())?;
    let version = version()?;
    let manifest = template.replace(
        "\"version\": \"0.0.0\"",
        &format!("\"version\": \"{version}\""),
    );
    write(&staging.join("package.json"), &manifest)?;
    copy(&bindings.join("npm/README.md"), &staging.join("README.md"))?;

    let mut present: Vec<String> = fs::read_dir(&staging)
        .map_err(io(&staging))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    present.sort();
    if present != FILES {
        return Err(format!("the package holds {present:?}, expected {FILES:?}"));
    }
    let npm_arg = npm.display().to_string();
    Cmd::new("npm", &staging)
        .args(["pack", "--silent", "--pack-destination", npm_arg.as_str()])
        .run()?;
    let tarball = npm.join(format!("relaywire-{version}.tgz"));
    if !tarball.exists() {
        return Err(format!("npm pack did not write {}", tarball.display()));
    }
    Ok(tarball)
}

#[cfg(test)]
mod tests {
    use super::{ascii_string, is_literal};

    /// What `index.ts` does.
    fn decode(text: &str) -> Vec<u8> {
        let literals: Vec<u8> = (0..=255).filter(|&b| is_literal(b)).collect();
        let escaped: Vec<u8> = (0..=255).filter(|&b| !is_literal(b)).collect();
        let mut out = Vec::new();
        let mut chars = text.bytes();
        while let Some(c) = chars.next() {
            let offset = match c {
                b'~' => 0,
                b'`' => literals.len(),
                _ => {
                    out.push(c);
                    continue;
                }
            };
            let next = chars.next().expect("an escape is two characters");
            let index = literals.iter().position(|&b| b == next).expect("a literal");
            out.push(escaped[offset + index]);
        }
        out
    }

    #[test]
    fn every_byte_survives_the_string_which_is_plain_ascii() {
        let bytes: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        let text = ascii_string(&bytes);
        assert_eq!(decode(&text), bytes);
        assert!(
            text.bytes()
                .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
        );
        assert_eq!(ascii_string(b"a~\"z"), "a~D~Az");
        assert_eq!(ascii_string(&[0x00, 0xff]), "~ `l");
    }
}
