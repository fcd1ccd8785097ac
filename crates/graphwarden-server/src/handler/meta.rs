//! Meta's callbacks: de-authorization and data-deletion requests, each at a URL per app that an
//! operator enters in the App Dashboard. The body is a `signed_request` (reference §6.2), checked
//! against that app's secret; anything that does not verify is refused with 400, logged, and
//! changes nothing.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use graphwarden_core::AppId;
use graphwarden_meta::{SignedRequest, parse_signed_request};
use http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Verify the form's `signed_request` with the app's secret.
async fn verified(
    state: &AppState,
    app_id: &str,
    form: &HashMap<String, String>,
    what: &str,
) -> Result<(AppId, SignedRequest), ApiError> {
    let app_id = AppId::parse(app_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let secret = state.inventory().app_secret(&app_id).await?;
    let Some(raw) = form.get("signed_request") else {
        tracing::warn!(app = %app_id, "A {what} callback came without a `signed_request`; ignored.");
        return Err(ApiError::invalid("the form must carry `signed_request`"));
    };
    parse_signed_request(raw, &secret)
        .map(|r| (app_id.clone(), r))
        .map_err(|e| {
            tracing::warn!(app = %app_id, "A {what} callback was refused: {e}.");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_signed_request",
                format!("the signed_request was refused: {e}"),
            )
        })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deauthorized {
    /// The tokens now marked `deauthorized`.
    pub tokens: Vec<String>,
}

/// Meta's de-authorize callback for an app: the user removed the app, so their tokens for it
/// (and the Page tokens derived from them) are dead at once.
#[utoipa::path(post, path = "/meta/deauthorize/{app_id}", operation_id = "meta_deauthorize", tag = "meta",
    params(("app_id" = String, Path, description = "The Meta app id this URL was given for")),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "`signed_request=…`"),
    responses(
        (status = 200, body = Deauthorized),
        (status = 400, description = "Missing, malformed or wrongly signed", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ))]
pub async fn deauthorize(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Json<Deauthorized>, ApiError> {
    let (app_id, request) = verified(&state, &app_id, &form, "de-authorize").await?;
    let tokens = state
        .inventory()
        .deauthorize_user(
            &app_id,
            &request.user_id,
            &format!(
                "Meta's de-authorize callback: user {} removed app {app_id}",
                request.user_id
            ),
            "meta:deauthorize",
        )
        .await?;
    state.tokens_changed();
    tracing::warn!(app = %app_id, user = %request.user_id, tokens = tokens.len(), "User `{}` removed app `{app_id}`; their tokens are marked `deauthorized`.", request.user_id);
    Ok(Json(Deauthorized {
        tokens: tokens.iter().map(ToString::to_string).collect(),
    }))
}

/// What Meta expects back from a data-deletion callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionAnswer {
    /// Where the user can follow the request.
    pub url: String,
    pub confirmation_code: String,
}

/// The address people reach this server at.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config().public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Meta's data-deletion request callback for an app: recorded, answered with a confirmation
/// code and a status URL; the user's tokens for the app are marked `deauthorized`.
#[utoipa::path(post, path = "/meta/data-deletion/{app_id}", operation_id = "meta_data_deletion", tag = "meta",
    params(("app_id" = String, Path, description = "The Meta app id this URL was given for")),
    request_body(content_type = "application/x-www-form-urlencoded", content = String, description = "`signed_request=…`"),
    responses(
        (status = 200, body = DeletionAnswer),
        (status = 400, description = "Missing, malformed or wrongly signed", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    ))]
pub async fn data_deletion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Json<DeletionAnswer>, ApiError> {
    let (app_id, request) = verified(&state, &app_id, &form, "data-deletion").await?;
    let inventory = state.inventory();
    let tokens = inventory
        .deauthorize_user(
            &app_id,
            &request.user_id,
            &format!(
                "Meta's data-deletion callback: user {} asked app {app_id} to delete their data",
                request.user_id
            ),
            "meta:data_deletion",
        )
        .await?;
    let detail = if tokens.is_empty() {
        "graphwarden holds no usable token of this user for this app".to_owned()
    } else {
        format!(
            "{} token(s) of this user are marked deauthorized; an operator removes them",
            tokens.len()
        )
    };
    let recorded = inventory
        .record_deletion_request(&app_id, &request.user_id, &detail, "meta:data_deletion")
        .await?;
    state.tokens_changed();
    tracing::warn!(app = %app_id, user = %request.user_id, code = %recorded.code, "User `{}` asked app `{app_id}` to delete their data.", request.user_id);
    Ok(Json(DeletionAnswer {
        url: format!(
            "{}/meta/data-deletion/status/{}",
            base_url(&state, &headers),
            recorded.code
        ),
        confirmation_code: recorded.code,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionStatus {
    pub confirmation_code: String,
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
    /// `received`.
    pub status: String,
    pub detail: String,
}

/// The status of a data-deletion request, for the person who made it (no key needed: the
/// confirmation code is the secret).
#[utoipa::path(get, path = "/meta/data-deletion/status/{code}", operation_id = "meta_data_deletion_status", tag = "meta",
    params(("code" = String, Path, description = "The confirmation code")),
    responses(
        (status = 200, body = DeletionStatus),
        (status = 404, body = ErrorBody),
    ))]
pub async fn deletion_status(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<DeletionStatus>, ApiError> {
    let unknown = || ApiError::not_found("no data-deletion request has this confirmation code");
    if code.len() > 64 {
        return Err(unknown());
    }
    let request = state
        .inventory()
        .deletion_request(&code)
        .await?
        .ok_or_else(unknown)?;
    Ok(Json(DeletionStatus {
        confirmation_code: request.code,
        requested_at: request.requested_at,
        status: request.status,
        detail: request.detail,
    }))
}
