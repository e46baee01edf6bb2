//! The reference chat server (with the demo chats) as a process of the test crate, so
//! that the cluster tests can kill a node outright, as a crash would; configured by the
//! usual environment variables.

use std::process::ExitCode;

use relaywire_chat_server::ChatApp;

fn main() -> ExitCode {
    relaywire_server::run("relaywire-chat-node", |_env, _config| {
        Ok(ChatApp::with_demo_chats())
    })
}
