//! `cargo xtask codegen`: regenerates `bindings/protocol.ts` and the README tables.
//!
//! The generator is the protocol crate's `generated` test: it rewrites whatever is
//! stale and fails, so the second run confirms everything is fresh.

use crate::Result;
use crate::cmd::{Cmd, step};
use crate::tools::project_root;

pub(crate) fn run() -> Result {
    let root = project_root();
    let test = || {
        Cmd::new("cargo", &root)
            .args([
                "test",
                "--quiet",
                "-p",
                "relaywire-protocol",
                "--test",
                "generated",
            ])
            .run()
    };
    step("regenerating bindings and README tables");
    if test().is_ok() {
        println!("everything was already fresh");
        return Ok(());
    }
    step("checking the regenerated files");
    test()?;
    println!("regenerated: review `git diff` and commit");
    Ok(())
}
