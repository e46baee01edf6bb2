//! The Lambda functions: the WebSocket API's routes (`$connect`, `$disconnect`,
//! `$default`), its REQUEST authorizer, and the HTTP API. Each only translates API
//! Gateway's events to the server library's [`GatewayServer`] and back; what a
//! message does is decided there, as on the socket server.

use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use axum::http::{HeaderMap, HeaderValue};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use relaywire_protocol::http::ApiError;
use relaywire_protocol::{RESUME_PARAM, Seq};
use relaywire_server::config::{ConfigError, Env};
use relaywire_server::gateway::{GatewayServer, HandshakeVerifier, expiry_from_secs, expiry_secs};
use relaywire_server::{App, Config, Identity};
use serde_json::{Value, json};

use crate::{DynamoConnections, DynamoStore, ManagementApi};

/// Which of Relaywire's apps a deployment serves (`RELAYWIRE_APP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The chat (`chat`).
    Chat,
    /// The chat with the demo's chats created at start (`chat-demo`).
    ChatDemo,
    /// The notification service (`notify`).
    Notify,
}

/// Everything a function reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server library's settings (`JWKS_URL`, `JWT_ISSUER`, limits...).
    pub config: Config,
    /// The app.
    pub served: Served,
    /// The store's table (`RELAYWIRE_TABLE`).
    pub table: String,
    /// The connections' table (`CONNECTIONS_TABLE`).
    pub connections_table: String,
    /// The WebSocket API stage's Management API endpoint (`GATEWAY_ENDPOINT`,
    /// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`).
    pub gateway_endpoint: String,
}

/// API Gateway refuses frames over 32 KB: the server's limit, and the clients' (told
/// in `connected`), stay below it.
pub const GATEWAY_FRAME_BYTES: usize = 32 * 1024;

impl Settings {
    /// Reads the settings; a missing or malformed variable fails naming it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::from_process())
    }

    /// Reads the settings from `env`.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let mut config = Config::from(env)?;
        if config.limits.max_message_bytes > GATEWAY_FRAME_BYTES {
            return Err(env.invalid(
                "MAX_MESSAGE_SIZE",
                "at most 32768 bytes: API Gateway refuses larger frames",
            ));
        }
        let served = match env.get("RELAYWIRE_APP") {
            None | Some("chat") => Served::Chat,
            Some("chat-demo") => Served::ChatDemo,
            Some("notify") => {
                relaywire_notify_server::apply_defaults(env, &mut config);
                Served::Notify
            }
            Some(_) => return Err(env.invalid("RELAYWIRE_APP", "`chat`, `chat-demo` or `notify`")),
        };
        let required = |name: &'static str| {
            env.get(name)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
                .ok_or(ConfigError::Missing {
                    name,
                    reason: "(the template sets it)",
                })
        };
        let gateway_endpoint = required("GATEWAY_ENDPOINT")?;
        if !(gateway_endpoint.starts_with("https://") || gateway_endpoint.starts_with("http://")) {
            return Err(env.invalid(
                "GATEWAY_ENDPOINT",
                "an https:// URL of the WebSocket API's stage",
            ));
        }
        Ok(Self {
            config,
            served,
            table: required("RELAYWIRE_TABLE")?,
            connections_table: required("CONNECTIONS_TABLE")?,
            gateway_endpoint,
        })
    }

    /// The app's server over DynamoDB and the Management API, with the SDK's usual
    /// credentials and region (and `AWS_ENDPOINT_URL_DYNAMODB`, for an emulator).
    pub async fn server<A: App + Clone>(&self, app: A) -> Result<GatewayServer<A>, Error> {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&shared);
        let management = aws_sdk_apigatewaymanagement::config::Builder::from(&shared)
            .endpoint_url(&self.gateway_endpoint)
            .build();
        let store = Arc::new(DynamoStore::new(dynamodb.clone(), &self.table));
        let table = Arc::new(DynamoConnections::new(dynamodb, &self.connections_table));
        let gateway = Arc::new(ManagementApi::new(
            aws_sdk_apigatewaymanagement::Client::from_conf(management),
        ));
        // Instances starting together race to seed the app's data; the loser's
        // transaction is cancelled (nothing written) and it tries again.
        let mut attempt = 0;
        loop {
            let store = Arc::clone(&store) as Arc<dyn relaywire_server::store::Store>;
            let table = Arc::clone(&table) as Arc<dyn relaywire_server::gateway::ConnectionTable>;
            let gateway = Arc::clone(&gateway) as Arc<dyn relaywire_server::gateway::Gateway>;
            match GatewayServer::start(self.config.clone(), app.clone(), store, table, gateway)
                .await
            {
                Ok(server) => return Ok(server),
                Err(relaywire_server::ServerError::Store(err))
                    if err.is_transient() && attempt < 5 =>
                {
                    attempt += 1;
                    tracing::warn!(error = %err, attempt, "starting the app failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// A function's start: its settings from the environment, and its logging. Bad
/// settings are logged, naming the variable, and end the function.
pub fn start() -> Result<Settings, Error> {
    let settings = Settings::from_env().inspect_err(|err| {
        init_logging(None);
        tracing::error!(error = %err, "bad configuration");
    })?;
    init_logging(Some(&settings));
    Ok(settings)
}

/// A function's exit status once its runtime ends: 1 after a failure, logged.
pub fn exit_code(ended: Result<(), Error>) -> std::process::ExitCode {
    match ended {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "the function stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs as JSON lines to stdout, which Lambda sends to CloudWatch.
fn init_logging(settings: Option<&Settings>) {
    let level = settings.map_or("info", |settings| settings.config.log_level.as_str());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .without_time()
        .try_init();
}

fn response(status: u16, headers: HeaderMap, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = body.map(Body::Text);
    response
}

/// The identity the authorizer put in the request's context, if it proved one.
fn authorized_identity(fields: &std::collections::HashMap<String, Value>) -> Option<Identity> {
    let field = |name: &str| match fields.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    let user_id = field("userId")?;
    Some(Identity {
        name: field("name").unwrap_or_else(|| user_id.clone()),
        user_id,
        roles: field("roles")
            .map(|roles| {
                roles
                    .split(',')
                    .map(str::to_owned)
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        expires_at: expiry_from_secs(field("expiresAt").and_then(|secs| secs.parse().ok())),
    })
}

/// Handles one event of the WebSocket API's routes.
pub async fn websocket_route<A: App>(
    server: &GatewayServer<A>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let Some(connection_id) = context.connection_id.as_deref() else {
        return response(400, HeaderMap::new(), None);
    };
    match context.route_key.as_deref() {
        Some("$connect") => {
            let identity = authorized_identity(&context.authorizer.fields);
            let offered = event
                .headers
                .get("sec-websocket-protocol")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            let resume_after = event
                .query_string_parameters
                .first(RESUME_PARAM)
                .and_then(|value| value.parse::<u64>().ok())
                .and_then(|value| Seq::new(value).ok());
            match server
                .connect(connection_id, identity, offered, resume_after)
                .await
            {
                Ok(subprotocol) => {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "sec-websocket-protocol",
                        HeaderValue::from_static(subprotocol),
                    );
                    response(200, headers, None)
                }
                Err(refused) => {
                    let body = serde_json::to_string(&ApiError {
                        error: refused.error,
                    })
                    .ok();
                    response(refused.status, HeaderMap::new(), body)
                }
            }
        }
        Some("$disconnect") => {
            server.disconnect(connection_id).await;
            response(200, HeaderMap::new(), None)
        }
        _ => {
            let body = event.body.unwrap_or_default();
            // API Gateway sends binary frames base64-encoded; the protocol is text.
            let text = if event.is_base64_encoded {
                "\u{0}"
            } else {
                body.as_str()
            };
            server.receive(connection_id, text).await;
            response(200, HeaderMap::new(), None)
        }
    }
}

/// The query string of an authorizer's event as pairs.
fn query_pairs(event: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Vec<(String, String)> {
    event
        .query_string_parameters
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The REQUEST authorizer of `$connect`: a valid token (query `token`, `Authorization:
/// Bearer`, or the cookies `auth`, `id_token`, `authToken`) allows the connection with
/// its identity in the context; none allows it to authenticate by message; an invalid
/// one is denied (the handshake fails with 403).
pub async fn authorize(
    verifier: &HandshakeVerifier,
    event: ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> ApiGatewayCustomAuthorizerResponse {
    let verified = verifier.verify(&event.headers, &query_pairs(&event)).await;
    let (effect, principal, context) = match verified {
        Ok(Some(identity)) => {
            let mut context = json!({
                "userId": identity.user_id,
                "name": identity.name,
                "roles": identity.roles.join(","),
            });
            if let Some(expires) = expiry_secs(&identity) {
                context["expiresAt"] = json!(expires);
            }
            (IamPolicyEffect::Allow, identity.user_id.clone(), context)
        }
        Ok(None) => (IamPolicyEffect::Allow, "anonymous".to_owned(), json!({})),
        Err(error) => {
            tracing::info!(code = error.code.as_str(), reason = %error.message, "authorizer denied a connection");
            (
                IamPolicyEffect::Deny,
                "denied".to_owned(),
                json!({ "code": error.code.as_str() }),
            )
        }
    };
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = effect;
    statement.resource = vec![event.method_arn.clone().unwrap_or_else(|| "*".to_owned())];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = vec![statement];
    let mut answer = ApiGatewayCustomAuthorizerResponse::default();
    answer.principal_id = Some(principal);
    answer.policy_document = policy;
    answer.context = context;
    answer
}

/// Runs the WebSocket routes' function for `app`.
pub async fn run_websocket<A: App + Clone>(settings: &Settings, app: A) -> Result<(), Error> {
    let server = Arc::new(settings.server(app).await?);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let server = Arc::clone(&server);
            async move { Ok::<_, Error>(websocket_route(&server, event.payload).await) }
        },
    ))
    .await
}

/// Runs the authorizer's function.
pub async fn run_authorizer(settings: &Settings) -> Result<(), Error> {
    let verifier = Arc::new(HandshakeVerifier::new(&settings.config));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
            let verifier = Arc::clone(&verifier);
            async move { Ok::<_, Error>(authorize(&verifier, event.payload).await) }
        },
    ))
    .await
}

/// Runs the HTTP API's function for `app`: the same routes as the socket server's
/// (`/api/...`), everything they send reaching the gateway before each response.
pub async fn run_http<A: App + Clone>(settings: &Settings, app: A) -> Result<(), Error> {
    let server = Arc::new(settings.server(app).await?);
    lambda_http::run(server_router(server)).await
}

fn server_router<A: App>(server: Arc<GatewayServer<A>>) -> axum::Router {
    let settled = Arc::clone(&server);
    server.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let server = Arc::clone(&settled);
            async move {
                let response = next.run(request).await;
                server.settle().await;
                response
            }
        },
    ))
}
