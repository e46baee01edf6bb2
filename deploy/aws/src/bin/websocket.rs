//! The WebSocket API's routes (`$connect`, `$disconnect`, `$default`) as one Lambda
//! function.

use relaywire_aws::lambda::{Served, run_websocket, start};
use relaywire_chat_server::ChatApp;
use relaywire_notify_server::NotifyApp;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = start()?;
    match settings.served {
        Served::Chat => run_websocket(&settings, ChatApp::new()).await,
        Served::ChatDemo => run_websocket(&settings, ChatApp::with_demo_chats()).await,
        Served::Notify => run_websocket(&settings, NotifyApp).await,
    }
}
