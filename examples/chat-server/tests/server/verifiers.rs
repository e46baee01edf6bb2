//! RS256 tokens against a JWKS served on 127.0.0.1 (Cognito-style claims, key
//! rotation, caching), and verification delegated to an HTTP profile endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router, routing};
use relaywire_chat_server::config::{AuthMode, JwksConfig};
use relaywire_protocol::CloseCode;
use serde_json::{Value, json};

use crate::support::{Client, Ending, TestServer, config};

const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test";
const CLIENT_ID: &str = "client-123";

/// A JWKS endpoint whose keys the test can change, counting fetches.
#[derive(Clone)]
struct KeyServer {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    addr: std::net::SocketAddr,
}

/// The key server's state: the published keys and the fetch count.
type KeyState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

async fn serve_keys(
    axum::extract::State((keys, fetches)): axum::extract::State<KeyState>,
) -> Json<Value> {
    fetches.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "keys": keys.lock().unwrap().clone() }))
}

impl KeyServer {
    async fn start(keys: Vec<Value>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/.well-known/jwks.json", routing::get(serve_keys))
            .with_state((Arc::clone(&keys), Arc::clone(&fetches)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            keys,
            fetches,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }
}

fn jwk(name: &str) -> Value {
    let text = match name {
        "a" => include_str!("fixtures/rsa-a.jwk.json"),
        _ => include_str!("fixtures/rsa-b.jwk.json"),
    };
    serde_json::from_str(text).unwrap()
}

fn rs256(key: &str, claims: Value) -> String {
    let pem: &[u8] = match key {
        "a" => include_bytes!("fixtures/rsa-a.pem"),
        _ => include_bytes!("fixtures/rsa-b.pem"),
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(format!("key-{key}"));
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap(),
    )
    .unwrap()
}

fn without(mut claims: Value, claim: &str) -> Value {
    claims.as_object_mut().unwrap().remove(claim);
    claims
}

fn cognito_claims(extra: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "sub": "5f1c-user",
        "cognito:username": "uma",
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "token_use": "id",
        "exp": now + 3600,
        "iat": now,
    });
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

async fn server_for(keys: &KeyServer, token_use: &str) -> TestServer {
    let mut config = config();
    config.auth = AuthMode::Jwks(JwksConfig {
        url: keys.url(),
        issuer: Some(ISSUER.to_owned()),
        audience: Some(CLIENT_ID.to_owned()),
        token_use: Some(token_use.to_owned()),
        cache_ttl: Duration::from_secs(3600),
        refetch_cooldown: Duration::ZERO,
    });
    TestServer::with(config).await
}

async fn outcome(server: &TestServer, token: &str) -> Result<Value, (String, Ending)> {
    let mut client = Client::open(&format!("{}?token={token}", server.ws_url()), &[]).await;
    let first = client.next_json().await;
    if first["type"] == "connected" {
        return Ok(first);
    }
    let code = first["payload"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Err((code, client.ending().await))
}

#[tokio::test]
async fn cognito_id_tokens_are_verified_against_the_jwks() {
    let keys = KeyServer::start(vec![jwk("a")]).await;
    let server = server_for(&keys, "id").await;
    let connected = outcome(&server, &rs256("a", cognito_claims(json!({}))))
        .await
        .unwrap();
    assert_eq!(connected["payload"]["userId"], "5f1c-user");
    assert_eq!(connected["payload"]["userName"], "uma");

    let refused = Err(("AUTH_FAILED".to_owned(), Ending::Closed(4001)));
    let cases = [
        cognito_claims(json!({"iss": "https://evil.example"})),
        cognito_claims(json!({"aud": "another-client"})),
        cognito_claims(json!({"token_use": "access"})),
        // JWT_ISSUER is set: a token without `iss` is not the pool's.
        without(cognito_claims(json!({})), "iss"),
        // Not valid before an hour from now.
        cognito_claims(json!({"nbf": 4_102_444_800_u64})),
    ];
    for claims in cases {
        assert_eq!(
            outcome(&server, &rs256("a", claims.clone())).await,
            refused,
            "{claims}"
        );
    }
    let expired = rs256("a", cognito_claims(json!({"exp": 1_000_000_000})));
    assert_eq!(
        outcome(&server, &expired).await,
        Err(("AUTH_FAILED".to_owned(), Ending::Closed(4002)))
    );
    // An HS256 token cannot pass as RS256 (algorithm confusion).
    assert_eq!(
        outcome(&server, &crate::support::token("alice")).await,
        refused
    );

    // The key set was fetched once and cached.
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn access_tokens_carry_the_audience_in_client_id() {
    let keys = KeyServer::start(vec![jwk("a")]).await;
    let server = server_for(&keys, "access").await;
    let access =
        cognito_claims(json!({"token_use": "access", "client_id": CLIENT_ID, "aud": null}));
    assert!(outcome(&server, &rs256("a", access)).await.is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_key_id() {
    let keys = KeyServer::start(vec![jwk("a")]).await;
    let server = server_for(&keys, "id").await;
    assert!(
        outcome(&server, &rs256("a", cognito_claims(json!({}))))
            .await
            .is_ok()
    );
    // Key B is not published yet: refused.
    let with_b = rs256("b", cognito_claims(json!({})));
    assert_eq!(
        outcome(&server, &with_b).await,
        Err(("AUTH_FAILED".to_owned(), Ending::Closed(4001)))
    );
    // The provider rotates to B: the unknown key id makes the server fetch again.
    *keys.keys.lock().unwrap() = vec![jwk("b")];
    assert!(outcome(&server, &with_b).await.is_ok());
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_jwks_is_an_http_error_and_a_retry_later() {
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/jwks.json", unused.local_addr().unwrap());
    drop(unused);
    let mut config = config();
    config.auth = AuthMode::Jwks(JwksConfig {
        url: dead_url,
        issuer: None,
        audience: None,
        token_use: None,
        cache_ttl: Duration::from_secs(60),
        refetch_cooldown: Duration::ZERO,
    });
    let server = TestServer::with(config).await;
    let result = outcome(&server, &rs256("a", cognito_claims(json!({})))).await;
    assert_eq!(
        result,
        Err((
            "HTTP_ERROR".to_owned(),
            Ending::Closed(CloseCode::TryAgainLater.code())
        ))
    );
    server.shutdown().await;
}

async fn profile(headers: HeaderMap) -> axum::response::Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match token {
        "good" => Json(
            json!({"userId": "u-1", "email": "uma@example.com", "name": "Uma", "role": "user"}),
        )
        .into_response(),
        "wrapped" => {
            Json(json!({"data": {"userId": "u-2", "email": "vic@example.com"}})).into_response()
        }
        "boom" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[tokio::test]
async fn the_profile_endpoint_can_verify_tokens_like_the_bun_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            Router::new().route("/auth/profile", routing::get(profile)),
        )
        .await
    });
    let mut config = config();
    config.auth = AuthMode::Profile { api_url };
    let server = TestServer::with(config).await;

    let connected = outcome(&server, "good").await.unwrap();
    assert_eq!(connected["payload"]["userId"], "u-1");
    assert_eq!(connected["payload"]["userName"], "Uma");
    let connected = outcome(&server, "wrapped").await.unwrap();
    assert_eq!(connected["payload"]["userName"], "vic@example.com");
    assert_eq!(
        outcome(&server, "bad").await,
        Err(("AUTH_FAILED".to_owned(), Ending::Closed(4001)))
    );
    assert_eq!(
        outcome(&server, "boom").await,
        Err((
            "HTTP_ERROR".to_owned(),
            Ending::Closed(CloseCode::TryAgainLater.code())
        ))
    );
    server.shutdown().await;
}
