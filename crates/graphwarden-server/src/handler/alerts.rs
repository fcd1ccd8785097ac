//! `/api/v1/alerts`: what the alert engine holds now.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use graphwarden_core::Role;
use graphwarden_core::alert::{AlertStatus, AlertView};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One firing alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertInfo {
    /// A hash of the labels: the alert's identity.
    pub fingerprint: String,
    /// `alertname`, `severity`, `token`, `app_id`, …
    pub labels: BTreeMap<String, String>,
    /// `summary`, `description`, `action`, and `relogin_url` when logging in again fixes it.
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Timestamp,
    /// Ids of the active silences that mute it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
    /// The receivers it is routed to.
    pub receivers: Vec<String>,
}

impl From<AlertView> for AlertInfo {
    fn from(v: AlertView) -> Self {
        Self {
            fingerprint: v.fingerprint,
            labels: v.alert.labels,
            annotations: v.alert.annotations,
            starts_at: v.alert.starts_at,
            silenced_by: v.silenced_by,
            inhibited_by: v.inhibited_by,
            receivers: v.receivers,
        }
    }
}

/// The firing alerts, with what mutes each. Empty when alerts are disabled.
#[utoipa::path(get, path = "/api/v1/alerts", operation_id = "list_alerts", tag = "alerts", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<AlertInfo>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AlertInfo>>, ApiError> {
    caller.require(Role::Reader)?;
    let Some(engine) = state.alerts() else {
        return Ok(Json(Vec::new()));
    };
    let views = engine.alerts().await.map_err(|e| match e {
        crate::alerting::AlertError::Store(s) => ApiError::from(s),
        other => ApiError::internal(other),
    })?;
    Ok(Json(
        views
            .into_iter()
            .filter(|v| v.status() == AlertStatus::Firing)
            .map(AlertInfo::from)
            .collect(),
    ))
}
