//! The HTTP API (push to users, broadcast, notifications, presence, disconnect) as a
//! Lambda function behind an API Gateway HTTP API.

use std::process::ExitCode;

use relaywire_aws::lambda::{Served, exit_code, run_http, start};
use relaywire_chat_server::ChatApp;
use relaywire_notify_server::NotifyApp;

#[tokio::main]
async fn main() -> ExitCode {
    // Bad settings were logged, naming the variable.
    let Ok(settings) = start() else {
        return ExitCode::from(2);
    };
    let served = match settings.served {
        Served::Chat => run_http(&settings, ChatApp::new()).await,
        Served::ChatDemo => run_http(&settings, ChatApp::with_demo_chats()).await,
        Served::Notify => run_http(&settings, NotifyApp).await,
    };
    exit_code(served)
}
