//! `POST /api/v1/renewals`: renew now (or preview), like `graphwarden renew`.

use axum::Json;
use axum::extract::State;
use graphwarden_core::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::handler::tokens::alias;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// The tokens to consider; empty or absent for all.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Say what would happen and why, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenewalView {
    pub alias: String,
    /// What the policy says: `exchange`, `refresh_system_user`, `rederive_page`, `none`, …
    pub plan: String,
    /// Why.
    pub reason: String,
    /// `renewed`, `finished`, `planned`, `skipped`, `relogin` or `failed`.
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenewResult {
    pub dry_run: bool,
    pub tokens: Vec<RenewalView>,
}

/// Renew what the renewal policy says is due (or, with `dry_run`, only say what would be done).
#[utoipa::path(post, path = "/api/v1/renewals", operation_id = "run_renewal", tag = "lifecycle", security(("bearer" = [])),
    request_body(content = RenewRequest, description = "Which tokens, and whether to only preview"),
    responses(
        (status = 200, body = RenewResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<RenewResult>, ApiError> {
    let request: RenewRequest = crate::handler::json_or_default(&headers, &body)?;
    // A preview changes nothing, so readers may ask for one.
    caller.require(if request.dry_run {
        Role::Reader
    } else {
        Role::Operator
    })?;
    let renewer = state.renewer();
    let actor = caller.actor();
    let to_api = |e: graphwarden_lifecycle::renew::RenewError| match e {
        graphwarden_lifecycle::renew::RenewError::Store(s) => ApiError::from(s),
    };
    let report = if request.aliases.is_empty() {
        renewer
            .renew_all(request.dry_run, &actor)
            .await
            .map_err(to_api)?
    } else {
        let mut tokens = Vec::new();
        for a in &request.aliases {
            tokens.push(state.inventory().token(&alias(a)?).await?);
        }
        renewer
            .renew(tokens, request.dry_run, false, &actor)
            .await
            .map_err(to_api)?
    };
    if !request.dry_run {
        state.tokens_changed();
    }
    Ok(Json(RenewResult {
        dry_run: request.dry_run,
        tokens: report
            .tokens
            .into_iter()
            .map(|r| RenewalView {
                alias: r.alias,
                plan: r.plan.name().to_owned(),
                reason: r.plan.reason().to_owned(),
                outcome: r.outcome.to_owned(),
                detail: r.detail,
            })
            .collect(),
    }))
}
