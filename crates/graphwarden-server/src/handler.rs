//! The HTTP handlers, one file per resource, and the wire shapes they answer with.
//!
//! Handlers are thin: they check the caller's role, call the inventory, the lifecycle workers or
//! the scheduler, and turn the result into one of the views below. Times are RFC 3339 strings.

pub mod alerts;
pub mod apps;
pub mod checks;
pub mod health;
pub mod jobs;
pub mod meta;
pub mod metrics;
pub mod oauth;
pub mod renewals;
pub mod silences;
pub mod tokens;

use axum::body::Bytes;
use http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// An optional JSON body: none at all means the defaults, but a body that is there must be
/// declared JSON and parse. (axum's `Option<Json<T>>` takes a body sent with another content
/// type for no body at all, so `{"aliases": ["one"]}` sent as a form would act on everything.)
pub fn json_or_default<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_input",
            "send the body as JSON, with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let status = if e.is_data() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(
            status,
            "invalid_input",
            format!("the JSON body is not what this route takes: {e}"),
        )
    })
}
use utoipa::{IntoParams, ToSchema};

/// Paging of event lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Limit {
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

impl Limit {
    pub fn get(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// One entry of the event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who did it: a person (`--actor`), `apikey:NAME`, or `scheduler`.
    pub actor: String,
    /// What happened, such as `token.status_changed` or `token.revealed`.
    pub action: String,
    pub token: Option<String>,
    pub app_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<graphwarden_store::Event> for EventView {
    fn from(e: graphwarden_store::Event) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            token: e.token_alias,
            app_id: e.app_id,
            detail: e.detail,
        }
    }
}
