//! Plays the probe suite against the chat server binary named by
//! `RELAYWIRE_SERVER_BIN`, printing each probe and what it got.

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(binary) = std::env::var_os("RELAYWIRE_SERVER_BIN").map(PathBuf::from) else {
        eprintln!("probe: set RELAYWIRE_SERVER_BIN to the chat server binary");
        return ExitCode::from(2);
    };
    match relaywire_tests::probe::run(&binary).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("probe: {why}");
            ExitCode::FAILURE
        }
    }
}
