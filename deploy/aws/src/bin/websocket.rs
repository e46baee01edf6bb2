//! The WebSocket API's routes (`$connect`, `$disconnect`, `$default`) as one Lambda
//! function.

use std::process::ExitCode;

use relaywire_aws::lambda::{Served, exit_code, run_websocket, start};
use relaywire_chat_server::ChatApp;
use relaywire_notify_server::NotifyApp;

#[tokio::main]
async fn main() -> ExitCode {
    // Bad settings were logged, naming the variable.
    let Ok(settings) = start() else {
        return ExitCode::from(2);
    };
    let served = match settings.served {
        Served::Chat => run_websocket(&settings, ChatApp::new()).await,
        Served::ChatDemo => run_websocket(&settings, ChatApp::with_demo_chats()).await,
        Served::Notify => run_websocket(&settings, NotifyApp).await,
    };
    exit_code(served)
}
