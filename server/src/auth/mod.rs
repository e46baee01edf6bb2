//! Who is connecting: where tokens come from and how they are verified.
//!
//! A token may arrive in a cookie (`authToken`, `auth`, `id_token` by default), the
//! `?token=` query parameter, an `Authorization: Bearer` header, or a first `auth`
//! message. It is verified with HS256, RS256 against a JWKS (AWS Cognito's way), or by
//! asking an HTTP profile endpoint (the Bun server's way).

mod jwks;
mod profile;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use relaywire_protocol::{CloseCode, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::config::AuthMode;

pub(crate) use jwks::JwksVerifier;
pub(crate) use profile::ProfileVerifier;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user id (`sub`, or the profile's `userId`).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Roles or groups (`role`, `roles`, `cognito:groups`).
    pub roles: Vec<String>,
    /// When the token stops being valid, if it says.
    pub expires_at: Option<SystemTime>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AuthError {
    /// No token anywhere it may be.
    #[error("no token: send a cookie, ?token=, an Authorization header or an auth message")]
    Missing,
    /// The token has expired.
    #[error("token expired")]
    Expired,
    /// The token is malformed, badly signed, or its claims do not match.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key set or the profile endpoint could not be reached; the token may be fine.
    #[error("cannot verify tokens right now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The error code sent in the `error` message before closing.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            AuthError::Unavailable(_) => ErrorCode::HttpError,
            _ => ErrorCode::AuthFailed,
        }
    }

    /// The close code: expired tokens and unreachable verifiers have their own, so a
    /// client refreshes or retries; other failures use the configured auth code.
    pub(crate) fn close_code(&self, auth_failed: CloseCode) -> CloseCode {
        match self {
            AuthError::Expired => CloseCode::TokenExpired,
            AuthError::Unavailable(_) => CloseCode::TryAgainLater,
            _ => auth_failed,
        }
    }

    /// A short label for metrics.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Expired => "expired",
            AuthError::Invalid(_) => "invalid",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

/// Verifies tokens in the configured way.
#[derive(Debug)]
pub(crate) enum Verifier {
    /// HS256 with a shared secret.
    Hs256 {
        /// Verifies signatures.
        decoding: DecodingKey,
        /// Signs dev-login tokens.
        encoding: EncodingKey,
    },
    /// RS256 against a cached JWKS.
    Jwks(JwksVerifier),
    /// Delegated to an HTTP profile endpoint.
    Profile(ProfileVerifier),
}

/// Claims Relaywire reads; everything else is ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    sub: String,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "cognito:username")]
    cognito_username: Option<String>,
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default, rename = "cognito:groups")]
    groups: Option<Vec<String>>,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
}

impl Claims {
    fn into_identity(self) -> Result<Identity, AuthError> {
        if self.sub.trim().is_empty() {
            return Err(AuthError::Invalid("empty `sub`".to_owned()));
        }
        let name = [
            self.name,
            self.cognito_username,
            self.preferred_username,
            self.email,
        ]
        .into_iter()
        .flatten()
        .find(|name| !name.trim().is_empty())
        .unwrap_or_else(|| self.sub.clone());
        let roles = self
            .role
            .into_iter()
            .chain(self.roles.into_iter().flatten())
            .chain(self.groups.into_iter().flatten())
            .collect();
        // A signed `exp` may be any number; one past what the clock can hold is refused
        // rather than overflowing.
        let expires_at = match self.exp {
            Some(exp) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(exp))
                    .ok_or_else(|| AuthError::Invalid("`exp` is out of range".to_owned()))?,
            ),
            None => None,
        };
        Ok(Identity {
            user_id: self.sub,
            name,
            roles,
            expires_at,
        })
    }
}

/// The claims `POST /auth/dev-login` signs.
#[derive(Debug, Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    name: &'a str,
    iat: u64,
    exp: u64,
}

/// What failed, in the server's words: the library's own text (parser positions,
/// serde variants) goes to the debug log, not to the client.
fn jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    tracing::debug!(error = %err, "token refused");
    let reason = match err.kind() {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::InvalidSignature => "the signature does not match",
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
        ErrorKind::InvalidIssuer => "the issuer (`iss`) is not accepted",
        ErrorKind::InvalidAudience => "the audience (`aud`) is not accepted",
        ErrorKind::InvalidSubject => "the subject (`sub`) is not accepted",
        ErrorKind::MissingRequiredClaim(claim) => {
            return AuthError::Invalid(format!("the claim `{claim}` is missing"));
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "the signing algorithm is not accepted"
        }
        ErrorKind::InvalidKeyFormat | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidEcdsaKey => {
            "the key cannot verify this token"
        }
        _ => "not a well-formed JWT with the claims this server needs",
    };
    AuthError::Invalid(reason.to_owned())
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

impl Verifier {
    /// Builds the verifier the configuration asks for.
    pub(crate) fn new(mode: &AuthMode) -> Self {
        match mode {
            AuthMode::Hs256 { secret } => Verifier::Hs256 {
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                encoding: EncodingKey::from_secret(secret.as_bytes()),
            },
            AuthMode::Jwks(config) => Verifier::Jwks(JwksVerifier::new(config.clone())),
            AuthMode::Profile { api_url } => {
                Verifier::Profile(ProfileVerifier::new(api_url.clone()))
            }
        }
    }

    /// Verifies a token and says who it belongs to.
    pub(crate) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        match self {
            Verifier::Hs256 { decoding, .. } => {
                let data =
                    jsonwebtoken::decode::<Claims>(token, decoding, &validation(Algorithm::HS256))
                        .map_err(jwt_error)?;
                data.claims.into_identity()
            }
            Verifier::Jwks(jwks) => jwks.verify(token).await,
            Verifier::Profile(profile) => profile.verify(token).await,
        }
    }

    /// Signs an HS256 token for local development; `None` unless tokens are HS256.
    pub(crate) fn sign_dev_token(
        &self,
        user_id: &str,
        name: &str,
        lifetime: Duration,
    ) -> Option<String> {
        self.sign_token(user_id, name, i64::try_from(lifetime.as_secs()).ok()?)
    }

    /// Signs an HS256 token that expires `ttl_secs` from now (in the past when
    /// negative); `None` unless tokens are HS256.
    pub(crate) fn sign_token(&self, user_id: &str, name: &str, ttl_secs: i64) -> Option<String> {
        let Verifier::Hs256 { encoding, .. } = self else {
            return None;
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let claims = DevClaims {
            sub: user_id,
            name,
            iat: now,
            exp: now.checked_add_signed(ttl_secs)?,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, encoding).ok()
    }
}

/// Finds a token in the handshake: the query's `token`, then `Authorization: Bearer`,
/// then the first configured cookie present.
pub(crate) fn token_from_handshake(
    headers: &HeaderMap,
    query: Option<&str>,
    cookie_names: &[String],
) -> Option<String> {
    query
        .and_then(token_from_query)
        .or_else(|| bearer_token(headers))
        .or_else(|| token_from_cookies(headers, cookie_names))
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The value of the first cookie in `names` that the request carries.
pub(crate) fn token_from_cookies(headers: &HeaderMap, names: &[String]) -> Option<String> {
    let cookies: Vec<(&str, &str)> = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .collect();
    names.iter().find_map(|name| {
        cookies
            .iter()
            .find(|(key, value)| key.trim() == name && !value.trim().is_empty())
            .map(|(_, value)| value.trim().trim_matches('"').to_owned())
    })
}

fn token_from_query(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token" && !value.is_empty()).then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+`; JWTs need neither, but clients may escape anyway.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn tokens_are_found_in_every_place() {
        let names: Vec<String> = vec!["authToken".into(), "auth".into(), "id_token".into()];
        let none = headers(&[]);
        assert_eq!(
            token_from_handshake(&none, Some("a=1&token=q%2Eq"), &names).as_deref(),
            Some("q.q")
        );
        let bearer = headers(&[("authorization", "Bearer  b.b.b ")]);
        assert_eq!(
            token_from_handshake(&bearer, None, &names).as_deref(),
            Some("b.b.b")
        );
        let cookie = headers(&[("cookie", "theme=dark; id_token=c.c; other=x")]);
        assert_eq!(
            token_from_handshake(&cookie, None, &names).as_deref(),
            Some("c.c")
        );
        let two = headers(&[("cookie", "auth=second"), ("cookie", "authToken=first")]);
        assert_eq!(
            token_from_handshake(&two, None, &names).as_deref(),
            Some("first")
        );
        assert_eq!(token_from_handshake(&none, Some("token="), &names), None);
        let basic = headers(&[("authorization", "Basic abc")]);
        assert_eq!(token_from_handshake(&basic, None, &names), None);
    }

    #[test]
    fn percent_decoding_never_panics() {
        for input in ["%", "%4", "%zz", "a%20b", "%e2%9c%93", "+%"] {
            let _ = percent_decode(input);
        }
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%e2%9c%93"), "✓");
    }

    #[tokio::test]
    async fn hs256_round_trip_and_expiry() {
        let verifier = Verifier::new(&AuthMode::Hs256 {
            secret: "0123456789abcdef0123".into(),
        });
        let token = verifier
            .sign_dev_token("alice", "Alice", Duration::from_secs(60))
            .unwrap();
        let identity = verifier.verify(&token).await.unwrap();
        assert_eq!(identity.user_id, "alice");
        assert_eq!(identity.name, "Alice");
        assert!(identity.expires_at.is_some());

        let other = Verifier::new(&AuthMode::Hs256 {
            secret: "another-secret-of-16+".into(),
        });
        assert!(matches!(
            other.verify(&token).await,
            Err(AuthError::Invalid(_))
        ));
        assert_eq!(verifier.verify("  ").await, Err(AuthError::Missing));
        assert!(matches!(
            verifier.verify("not.a.jwt").await,
            Err(AuthError::Invalid(_))
        ));
    }
}
