//! `cargo xtask demo`: the reference chat server with the example app.

use crate::Result;

pub(crate) fn run(_args: &[String]) -> Result {
    Err(
        "the demo needs the reference chat server (examples/chat-server), which is not \
         built yet; once it lands this task builds the wasm client, the npm package and \
         the React app, starts the server on 127.0.0.1 and prints the URL to open"
            .to_owned(),
    )
}
