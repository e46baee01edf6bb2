//! RS256 verification against a JWKS, the way AWS Cognito issues tokens.
//!
//! The key set is cached for its TTL and fetched again when a token names a key id the
//! cache does not hold (keys rotate), at most once per cooldown so that tokens with
//! made-up key ids cannot make the server hammer the key endpoint. When a fetch fails,
//! a stale set that still holds the key keeps working.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;

use super::{AuthError, Claims, Identity, jwt_error, validation};
use crate::config::JwksConfig;

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies RS256 tokens against a cached key set.
#[derive(Debug)]
pub(crate) struct JwksVerifier {
    config: JwksConfig,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl Cache {
    fn is_fresh(&self, ttl: Duration) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < ttl)
    }

    fn fetched_within(&self, window: Duration) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < window)
    }
}

impl JwksVerifier {
    /// A verifier that fetches its key set on first use.
    pub(crate) fn new(config: JwksConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            config,
            http,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(super) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(jwt_error)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid(format!(
                "algorithm {:?} is not accepted, only RS256",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Invalid("no `kid` in the token header".to_owned()))?;
        let key = self.key(&kid).await?;

        let mut validation = validation(Algorithm::RS256);
        if let Some(issuer) = &self.config.issuer {
            // Present and equal, as aws-jwt-verify requires: a token without `iss` is
            // not one of this pool's.
            validation.set_issuer(&[issuer]);
            validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(jwt_error)?
            .claims;
        self.check_cognito_claims(&claims)?;
        claims.into_identity()
    }

    /// `token_use` and the audience, which Cognito puts in `aud` for id tokens and in
    /// `client_id` for access tokens.
    fn check_cognito_claims(&self, claims: &Claims) -> Result<(), AuthError> {
        if let Some(expected) = &self.config.token_use
            && claims.token_use.as_deref() != Some(expected.as_str())
        {
            return Err(AuthError::Invalid(format!("token_use is not `{expected}`")));
        }
        if let Some(audience) = &self.config.audience {
            let in_aud = match &claims.aud {
                Some(serde_json::Value::String(aud)) => aud == audience,
                Some(serde_json::Value::Array(auds)) => {
                    auds.iter().any(|aud| aud.as_str() == Some(audience))
                }
                _ => false,
            };
            if !in_aud && claims.client_id.as_deref() != Some(audience.as_str()) {
                return Err(AuthError::Invalid(
                    "audience does not match (aud / client_id)".to_owned(),
                ));
            }
        }
        Ok(())
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.is_fresh(self.config.cache_ttl);
        if fresh && let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        // Unknown key id in a fresh set: the keys may have rotated, but refetch at most
        // once per cooldown.
        if fresh && cache.fetched_within(self.config.refetch_cooldown) {
            return Err(AuthError::Invalid(format!("unknown key id `{kid}`")));
        }
        match self.fetch().await {
            Ok(keys) => {
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
            }
            Err(err) => {
                if let Some(stale) = cache.keys.get(kid) {
                    tracing::warn!(error = %err, "JWKS refresh failed; using the cached key");
                    return Ok(stale.clone());
                }
                return Err(err);
            }
        }
        cache
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::Invalid(format!("unknown key id `{kid}`")))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, AuthError> {
        let unavailable = |err: reqwest::Error| AuthError::Unavailable(format!("JWKS: {err}"));
        let started = Instant::now();
        let set: JwkSet = self
            .http
            .get(&self.config.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let keys: HashMap<_, _> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect();
        tracing::info!(
            keys = keys.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "fetched JWKS"
        );
        Ok(keys)
    }
}
