//! The WebSocket API's REQUEST authorizer for `$connect`, as a Lambda function.

use std::process::ExitCode;

use relaywire_aws::lambda::{exit_code, run_authorizer, start};

#[tokio::main]
async fn main() -> ExitCode {
    // Bad settings were logged, naming the variable.
    let Ok(settings) = start() else {
        return ExitCode::from(2);
    };
    exit_code(run_authorizer(&settings).await)
}
