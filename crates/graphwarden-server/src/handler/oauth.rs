//! The browser version of `graphwarden login`, so an alert can carry a reconnect link that a
//! token's owner, who has no API key, can click: `/oauth/start/{app_id}` checks the link's
//! signature and expiry and sends the browser to Meta's login dialog with a fresh `state`;
//! `/oauth/callback` checks that `state`, exchanges the code (same `redirect_uri`), exchanges
//! again for a long-lived token, and stores it in place of the dead one.
//!
//! Links are made by [`relogin_link`] (and `POST /api/v1/tokens/{alias}/relogin-link`): signed
//! with the installation's own key, valid for `link_ttl`, and bound to one app and alias, so a
//! stranger cannot start a login that replaces someone's token. A login also never replaces a
//! token with one of another Meta user.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use graphwarden_core::{AppId, TokenAlias};
use http::{HeaderValue, StatusCode};
use jiff::Timestamp;
use rand::RngCore as _;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::handler::meta::base_url;
use crate::state::{AppState, PendingLogin};

fn link_message(app_id: &str, alias: &str, expires: i64) -> String {
    format!("relogin\n{app_id}\n{alias}\n{expires}")
}

/// A signed link that lets whoever holds it log in again for `alias` until it expires.
pub fn relogin_link(
    state: &AppState,
    base: &str,
    app_id: &AppId,
    alias: &TokenAlias,
) -> Result<(String, Timestamp), ApiError> {
    let ttl = jiff::SignedDuration::try_from(state.config().link_ttl)
        .unwrap_or(jiff::SignedDuration::from_hours(24 * 7));
    Ok(signed_relogin_link(
        state.inventory(),
        state.clock().now(),
        ttl,
        base,
        app_id,
        alias,
    )?)
}

/// [`relogin_link`] from its parts, for the alert engine, which has no request.
pub(crate) fn signed_relogin_link(
    inventory: &graphwarden_store::Inventory,
    now: Timestamp,
    ttl: jiff::SignedDuration,
    base: &str,
    app_id: &AppId,
    alias: &TokenAlias,
) -> Result<(String, Timestamp), graphwarden_store::StoreError> {
    let expires = now.checked_add(ttl).unwrap_or(Timestamp::MAX);
    let secs = expires.as_second();
    let sig = inventory.sign_link(&link_message(app_id.as_str(), alias.as_str(), secs))?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("alias", alias.as_str())
        .append_pair("expires", &secs.to_string())
        .append_pair("sig", &sig);
    Ok((
        format!(
            "{}/oauth/start/{app_id}?{}",
            base.trim_end_matches('/'),
            query.finish()
        ),
        expires,
    ))
}

/// A small page for people, without script, with every text escaped.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · graphwarden</title></head>\
         <body><main><h1>{}</h1><p>{}</p></main></body></html>",
        escape(title),
        escape(title),
        escape(body)
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StartQuery {
    /// The token to replace.
    pub alias: String,
    /// Unix seconds after which the link no longer works.
    pub expires: i64,
    /// The installation's signature over the app, alias and expiry.
    pub sig: String,
}

/// Start a browser login from a signed re-login link: redirects to Meta's login dialog.
#[utoipa::path(get, path = "/oauth/start/{app_id}", operation_id = "oauth_start", tag = "meta",
    params(("app_id" = String, Path, description = "The Meta app"), StartQuery),
    responses(
        (status = 303, description = "To Meta's login dialog"),
        (status = 400, description = "A link that is malformed, expired or not signed here", content_type = "text/html", body = String),
    ))]
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    Query(q): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let refuse = |why: &str| page(StatusCode::BAD_REQUEST, "This link does not work", why);
    let (Ok(app_id), Ok(alias)) = (AppId::parse(&app_id), TokenAlias::parse(&q.alias)) else {
        return Ok(refuse("The link is malformed. Ask for a new one."));
    };
    let signed = state.inventory().verify_link(
        &link_message(app_id.as_str(), alias.as_str(), q.expires),
        &q.sig,
    )?;
    if !signed {
        tracing::warn!(app = %app_id, alias = %alias, "A re-login link with a bad signature was refused.");
        return Ok(refuse(
            "The link was not made by this graphwarden. Ask for a new one.",
        ));
    }
    if state.clock().now().as_second() > q.expires {
        return Ok(refuse("The link has expired. Ask for a new one."));
    }
    // Ask for what the token had, so the new one can do the same work.
    let scopes = match state.inventory().token(&alias).await {
        Ok(t) => t.scopes.unwrap_or_default(),
        Err(graphwarden_store::StoreError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let login_state: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let redirect_uri = format!("{}/oauth/callback", base_url(&state, &headers));
    let config = state.graph().config();
    let url = graphwarden_lifecycle::login::dialog_url(
        &config.base_url,
        &config.version,
        app_id.as_str(),
        &redirect_uri,
        &login_state,
        &scopes,
    );
    state.start_login(
        login_state,
        PendingLogin {
            app_id,
            alias: Some(alias),
            redirect_uri,
            started: state.clock().now(),
        },
    );
    Ok(Redirect::to(&url).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub state: Option<String>,
    pub code: Option<String>,
    /// Set by Meta when the person cancelled or the app refused.
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where Meta's login dialog returns: stores the new long-lived token.
#[utoipa::path(get, path = "/oauth/callback", operation_id = "oauth_callback", tag = "meta",
    params(CallbackQuery),
    responses(
        (status = 200, description = "The token was stored", content_type = "text/html", body = String),
        (status = 400, description = "Unknown or used state, a cancelled login, or Meta refused", content_type = "text/html", body = String),
    ))]
pub async fn callback(
    State(state): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let Some(login) = q.state.as_deref().and_then(|s| state.take_login(s)) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "This login is not known",
            "It was already used, it expired, or it did not start here. Open the re-login link again.",
        ));
    };
    if let Some(error) = &q.error {
        let why = q.error_description.as_deref().unwrap_or(error);
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "The login did not finish",
            &format!("Meta said: {why}. Nothing was changed; open the link again to retry."),
        ));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() < 4096) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            "The login did not finish",
            "Meta sent no code.",
        ));
    };
    let alias_text = login
        .alias
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let outcome = graphwarden_lifecycle::login::complete(
        state.inventory(),
        state.graph(),
        state.renewer(),
        &login.app_id,
        &SecretString::from(code),
        &login.redirect_uri,
        login.alias.as_ref(),
        state.clock().now(),
        state.checker().policy().warning_window,
        &format!("oauth:{alias_text}"),
    )
    .await;
    match outcome {
        Ok(done) => {
            state.tokens_changed();
            tracing::info!(alias = %done.alias, outcome = done.outcome, "A browser login {} `{}`.", done.outcome, done.alias);
            Ok(page(
                StatusCode::OK,
                "Connected again",
                &format!(
                    "The token `{}` was {} ({}). Its status is {}. You can close this page.",
                    done.alias, done.outcome, done.detail, done.status
                ),
            ))
        }
        Err(e) => {
            tracing::warn!(alias = %alias_text, "A browser login failed: {e}");
            Ok(page(
                StatusCode::BAD_REQUEST,
                "The token was not stored",
                &format!("{e}. Nothing was changed."),
            ))
        }
    }
}
