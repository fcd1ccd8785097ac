//! Authentication by API key: `Authorization: Bearer KEY`, checked against the store's keyed
//! hash in constant time, then the per-key rate limit. Handlers say which role they need with
//! [`Caller::require`].

use axum::extract::FromRequestParts;
use graphwarden_core::{Role, TokenAlias};
use graphwarden_store::ApiKey;
use http::StatusCode;
use http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The key a request was made with.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// Refuse with 403 unless the key's role includes `role`.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.0.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the `{role}` role; the key `{}` has `{}`",
                self.0.name, self.0.role
            )))
        }
    }

    /// Refuse with 403 unless the key may fetch the secret of `alias`: an admin key, or a
    /// consumer key that names it.
    pub fn require_secret_of(&self, alias: &TokenAlias) -> Result<(), ApiError> {
        match self.0.role {
            Role::Admin => Ok(()),
            Role::Consumer if self.0.aliases.contains(alias) => Ok(()),
            Role::Consumer => Err(ApiError::forbidden(format!(
                "the key `{}` may not fetch `{alias}`; it names {}",
                self.0.name,
                self.0
                    .aliases
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            _ => Err(ApiError::forbidden(
                "only consumer keys (for their own aliases) and admin keys may fetch a secret",
            )),
        }
    }

    /// How events name this caller.
    pub fn actor(&self) -> String {
        format!("apikey:{}", self.0.name)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::from_headers(&parts.headers, state).await
    }
}

impl Caller {
    /// The caller a request's `Authorization` header names, checked and rate-limited.
    pub async fn from_headers(
        headers: &http::HeaderMap,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, key) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .ok_or_else(ApiError::unauthorized)?;
        let key = state
            .inventory()
            .verify_api_key(presented)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if !state.within_rate_limit(&key.id) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "the key `{}` made more than {} requests in a minute; slow down",
                    key.name,
                    state.config().rate_limit_per_minute
                ),
            ));
        }
        Ok(Self(key))
    }
}
