//! `/api/v1/tokens`: the inventory's tokens (never their secrets), their events, and the one
//! audited way for an application to fetch the current secret of its own tokens.

use axum::Json;
use axum::extract::{Path, Query, State};
use graphwarden_core::{AppId, Role, Tag, TokenAlias, TokenKind, TokenStatus};
use graphwarden_store::{Expiry, TokenFilter};
use jiff::Timestamp;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::handler::{EventView, Limit};
use crate::state::AppState;

/// A token as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub alias: String,
    /// `user`, `page`, `app` or `system_user`.
    pub kind: String,
    pub app_id: String,
    /// A recognisable, non-secret hint such as `EAAB…x7Qz`.
    pub hint: String,
    /// One of `valid`, `expiring`, `expired`, `password_changed`, `deauthorized`, `revoked`,
    /// `checkpoint`, `role_lost`, `invalid`, `app_secret_reset`, `data_access_expired`,
    /// `needs_relogin`, `needs_attention`, `unknown`.
    pub status: String,
    pub cause: String,
    /// What a person should do about the status.
    pub action: String,
    /// `null` when it never expires or has not been inspected (see `expires`).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// `at`, `never` or `unknown` (not inspected yet).
    pub expires: &'static str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub data_access_expires_at: Option<Timestamp>,
    pub scopes: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub granular_scopes: Option<Vec<graphwarden_store::GranularScope>>,
    pub scopes_needed: Vec<String>,
    pub meta_user_id: Option<String>,
    pub page_id: Option<String>,
    pub business_id: Option<String>,
    /// The token this one was derived from.
    pub parent: Option<String>,
    pub owner: String,
    pub requested_by: String,
    pub purpose: String,
    pub tags: Vec<String>,
    /// Discrepancies inspection found (app, user or kind differ from what is recorded).
    pub flags: Vec<String>,
    pub renewal_failures: i64,
    /// Since when a renewed secret waits to be proven, if one does.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub renewal_pending_since: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_checked_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<graphwarden_store::Token> for TokenView {
    fn from(t: graphwarden_store::Token) -> Self {
        let (expires, expires_at) = match t.expires {
            Expiry::At(at) => ("at", Some(at)),
            Expiry::Never => ("never", None),
            Expiry::Unknown => ("unknown", None),
        };
        Self {
            alias: t.alias.to_string(),
            kind: t.kind.as_str().to_owned(),
            app_id: t.app_id.to_string(),
            hint: t.hint,
            status: t.status.as_str().to_owned(),
            cause: t.status_cause,
            action: t.status.action().to_owned(),
            expires_at,
            expires,
            data_access_expires_at: t.data_access_expires_at,
            scopes: t.scopes,
            granular_scopes: t.granular_scopes,
            scopes_needed: t.scopes_needed.iter().map(ToString::to_string).collect(),
            meta_user_id: t.meta_user_id.map(|i| i.to_string()),
            page_id: t.page_id.map(|i| i.to_string()),
            business_id: t.business_id.map(|i| i.to_string()),
            parent: t.parent_alias.map(|a| a.to_string()),
            owner: t.owner,
            requested_by: t.requested_by,
            purpose: t.purpose,
            tags: t.tags.iter().map(ToString::to_string).collect(),
            flags: t.flags,
            renewal_failures: t.renewal_failures,
            renewal_pending_since: t.pending_since,
            last_checked_at: t.last_checked_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Filters of the token list; all optional, combined with AND.
#[derive(Debug, Deserialize, IntoParams)]
pub struct TokenQuery {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub app_id: Option<String>,
    pub tag: Option<String>,
    /// Only tokens with a known expiry within this long (`7d`, `36h`).
    pub expiring_within: Option<String>,
}

impl TokenQuery {
    fn filter(&self) -> Result<TokenFilter, ApiError> {
        let bad = |e: &dyn std::fmt::Display| ApiError::invalid(e.to_string());
        Ok(TokenFilter {
            status: self
                .status
                .as_deref()
                .map(|s| s.parse::<TokenStatus>().map_err(|e| bad(&e)))
                .transpose()?,
            kind: self
                .kind
                .as_deref()
                .map(|s| s.parse::<TokenKind>().map_err(|e| bad(&e)))
                .transpose()?,
            app_id: self
                .app_id
                .as_deref()
                .map(|s| AppId::parse(s).map_err(|e| bad(&e)))
                .transpose()?,
            expiring_within: self
                .expiring_within
                .as_deref()
                .map(|s| graphwarden_core::duration::parse_duration(s).map_err(|e| bad(&e)))
                .transpose()?,
            tag: self
                .tag
                .as_deref()
                .map(|s| Tag::parse(s).map_err(|e| bad(&e)))
                .transpose()?,
        })
    }
}

pub(crate) fn alias(text: &str) -> Result<TokenAlias, ApiError> {
    TokenAlias::parse(text).map_err(|e| ApiError::invalid(e.to_string()))
}

/// The tokens, filtered, ordered by alias.
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "list_tokens", tag = "tokens", security(("bearer" = [])),
    params(TokenQuery),
    responses(
        (status = 200, body = Vec<TokenView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<TokenQuery>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require(Role::Reader)?;
    let tokens = state.inventory().tokens(&query.filter()?).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// One token.
#[utoipa::path(get, path = "/api/v1/tokens/{alias}", operation_id = "get_token", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias")),
    responses(
        (status = 200, body = TokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(a): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(Role::Reader)?;
    Ok(Json(state.inventory().token(&alias(&a)?).await?.into()))
}

/// Remove a token from the inventory (it is not revoked at Meta).
#[utoipa::path(delete, path = "/api/v1/tokens/{alias}", operation_id = "delete_token", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias")),
    responses(
        (status = 200, description = "The token as it was", body = TokenView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(a): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    caller.require(Role::Admin)?;
    let removed = state
        .inventory()
        .remove_token(&alias(&a)?, &caller.actor())
        .await?;
    state.tokens_changed();
    Ok(Json(removed.into()))
}

/// A token's events, oldest first.
#[utoipa::path(get, path = "/api/v1/tokens/{alias}/events", operation_id = "token_events", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias")),
    responses(
        (status = 200, body = Vec<EventView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(a): Path<String>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    caller.require(Role::Reader)?;
    let events = state.inventory().token_events(&alias(&a)?).await?;
    Ok(Json(events.into_iter().map(EventView::from).collect()))
}

/// The most recent events of the whole inventory, newest first.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "recent_events", tag = "tokens", security(("bearer" = [])),
    params(Limit),
    responses(
        (status = 200, body = Vec<EventView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn recent_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<EventView>>, ApiError> {
    caller.require(Role::Reader)?;
    let events = state.inventory().recent_events(limit.get()).await?;
    Ok(Json(events.into_iter().map(EventView::from).collect()))
}

/// The current secret of a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub alias: String,
    /// The access token itself.
    pub access_token: String,
    pub status: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// The current secret of a token, for the application that uses it: a consumer key naming the
/// alias (or an admin key). Every fetch is recorded as a `token.revealed` event. Applications
/// that fetch their token here, rather than keeping a copy, always have the renewed one.
#[utoipa::path(get, path = "/api/v1/tokens/{alias}/secret", operation_id = "fetch_token_secret", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias")),
    responses(
        (status = 200, body = SecretView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(a): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    let alias = alias(&a)?;
    caller.require_secret_of(&alias)?;
    let inventory = state.inventory();
    let token = inventory.token(&alias).await?;
    let secret = inventory
        .reveal_token(&alias, &caller.actor(), "fetched through the API")
        .await?;
    Ok(Json(SecretView {
        alias: alias.to_string(),
        access_token: secret.expose_secret().to_owned(),
        status: token.status.as_str().to_owned(),
        expires_at: match token.expires {
            Expiry::At(at) => Some(at),
            _ => None,
        },
    }))
}

/// A re-login link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloginLink {
    /// Open in a browser, log in to Meta as the token's user: the token is replaced.
    pub url: String,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// Make a signed re-login link for a token renewal cannot save: whoever opens it before it
/// expires can log in (as the token's own Meta user) and replace the token, without a key.
#[utoipa::path(post, path = "/api/v1/tokens/{alias}/relogin-link", operation_id = "make_relogin_link", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias")),
    responses(
        (status = 200, body = ReloginLink),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn relogin_link(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    caller: Caller,
    Path(a): Path<String>,
) -> Result<Json<ReloginLink>, ApiError> {
    caller.require(Role::Operator)?;
    let token = state.inventory().token(&alias(&a)?).await?;
    let base = crate::handler::meta::base_url(&state, &headers);
    let (url, expires_at) =
        crate::handler::oauth::relogin_link(&state, &base, &token.app_id, &token.alias)?;
    tracing::info!(alias = %token.alias, actor = %caller.actor(), "A re-login link for `{}` was made.", token.alias);
    Ok(Json(ReloginLink { url, expires_at }))
}

/// A token that would die with a revoked one, or did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DependentView {
    pub alias: String,
    pub kind: String,
    pub status: String,
}

/// What revoking a token breaks, and whether it was revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationView {
    pub alias: String,
    /// False for a dry run.
    pub revoked: bool,
    /// Its status now (after revocation, Meta's answer to the inspection that followed).
    pub status: String,
    /// Tokens derived from it, at any depth: they die with it.
    pub derived: Vec<DependentView>,
    /// Live consumer keys that may fetch it or a token derived from it.
    pub consumers: Vec<String>,
    /// Its calls through the proxy among the records kept.
    pub recent_calls: usize,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_call_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RevokeQuery {
    /// Only say what would break.
    #[serde(default)]
    pub dry_run: bool,
}

fn dependent_view(t: &graphwarden_store::Token) -> DependentView {
    DependentView {
        alias: t.alias.to_string(),
        kind: t.kind.as_str().to_owned(),
        status: t.status.as_str().to_owned(),
    }
}

/// Revoke a token through Meta (`/oauth/revoke`) and mark it and the tokens derived from it
/// from Meta's answer; with `dry_run`, only say what that would break. Page tokens (no
/// revocation of their own) and app tokens (they live as long as the app secret) get 409.
#[utoipa::path(post, path = "/api/v1/tokens/{alias}/revoke", operation_id = "revoke_token", tag = "tokens", security(("bearer" = [])),
    params(("alias" = String, Path, description = "The token's alias"), RevokeQuery),
    responses(
        (status = 200, body = RevocationView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A Page or app token", body = ErrorBody),
        (status = 502, description = "Meta did not revoke it", body = ErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(a): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<Json<RevocationView>, ApiError> {
    use graphwarden_lifecycle::revoke::{self as rv, RevokeError};
    caller.require(Role::Admin)?;
    let alias = alias(&a)?;
    let inventory = state.inventory();
    let token = inventory.token(&alias).await?;
    let deps = rv::dependents(inventory, &token).await?;
    let mut derived: Vec<DependentView> = deps.derived.iter().map(dependent_view).collect();
    let mut status = token.status.as_str().to_owned();
    if !q.dry_run {
        rv::revoke(
            inventory,
            state.graph(),
            state.checker(),
            &token,
            &caller.actor(),
        )
        .await
        .map_err(|e| match e {
            RevokeError::PageToken { .. } | RevokeError::AppToken(_) => {
                ApiError::conflict(e.to_string())
            }
            RevokeError::Store(s) => s.into(),
            other => ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "meta_refused",
                other.to_string(),
            ),
        })?;
        state.tokens_changed();
        status = inventory.token(&alias).await?.status.as_str().to_owned();
        derived = rv::derived(inventory, &token)
            .await?
            .iter()
            .map(dependent_view)
            .collect();
    }
    Ok(Json(RevocationView {
        alias: alias.to_string(),
        revoked: !q.dry_run,
        status,
        derived,
        consumers: deps.consumers,
        recent_calls: deps.recent_calls,
        last_call_at: deps
            .last_call_at_ms
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
    }))
}
