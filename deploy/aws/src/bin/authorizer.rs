//! The WebSocket API's REQUEST authorizer for `$connect`, as a Lambda function.

use relaywire_aws::lambda::{Settings, init_logging, run_authorizer};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env().inspect_err(|err| {
        init_logging(None);
        tracing::error!(error = %err, "bad configuration");
    })?;
    init_logging(Some(&settings));
    run_authorizer(&settings).await
}
