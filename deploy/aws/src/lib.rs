//! Relaywire on AWS: the server library's store on DynamoDB, for deployments where API
//! Gateway holds the WebSockets and Lambda functions handle them.
//!
//! [`DynamoStore`] implements the server library's `Store` on one DynamoDB table; its
//! item design, and why, is in `DYNAMODB.md`.

mod connections;
pub mod lambda;
mod management;
pub mod simulator;
mod store;

pub use connections::{DynamoConnections, USER_INDEX};
pub use management::ManagementApi;
pub use store::DynamoStore;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

/// A DynamoDB client for a local endpoint (an emulator such as moto or dynalite), with
/// fixed test credentials; deployments build theirs from the environment.
pub fn local_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "local"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
