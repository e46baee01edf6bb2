//! Verification delegated to `GET {HTTP_API_URL}/auth/profile`, as the Bun chat server
//! does: the REST API that issued the token says who it belongs to.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;

use super::{AuthError, Identity};

const PROFILE_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the HTTP API who a token belongs to.
#[derive(Debug)]
pub(crate) struct ProfileVerifier {
    url: String,
    http: reqwest::Client,
}

/// The profile, at the top level or under `data`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProfileResponse {
    Wrapped { data: Profile },
    Bare(Profile),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    user_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

impl ProfileVerifier {
    /// A verifier for the HTTP API at `api_url`.
    pub(crate) fn new(api_url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(PROFILE_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            url: format!("{api_url}/auth/profile"),
            http,
        }
    }

    pub(super) async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let started = Instant::now();
        let response = self
            .http
            .get(&self.url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|err| AuthError::Unavailable(format!("profile endpoint: {err}")))?;
        let status = response.status();
        tracing::info!(
            status = status.as_u16(),
            duration_ms = started.elapsed().as_millis() as u64,
            "GET /auth/profile"
        );
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(AuthError::Invalid(format!(
                "profile endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(AuthError::Unavailable(format!(
                "profile endpoint answered {status}"
            )));
        }
        let profile = match response.json::<ProfileResponse>().await {
            Ok(ProfileResponse::Wrapped { data } | ProfileResponse::Bare(data)) => data,
            Err(err) => {
                return Err(AuthError::Unavailable(format!("profile endpoint: {err}")));
            }
        };
        if profile.user_id.trim().is_empty() {
            return Err(AuthError::Invalid("profile has an empty userId".to_owned()));
        }
        let name = profile
            .name
            .or(profile.email)
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| profile.user_id.clone());
        Ok(Identity {
            user_id: profile.user_id,
            name,
            roles: profile.role.into_iter().collect(),
            expires_at: None,
        })
    }
}
