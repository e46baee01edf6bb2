//! `cargo xtask codegen`: regenerates the generated TypeScript (`bindings/relaywire.ts`,
//! `bindings/chat.ts`, the notification service's and the task board's) and the README
//! tables.
//!
//! The generators are the crates' `generated` tests: they rewrite whatever is stale
//! and fail, so the second run confirms everything is fresh.

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
                "-p",
                "relaywire-chat",
                "-p",
                "relaywire-notify-server",
                "-p",
                "relaywire-tests",
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
