//! The WebSocket API's routes (`$connect`, `$disconnect`, `$default`) as one Lambda
//! function.

use relaywire_aws::lambda::{Served, Settings, init_logging, run_websocket};
use relaywire_chat_server::ChatApp;
use relaywire_notify_server::NotifyApp;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env().inspect_err(|err| {
        init_logging(None);
        tracing::error!(error = %err, "bad configuration");
    })?;
    init_logging(Some(&settings));
    match settings.served {
        Served::Chat => run_websocket(&settings, ChatApp::new()).await,
        Served::ChatDemo => run_websocket(&settings, ChatApp::with_demo_chats()).await,
        Served::Notify => run_websocket(&settings, NotifyApp).await,
    }
}
