//! `/api/v1/silences`: mute alerts matching some labels for a while.

use axum::Json;
use axum::extract::{Path, State};
use graphwarden_core::Role;
use graphwarden_store::SilenceRecord;
use http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One silence.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceView {
    pub id: String,
    /// Label matchers, all of which an alert must match: `token="ana"`, `alertname=~"token_.*"`.
    pub matchers: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// `pending`, `active` or `expired`, now.
    pub state: String,
}

fn view(r: SilenceRecord, now: Timestamp) -> SilenceView {
    SilenceView {
        state: r.silence.state(now).as_str().to_owned(),
        id: r.silence.id,
        matchers: r.silence.matchers.iter().map(ToString::to_string).collect(),
        starts_at: r.silence.starts_at,
        ends_at: r.silence.ends_at,
        created_by: r.silence.created_by,
        comment: r.silence.comment,
        created_at: r.created_at,
    }
}

/// A new silence: give `ends_at` or `duration`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// At least one; `token="ana"`, `alertname!="token_flagged"`, `severity=~"warn.*"`.
    pub matchers: Vec<String>,
    /// Defaults to now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// How long from `starts_at`: `2h`, `30m`, `1d`.
    pub duration: Option<String>,
    /// Why: required.
    pub comment: String,
}

/// Every silence, newest first, expired ones included.
#[utoipa::path(get, path = "/api/v1/silences", operation_id = "list_silences", tag = "alerts", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SilenceView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SilenceView>>, ApiError> {
    caller.require(Role::Reader)?;
    let now = state.clock().now();
    let all = state.inventory().store().silences().await?;
    Ok(Json(all.into_iter().map(|r| view(r, now)).collect()))
}

/// Mute the alerts matching every matcher, from `starts_at` (now) until `ends_at` or for
/// `duration`.
#[utoipa::path(post, path = "/api/v1/silences", operation_id = "create_silence", tag = "alerts", security(("bearer" = [])),
    request_body = NewSilence,
    responses(
        (status = 201, body = SilenceView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    caller.require(Role::Operator)?;
    let Json(body) = body.map_err(|e| ApiError::invalid(e.body_text()))?;
    let now = state.clock().now();
    let starts_at = body.starts_at.unwrap_or(now);
    let ends_at = match (body.ends_at, body.duration.as_deref()) {
        (Some(end), None) => end,
        (None, Some(d)) => {
            let d = graphwarden_core::duration::parse_duration(d)
                .map_err(|e| ApiError::invalid(e.to_string()))?;
            starts_at
                .checked_add(d)
                .map_err(|e| ApiError::invalid(format!("`duration`: {e}")))?
        }
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of `ends_at` and `duration`",
            ));
        }
    };
    let silence = crate::alerting::new_silence(
        &body.matchers,
        starts_at,
        ends_at,
        &caller.actor(),
        &body.comment,
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let store = state.inventory().store();
    store.insert_silence(&silence, now.as_millisecond()).await?;
    tracing::info!(silence = %silence.id, actor = %caller.actor(), "Silence `{}` was created for {}.", silence.id, silence.matchers);
    let record = SilenceRecord {
        silence,
        created_at: now,
    };
    Ok((StatusCode::CREATED, Json(view(record, now))))
}

/// End a silence now.
#[utoipa::path(delete, path = "/api/v1/silences/{id}", operation_id = "expire_silence", tag = "alerts", security(("bearer" = [])),
    params(("id" = String, Path, description = "The silence's id")),
    responses(
        (status = 204, description = "Expired"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such silence, or it has already ended", body = ErrorBody),
    ))]
pub async fn expire(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let now = state.clock().now();
    if !state
        .inventory()
        .store()
        .expire_silence(&id, now.as_millisecond())
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no silence `{id}` that has not ended yet"
        )));
    }
    tracing::info!(silence = %id, actor = %caller.actor(), "Silence `{id}` was expired.");
    Ok(StatusCode::NO_CONTENT)
}
