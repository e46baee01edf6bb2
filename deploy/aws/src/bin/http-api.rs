//! The HTTP API (push to users, broadcast, notifications, presence, disconnect) as a
//! Lambda function behind an API Gateway HTTP API.

use relaywire_aws::lambda::{Served, run_http, start};
use relaywire_chat_server::ChatApp;
use relaywire_notify_server::NotifyApp;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = start()?;
    match settings.served {
        Served::Chat => run_http(&settings, ChatApp::new()).await,
        Served::ChatDemo => run_http(&settings, ChatApp::with_demo_chats()).await,
        Served::Notify => run_http(&settings, NotifyApp).await,
    }
}
