//! The notification service's process: `relaywire-notify-server`, configured by the
//! same environment variables as every Relaywire server (see the server library's
//! README), with one connection per user unless `CONNECTION_POLICY` says otherwise.

use std::process::ExitCode;

use relaywire_notify_server::{NotifyApp, apply_defaults};

fn main() -> ExitCode {
    relaywire_server::run("relaywire-notify-server", |env, config| {
        apply_defaults(env, config);
        Ok(NotifyApp)
    })
}
