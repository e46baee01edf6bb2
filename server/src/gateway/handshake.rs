//! The handshake's token, for a gateway's authorizer.

use relaywire_protocol::{ErrorCode, ErrorPayload};

use crate::auth::{Identity, Verifier, token_from_cookies};
use crate::config::Config;

/// Verifies the token of a gateway's handshake, for its authorizer: the query's
/// `token`, then `Authorization: Bearer`, then the configured cookies (only from the
/// site's own origin or one `CORS_ORIGIN` names); none (or the client saying
/// `?auth=message`) means the client authenticates by message. A page of an origin
/// not allowed is refused, as by the socket server.
#[derive(Debug)]
pub struct HandshakeVerifier {
    verifier: Verifier,
    cookies: Vec<String>,
    origins: crate::origin::Origins,
}

impl HandshakeVerifier {
    /// A verifier for the configuration's auth mode and cookies.
    pub fn new(config: &Config) -> Self {
        Self {
            verifier: Verifier::new(&config.auth),
            cookies: config.auth_cookies.clone(),
            origins: crate::origin::Origins::new(&config.allowed_origins),
        }
    }

    /// The identity the handshake's token proves, `Ok(None)` when it carries none.
    pub async fn verify(
        &self,
        headers: &axum::http::HeaderMap,
        query: &[(String, String)],
    ) -> Result<Option<Identity>, ErrorPayload> {
        if !self.origins.allows(headers) {
            return Err(ErrorPayload::new(
                ErrorCode::Forbidden,
                "origin not allowed",
            ));
        }
        let (param, by_message) = relaywire_protocol::AUTH_BY_MESSAGE;
        if query
            .iter()
            .any(|(key, value)| key == param && value == by_message)
        {
            return Ok(None);
        }
        let token = query
            .iter()
            .find(|(key, value)| key == "token" && !value.is_empty())
            .map(|(_, value)| value.clone())
            .or_else(|| crate::auth::bearer_token(headers))
            // A page of another origin must not connect as the user its cookie names.
            .or_else(|| {
                token_from_cookies(headers, self.origins.usable_cookies(headers, &self.cookies))
            });
        let Some(token) = token else {
            return Ok(None);
        };
        self.verifier
            .verify(&token)
            .await
            .map(Some)
            .map_err(|err| ErrorPayload::new(err.code(), err.to_string()))
    }
}
