//! `relaywire-chat-server`: the reference chat server, configured by environment
//! variables (see the README). Exits 0 after a graceful shutdown on SIGTERM or Ctrl-C,
//! 2 on bad configuration, 1 when it cannot start.

use std::process::ExitCode;

use relaywire_chat_server::ChatApp;

fn main() -> ExitCode {
    relaywire_server::run("relaywire-chat-server", |env, _| {
        Ok(if env.flag("SEED_DEMO")? {
            ChatApp::with_demo_chats()
        } else {
            ChatApp::new()
        })
    })
}
