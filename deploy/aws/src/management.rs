//! The gateway's API on AWS: API Gateway's Management API
//! (`aws-sdk-apigatewaymanagement`), which posts to and closes the connections it holds.

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_server::gateway::{Gateway, PostError};

/// API Gateway's Management API, on one stage's endpoint.
#[derive(Debug, Clone)]
pub struct ManagementApi {
    client: Client,
}

impl ManagementApi {
    /// The API through `client` (whose endpoint is `https://{domain}/{stage}`).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// What a refusal means to the server: 410 is a connection that is gone, a limit is
/// backpressure, the rest a failure.
fn refusal<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> PostError {
    let status = err
        .raw_response()
        .map(|response| response.status().as_u16());
    let code = err.as_service_error().and_then(|err| err.code());
    match (status, code) {
        (Some(410), _) | (_, Some("GoneException")) => PostError::Gone,
        (Some(429), _) | (_, Some("LimitExceededException")) => PostError::Throttled,
        _ => PostError::Failed(format!("{err:?}")),
    }
}

impl Gateway for ManagementApi {
    fn post(
        &self,
        connection_id: String,
        frame: String,
    ) -> BoxFuture<'static, Result<(), PostError>> {
        let client = self.client.clone();
        async move {
            client
                .post_to_connection()
                .connection_id(connection_id)
                .data(Blob::new(frame.into_bytes()))
                .send()
                .await
                .map(|_| ())
                .map_err(refusal)
        }
        .boxed()
    }

    fn close(&self, connection_id: String) -> BoxFuture<'static, Result<(), PostError>> {
        let client = self.client.clone();
        async move {
            client
                .delete_connection()
                .connection_id(connection_id)
                .send()
                .await
                .map(|_| ())
                .map_err(refusal)
        }
        .boxed()
    }
}
