//! `/api/v1/apps`: the registered Meta apps (never their secrets).

use axum::Json;
use axum::extract::{Path, State};
use graphwarden_core::{AppId, Role};
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub app_id: String,
    pub name: String,
    /// Whether the app passed the organisation's own approval.
    pub approved: bool,
    pub notes: String,
    pub tokens: i64,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<graphwarden_store::App> for AppView {
    fn from(a: graphwarden_store::App) -> Self {
        Self {
            app_id: a.app_id.to_string(),
            name: a.name,
            approved: a.approved,
            notes: a.notes,
            tokens: a.token_count,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// Every registered app.
#[utoipa::path(get, path = "/api/v1/apps", operation_id = "list_apps", tag = "apps", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<AppView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AppView>>, ApiError> {
    caller.require(Role::Reader)?;
    let apps = state.inventory().apps().await?;
    Ok(Json(apps.into_iter().map(AppView::from).collect()))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}", operation_id = "get_app", tag = "apps", security(("bearer" = [])),
    params(("app_id" = String, Path, description = "The Meta app id")),
    responses(
        (status = 200, body = AppView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    caller.require(Role::Reader)?;
    let app_id = AppId::parse(&app_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Json(state.inventory().app(&app_id).await?.into()))
}
