//! `POST /api/v1/checks`: inspect now, like `graphwarden check`.

use axum::Json;
use axum::extract::State;
use graphwarden_core::Role;
use graphwarden_lifecycle::{Checked, Selection, Severity};
use graphwarden_store::Expiry;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::handler::tokens::alias;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The tokens to inspect; empty or absent for all.
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckedView {
    pub alias: String,
    pub kind: String,
    pub app_id: String,
    pub status: String,
    pub cause: String,
    /// `ok`, `warning` or `critical`.
    #[schema(value_type = String)]
    pub severity: Severity,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub data_access_expires_at: Option<Timestamp>,
    pub action: String,
    pub warning: Option<String>,
    pub flags: Vec<String>,
    /// Whether Meta answered for this token in this round.
    pub inspected: bool,
}

impl From<Checked> for CheckedView {
    fn from(c: Checked) -> Self {
        Self {
            alias: c.alias.to_string(),
            kind: c.kind.as_str().to_owned(),
            app_id: c.app_id.to_string(),
            status: c.status.as_str().to_owned(),
            action: c.status.action().to_owned(),
            cause: c.cause,
            severity: c.severity,
            expires_at: match c.expires {
                Expiry::At(at) => Some(at),
                _ => None,
            },
            data_access_expires_at: c.data_access_expires_at,
            warning: c.warning,
            flags: c.flags,
            inspected: c.inspected,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// The highest severity: what `graphwarden check` would exit with.
    #[schema(value_type = String)]
    pub severity: Severity,
    /// Graph requests made (a batch counts once).
    pub requests: usize,
    /// Most urgent first.
    pub tokens: Vec<CheckedView>,
}

/// Inspect tokens now with `debug_token`, update the inventory, and report by urgency.
#[utoipa::path(post, path = "/api/v1/checks", operation_id = "run_check", tag = "lifecycle", security(("bearer" = [])),
    request_body(content = CheckRequest, description = "Which tokens; `{}` for all"),
    responses(
        (status = 200, body = CheckResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<CheckResult>, ApiError> {
    caller.require(Role::Operator)?;
    let request: CheckRequest = crate::handler::json_or_default(&headers, &body)?;
    let selection = if request.aliases.is_empty() {
        Selection::default()
    } else {
        Selection::Aliases(
            request
                .aliases
                .iter()
                .map(|a| alias(a))
                .collect::<Result<_, _>>()?,
        )
    };
    let report = state
        .checker()
        .check(selection, &caller.actor(), &|_, _| {})
        .await
        .map_err(|e| match e {
            graphwarden_lifecycle::check::CheckError::Store(s) => ApiError::from(s),
        })?;
    state.tokens_changed();
    Ok(Json(CheckResult {
        severity: report.severity(),
        requests: report.requests,
        tokens: report.tokens.into_iter().map(CheckedView::from).collect(),
    }))
}
