//! Sizes: the package's payload beside its peers (bundled and compressed by
//! `bench/js/size.mjs`), what each size step bought, and what the wasm is made of.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::wasm_profile::{Profile, profile};

/// Raw, gzip -9 and brotli bytes.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub(crate) raw: u64,
    pub(crate) gzip: u64,
    pub(crate) brotli: u64,
}

/// A library bundled as an app imports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Bundle {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) entry: String,
    #[serde(flatten)]
    pub(crate) sizes: Sizes,
}

#[derive(Debug, Deserialize)]
struct NamedSizes {
    name: String,
    #[serde(flatten)]
    sizes: Sizes,
}

/// The wasm on its own, embedded as base64, and embedded as the package does.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct Embedding {
    pub(crate) bare: Sizes,
    pub(crate) base64: Sizes,
    pub(crate) ascii: Sizes,
}

#[derive(Debug, Deserialize)]
struct Measured {
    bundles: Vec<Bundle>,
    utf8: Sizes,
    files: Vec<NamedSizes>,
    embedding: Embedding,
}

/// One step of the size work.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) name: String,
    /// What the step changes.
    pub(crate) what: String,
    pub(crate) wasm: Sizes,
    pub(crate) glue: Sizes,
}

/// Everything about size.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SizeReport {
    /// The gzip budget of the Relaywire bundle that `cargo xtask test` enforces.
    pub(crate) budget_gzip: u64,
    /// Relaywire first, then its peers.
    pub(crate) bundles: Vec<Bundle>,
    /// The Relaywire bundle with esbuild's `--charset=utf8`.
    pub(crate) utf8: Sizes,
    /// The size steps, in the order applied.
    pub(crate) steps: Vec<Step>,
    pub(crate) embedding: Embedding,
    /// The shipped wasm, by origin.
    pub(crate) profile: Profile,
}

/// Where the inputs are.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub(crate) js_dir: PathBuf,
    pub(crate) package: PathBuf,
    /// `steps.tsv`: one `name<TAB>what<TAB>folder` line per step, in order.
    pub(crate) steps: PathBuf,
    /// The shipped wasm with its names kept.
    pub(crate) named_wasm: PathBuf,
    pub(crate) budget_gzip: u64,
    pub(crate) out_dir: PathBuf,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))
}

/// Measures everything.
pub(crate) fn run(inputs: &Inputs) -> Result<SizeReport> {
    let steps: Vec<(String, String, PathBuf)> = read(&inputs.steps)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            match (fields.next(), fields.next(), fields.next()) {
                (Some(name), Some(what), Some(dir)) => {
                    Ok((name.to_owned(), what.to_owned(), PathBuf::from(dir)))
                }
                _ => Err(format!(
                    "{}: a malformed line: {line}",
                    inputs.steps.display()
                )),
            }
        })
        .collect::<Result<_>>()?;
    let shipped_wasm = steps
        .last()
        .map(|(_, _, dir)| dir.join("relaywire_client_bg.wasm"))
        .ok_or("no size steps")?;
    let files: Vec<serde_json::Value> = steps
        .iter()
        .flat_map(|(name, _, dir)| {
            [
                serde_json::json!({ "name": format!("{name}/wasm"), "path": dir.join("relaywire_client_bg.wasm") }),
                serde_json::json!({ "name": format!("{name}/glue"), "path": dir.join("relaywire_client.js") }),
            ]
        })
        .collect();
    let request =
        serde_json::json!({ "package": inputs.package, "files": files, "wasm": shipped_wasm });
    let request_path = inputs.out_dir.join("size-request.json");
    std::fs::write(&request_path, request.to_string())
        .map_err(|err| format!("{}: {err}", request_path.display()))?;
    let output = Command::new("node")
        .arg("size.mjs")
        .arg("report")
        .arg(&request_path)
        .current_dir(&inputs.js_dir)
        .output()
        .map_err(|err| format!("cannot run node: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "size.mjs failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let measured: Measured = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("size.mjs's output: {err}"))?;
    let size_of = |name: &str| {
        measured
            .files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.sizes)
            .ok_or_else(|| format!("size.mjs did not measure {name}"))
    };
    let steps = steps
        .into_iter()
        .map(|(name, what, _)| {
            Ok(Step {
                wasm: size_of(&format!("{name}/wasm"))?,
                glue: size_of(&format!("{name}/glue"))?,
                name,
                what,
            })
        })
        .collect::<Result<_>>()?;
    let named = std::fs::read(&inputs.named_wasm)
        .map_err(|err| format!("{}: {err}", inputs.named_wasm.display()))?;
    Ok(SizeReport {
        budget_gzip: inputs.budget_gzip,
        bundles: measured.bundles,
        utf8: measured.utf8,
        steps,
        embedding: measured.embedding,
        profile: profile(&named).map_err(|err| err.to_string())?,
    })
}
