//! The task board as a server process, for the browser check (`cargo xtask test
//! tasks`): the test crate's own catalogue on the server library, configured by the
//! usual environment variables.

use std::process::ExitCode;

use relaywire_tests::tasks::TaskApp;

fn main() -> ExitCode {
    relaywire_server::run("relaywire-task-server", |_env, _config| Ok(TaskApp))
}
