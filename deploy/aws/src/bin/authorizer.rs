//! The WebSocket API's REQUEST authorizer for `$connect`, as a Lambda function.

use relaywire_aws::lambda::{run_authorizer, start};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_authorizer(&start()?).await
}
