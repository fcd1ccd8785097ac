//! The Graph API routes: tokens and OAuth (§2–§4), users, pages, permissions (§6), and the
//! dispatch to the Marketing subset in `marketing.rs`. Each handler names the reference section
//! its shapes come from.

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::marketing;
use crate::paging;
use crate::sim::{
    AuthCode, Body, Caller, SimRequest, SimResponse, State, authenticate, check_proof, resolve,
    token_problem,
};
use crate::world::{
    Authorization, Invalidation, LONG_LIVED_SECS, SHORT_LIVED_SECS, SIXTY_DAYS_SECS, Token,
    TokenKind, mint_token,
};

/// Per-call context.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub now_ms: i64,
    pub now_secs: i64,
    pub base_url: &'a str,
    /// The version served (the requested one, or the world's default).
    pub version: String,
    /// The app the call was charged to, for the call log.
    pub charged_app: Option<String>,
}

pub type Outcome = Result<SimResponse, GraphError>;

pub fn ok(body: Value, headers: Vec<(String, String)>) -> Outcome {
    Ok(SimResponse {
        status: 200,
        body: Body::Json(body),
        headers,
    })
}

/// Charge a call to the platform window of `app_id` (§8.1).
pub fn charge_app(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    app_id: &str,
) -> Result<Vec<(String, String)>, GraphError> {
    ctx.charged_app = Some(app_id.to_owned());
    let dau = st.world.app(app_id).map_or(1, |a| a.daily_active_users);
    st.usage.charge_app(app_id, dau, ctx.now_ms)
}

/// Authenticate and charge the caller's app: the common start of a Graph call.
pub fn caller(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
) -> Result<(Caller, Vec<(String, String)>), GraphError> {
    let caller = authenticate(st, req, ctx.now_secs)?;
    // Page tokens are charged to the Page's `pages` business-use-case window (§8.3).
    let headers = match (&caller.kind, &caller.page_id) {
        (TokenKind::Page, Some(page_id)) => {
            ctx.charged_app = Some(caller.app_id.clone());
            let engaged = st.world.page(page_id).map_or(10, |p| p.engaged_users);
            st.usage.charge_page(page_id, engaged, ctx.now_ms)?
        }
        _ => charge_app(st, ctx, &caller.app_id)?,
    };
    Ok((caller, headers))
}

fn with_headers(mut err: GraphError, headers: Vec<(String, String)>) -> GraphError {
    if err.headers.is_empty() {
        err.headers = headers;
    }
    err
}

fn random_string(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Route one Graph call (batch and control calls are handled before this).
pub fn route(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let segments: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method.as_str();
    match (method, segments.as_slice()) {
        ("GET", ["debug_token"]) => debug_token(st, ctx, req),
        ("GET" | "POST", ["oauth", "access_token"]) => access_token(st, ctx, req),
        ("GET" | "POST", ["oauth", "revoke"]) => revoke(st, ctx, req),
        ("GET", ["dialog", "oauth"]) => dialog(st, ctx, req),
        ("GET", ["dataset_quality"]) => marketing::dataset_quality(st, ctx, req),
        (_, [_, "dataset_quality"]) => Err(GraphError::unknown_path("dataset_quality")),
        ("GET", ["me"]) => me(st, ctx, req),
        ("GET", [id, "accounts"]) => accounts(st, ctx, req, id),
        ("GET", [id, "permissions"]) => permissions(st, ctx, req, id, None),
        ("GET", [id, "permissions", permission]) => permissions(st, ctx, req, id, Some(permission)),
        ("DELETE", [id, "permissions"]) => delete_permissions(st, ctx, req, id, None),
        ("DELETE", [id, "permissions", permission]) => {
            delete_permissions(st, ctx, req, id, Some(permission))
        }
        ("POST", [id, "access_tokens"]) => system_user_token(st, ctx, req, id),
        ("POST", [id, "applications"]) => install_app(st, ctx, req, id),
        (_, [id, ..]) if id.starts_with("act_") => {
            marketing::ad_account_route(st, ctx, req, &segments)
        }
        ("GET", [id, "owned_ad_accounts"]) => marketing::owned_ad_accounts(st, ctx, req, id),
        ("GET", [id]) => object(st, ctx, req, id),
        ("POST", [id]) => marketing::update_object(st, ctx, req, id),
        _ => {
            // Unknown routes still need a valid token first, as on Graph.
            let (_, headers) = caller(st, ctx, req)?;
            Err(with_headers(
                GraphError::unsupported_request(method, &req.path),
                headers,
            ))
        }
    }
}

// ----- §2 debug_token -----

fn debug_token(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let inspector_token = req
        .access_token()
        .ok_or_else(GraphError::inspector_not_allowed)?;
    let inspector = resolve(st, inspector_token, ctx.now_secs)?;
    check_proof(st, req, &inspector, ctx.now_secs)?;
    let headers = charge_app(st, ctx, &inspector.app_id)?;
    let input = req.param("input_token").ok_or_else(|| {
        with_headers(
            GraphError::invalid_parameter("The parameter input_token is required"),
            headers.clone(),
        )
    })?;

    let garbage = |message: &str| json!({ "data": { "error": { "code": 190, "message": message }, "is_valid": false, "scopes": [] } });
    // The inspected token: known, or a literal app token, or garbage (§2.3).
    let Some(index) = st.token_index(input) else {
        if let Some((app_id, secret)) = input.split_once('|') {
            let body = match st.world.app(app_id) {
                None => garbage(
                    "Error validating application. Cannot get application info due to a system error.",
                ),
                Some(app) if app.secret != secret => {
                    garbage("Invalid OAuth access token signature.")
                }
                Some(app) => {
                    if app.id != inspector.app_id {
                        return Err(with_headers(mismatched_app(), headers));
                    }
                    json!({ "data": { "app_id": app.id, "type": "APP", "application": app.name, "is_valid": true, "scopes": [] } })
                }
            };
            return ok(body, headers);
        }
        return ok(
            garbage("Invalid OAuth access token - Cannot parse access token"),
            headers,
        );
    };
    let token = &st.world.tokens[index];
    // §2.1: an app token of the same app, an admin's or developer's token, or the token itself.
    let allowed = match inspector.kind {
        TokenKind::App => true,
        _ => {
            inspector.token == input
                || inspector.user_id.as_ref().is_some_and(|u| {
                    st.world
                        .app(&token.app_id)
                        .is_some_and(|a| a.admins.contains(u))
                })
        }
    };
    if !allowed {
        return Err(with_headers(GraphError::inspector_not_allowed(), headers));
    }
    if token.app_id != inspector.app_id {
        return Err(with_headers(mismatched_app(), headers));
    }
    ok(
        json!({ "data": debug_payload(st, token, ctx.now_secs) }),
        headers,
    )
}

fn mismatched_app() -> GraphError {
    GraphError::invalid_parameter("The App_id in the input_token did not match the Viewing App")
}

/// The `data` object for a known token (§2.2, §2.3).
pub fn debug_payload(st: &State, token: &Token, now_secs: i64) -> Value {
    let app_name = st
        .world
        .app(&token.app_id)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let mut data = serde_json::Map::new();
    data.insert("app_id".into(), json!(token.app_id));
    data.insert("type".into(), json!(token.kind.debug_type()));
    data.insert("application".into(), json!(app_name));
    let problem = token_problem(&st.world, token, now_secs);
    if token.kind != TokenKind::App {
        if let Some(d) = token.data_access_expires_at {
            data.insert("data_access_expires_at".into(), json!(d));
        }
        data.insert("expires_at".into(), json!(token.expires_at));
        if token.long_lived {
            data.insert("issued_at".into(), json!(token.issued_at));
        } else if problem.is_none() {
            data.insert("metadata".into(), json!({ "auth_type": "rerequest" }));
        }
    }
    data.insert("is_valid".into(), json!(problem.is_none()));
    let revoked = token.invalidated == Some(Invalidation::Revoked);
    data.insert(
        "scopes".into(),
        if revoked {
            json!([])
        } else {
            json!(token.scopes)
        },
    );
    if !token.granular_scopes.is_empty() && !revoked {
        data.insert("granular_scopes".into(), json!(token.granular_scopes));
    }
    match token.kind {
        TokenKind::User => {
            if let Some(u) = &token.user_id {
                data.insert("user_id".into(), json!(u));
            }
        }
        TokenKind::Page => {
            if let Some(u) = &token.user_id {
                data.insert("user_id".into(), json!(u));
            }
            if let Some(p) = &token.page_id {
                data.insert("profile_id".into(), json!(p));
            }
        }
        TokenKind::SystemUser => {
            if let Some(s) = &token.system_user_id {
                data.insert("user_id".into(), json!(s));
            }
        }
        TokenKind::App => {}
    }
    if let Some(problem) = problem {
        let mut error = json!({ "code": 190, "message": problem.message });
        if let Some(sub) = problem.subcode {
            error["subcode"] = json!(sub);
        }
        data.insert("error".into(), error);
    }
    Value::Object(data)
}

// ----- §3 OAuth -----

/// Check `client_id` and `client_secret`; the app id on success.
fn client(st: &State, req: &SimRequest) -> Result<String, GraphError> {
    let id = req
        .param("client_id")
        .ok_or_else(|| GraphError::invalid_parameter("Missing client_id parameter."))?;
    let app = st.world.app(id).ok_or_else(|| {
        GraphError::new(
            400,
            101,
            "OAuthException",
            "Error validating application. Invalid application ID.",
        )
    })?;
    match req.param("client_secret") {
        Some(secret) if secret == app.secret => Ok(app.id.clone()),
        Some(_) => Err(GraphError::new(
            400,
            1,
            "OAuthException",
            "Error validating client secret.",
        )),
        None => Err(GraphError::invalid_parameter(
            "Missing client_secret parameter.",
        )),
    }
}

fn token_reply(token: &Token, now_secs: i64) -> Value {
    let mut body = json!({ "access_token": token.token, "token_type": "bearer" });
    if token.expires_at != 0 {
        body["expires_in"] = json!(token.expires_at - now_secs);
    }
    body
}

fn access_token(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let app_id = client(st, req)?;
    let headers = charge_app(st, ctx, &app_id)?;
    let result = match (req.param("grant_type"), req.param("code")) {
        (Some("fb_exchange_token"), _) => exchange(st, ctx, req, &app_id),
        (Some("client_credentials"), _) => {
            // §3.3: an app token; the simulator mints `app_id|random` rather than echo the secret.
            let token = Token {
                token: format!("{app_id}|{}", random_string(27)),
                label: "client_credentials".into(),
                kind: TokenKind::App,
                app_id: app_id.clone(),
                issued_at: ctx.now_secs,
                long_lived: true,
                ..Token::default()
            };
            let body = json!({ "access_token": token.token, "token_type": "bearer" });
            st.add_token(token);
            Ok(body)
        }
        (None, Some(code)) => code_exchange(st, ctx, req, &app_id, code),
        (Some(other), _) => Err(GraphError::invalid_parameter(format!(
            "Unsupported grant_type: {other}"
        ))),
        (None, None) => Err(GraphError::invalid_parameter(
            "Missing grant_type or code parameter.",
        )),
    };
    match result {
        Ok(body) => ok(body, headers),
        Err(e) => Err(with_headers(e, headers)),
    }
}

/// §3.1 and §4: a new string every time; expired tokens cannot be exchanged.
fn exchange(
    st: &mut State,
    ctx: &Ctx<'_>,
    req: &SimRequest,
    app_id: &str,
) -> Result<Value, GraphError> {
    let old = req
        .param("fb_exchange_token")
        .ok_or_else(|| GraphError::invalid_parameter("Missing fb_exchange_token parameter."))?;
    let caller = resolve(st, old, ctx.now_secs)?;
    let Some(index) = caller.token_index else {
        return Err(GraphError::invalid_parameter(
            "An app token cannot be exchanged.",
        ));
    };
    if caller.app_id != app_id {
        return Err(GraphError::new(
            400,
            190,
            "OAuthException",
            "Error validating access token: The token was not issued to this application.",
        ));
    }
    let old_token = st.world.tokens[index].clone();
    let sixty_days = req.param("set_token_expires_in_60_days") == Some("true");
    let expires_at = match old_token.kind {
        TokenKind::User => ctx.now_secs + LONG_LIVED_SECS,
        TokenKind::SystemUser if sixty_days => ctx.now_secs + SIXTY_DAYS_SECS,
        TokenKind::SystemUser => old_token.expires_at,
        TokenKind::Page | TokenKind::App => {
            return Err(GraphError::invalid_parameter(
                "Only user and system-user tokens can be exchanged.",
            ));
        }
    };
    let new = Token {
        token: mint_token(),
        label: format!("{} (exchanged)", old_token.label),
        issued_at: ctx.now_secs,
        expires_at,
        long_lived: true,
        parent: Some(old_token.token.clone()),
        invalidated: None,
        ..old_token
    };
    let body = token_reply(&new, ctx.now_secs);
    st.add_token(new);
    Ok(body)
}

/// §3.2: single-use codes, `redirect_uri` byte-identical to the dialog's.
fn code_exchange(
    st: &mut State,
    ctx: &Ctx<'_>,
    req: &SimRequest,
    app_id: &str,
    code: &str,
) -> Result<Value, GraphError> {
    let redirect = req
        .params
        .get("redirect_uri")
        .map(String::as_str)
        .unwrap_or("");
    let Some(entry) = st.codes.get_mut(code) else {
        return Err(
            GraphError::invalid_parameter("Invalid verification code format.").with_subcode(36_007),
        );
    };
    if entry.used {
        return Err(
            GraphError::invalid_parameter("This authorization code has been used.")
                .with_subcode(36_009),
        );
    }
    if entry.app_id != app_id {
        return Err(
            GraphError::invalid_parameter("Invalid verification code format.").with_subcode(36_007),
        );
    }
    if entry.redirect_uri != redirect {
        return Err(GraphError::invalid_parameter(
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        )
        .with_subcode(36_008));
    }
    if ctx.now_ms > entry.expires_at_ms {
        return Err(
            GraphError::invalid_parameter("This authorization code has expired.")
                .with_subcode(36_007),
        );
    }
    entry.used = true;
    let entry = entry.clone();
    let token = Token {
        token: mint_token(),
        label: "login".into(),
        kind: TokenKind::User,
        app_id: app_id.to_owned(),
        user_id: Some(entry.user_id.clone()),
        issued_at: ctx.now_secs,
        expires_at: ctx.now_secs + SHORT_LIVED_SECS,
        data_access_expires_at: Some(ctx.now_secs + crate::world::DATA_ACCESS_SECS),
        long_lived: false,
        scopes: entry.scopes.clone(),
        ..Token::default()
    };
    let body = token_reply(&token, ctx.now_secs);
    st.add_token(token);
    Ok(body)
}

/// §4 Revoke: `{"success":"true"}` (a string, as the doc sample shows).
fn revoke(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let app_id = client(st, req)?;
    let headers = charge_app(st, ctx, &app_id)?;
    let caller =
        authenticate(st, req, ctx.now_secs).map_err(|e| with_headers(e, headers.clone()))?;
    if caller.app_id != app_id {
        return Err(with_headers(
            GraphError::invalid_parameter(
                "The access_token and client_id belong to different apps",
            ),
            headers,
        ));
    }
    let target = req.param("revoke_token").ok_or_else(|| {
        with_headers(
            GraphError::invalid_parameter("Missing revoke_token parameter."),
            headers.clone(),
        )
    })?;
    let Some(index) = st.token_index(target) else {
        return Err(with_headers(GraphError::cannot_parse_token(), headers));
    };
    if st.world.tokens[index].app_id != app_id {
        return Err(with_headers(
            GraphError::invalid_parameter("The revoke_token was not issued to this application"),
            headers,
        ));
    }
    st.world.tokens[index].invalidated = Some(Invalidation::Revoked);
    ok(json!({ "success": "true" }), headers)
}

/// §3.2 Login dialog: approves (or cancels) at once and redirects with `code` and `state`.
fn dialog(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let html_error = |message: &str| SimResponse {
        status: 400,
        body: Body::Html(format!(
            "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Sorry, something went wrong.</h1><p>{message}</p></body></html>"
        )),
        headers: Vec::new(),
    };
    let Some(app) = req
        .param("client_id")
        .and_then(|id| st.world.app(id))
        .cloned()
    else {
        return Ok(html_error(
            "Invalid App ID: the client_id parameter does not name an app.",
        ));
    };
    let Some(redirect_uri) = req.param("redirect_uri") else {
        return Ok(html_error("The redirect_uri parameter is missing."));
    };
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Ok(html_error(
            "URL blocked: This redirect failed because the redirect URI is not whitelisted in the app's Client OAuth Settings. Make sure Client and Web OAuth Login are on and add all your app domains as Valid OAuth Redirect URIs.",
        ));
    }
    ctx.charged_app = Some(app.id.clone());
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let state = req.param("state").unwrap_or("");
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !st.world.dialog_approves {
        query
            .append_pair("error", "access_denied")
            .append_pair("error_code", "200")
            .append_pair("error_description", "Permissions error")
            .append_pair("error_reason", "user_denied")
            .append_pair("state", state);
        return Ok(SimResponse {
            status: 302,
            body: Body::Redirect(format!("{redirect_uri}{separator}{}#_=_", query.finish())),
            headers: Vec::new(),
        });
    }
    let user_id = st
        .world
        .dialog_user
        .clone()
        .or_else(|| st.world.users.first().map(|u| u.id.clone()))
        .unwrap_or_default();
    let scopes: Vec<String> = req
        .param("scope")
        .unwrap_or("public_profile")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    // Logging in grants what was asked and (re)authorises the app.
    if let Some(user) = st.world.user_mut(&user_id) {
        match user.apps.iter_mut().find(|a| a.app_id == app.id) {
            Some(auth) => {
                for s in &scopes {
                    if !auth.granted.contains(s) {
                        auth.granted.push(s.clone());
                    }
                    auth.declined.retain(|d| d != s);
                    auth.expired.retain(|d| d != s);
                }
            }
            None => user.apps.push(Authorization {
                app_id: app.id.clone(),
                granted: scopes.clone(),
                ..Authorization::default()
            }),
        }
        user.checkpointed = false;
    }
    let code = random_string(220);
    st.codes.insert(
        code.clone(),
        AuthCode {
            app_id: app.id.clone(),
            user_id,
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            used: false,
            expires_at_ms: ctx.now_ms + 10 * 60_000,
        },
    );
    query.append_pair("code", &code).append_pair("state", state);
    Ok(SimResponse {
        status: 302,
        body: Body::Redirect(format!("{redirect_uri}{separator}{}#_=_", query.finish())),
        headers: Vec::new(),
    })
}

// ----- users, pages, objects -----

fn me(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest) -> Outcome {
    let (caller, headers) = caller(st, ctx, req)?;
    let (id, name) = match caller.kind {
        TokenKind::User => {
            let id = caller.user_id.clone().unwrap_or_default();
            let name = st
                .world
                .user(&id)
                .map(|u| u.name.clone())
                .unwrap_or_default();
            (id, name)
        }
        TokenKind::Page => {
            let id = caller.page_id.clone().unwrap_or_default();
            let name = st
                .world
                .page(&id)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            (id, name)
        }
        TokenKind::SystemUser => {
            let id = caller.system_user_id.clone().unwrap_or_default();
            let name = st
                .world
                .system_user(&id)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            (id, name)
        }
        TokenKind::App => {
            return Err(with_headers(
                GraphError::new(
                    400,
                    2500,
                    "OAuthException",
                    "An active access token must be used to query information about the current user.",
                ),
                headers,
            ));
        }
    };
    ok(
        select_fields(json!({ "id": id, "name": name }), req),
        headers,
    )
}

/// Keep only the requested `fields` (plus `id`); unknown fields are ignored.
fn select_fields(value: Value, req: &SimRequest) -> Value {
    let Some(fields) = req.param("fields") else {
        return value;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k == "id" || wanted.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

/// The user id a path segment names: `me` is the caller.
fn user_segment(caller: &Caller, id: &str) -> Option<String> {
    if id == "me" {
        caller.user_id.clone()
    } else {
        Some(id.to_owned())
    }
}

/// A Page token for `user_id` on `page_id`, derived from `caller`'s token: reused while valid,
/// never expiring when the user token is long-lived (§3.4).
fn page_token(
    st: &mut State,
    caller: &Caller,
    user_id: &str,
    page_id: &str,
    now_secs: i64,
) -> String {
    let parent = caller.token_index.map(|i| st.world.tokens[i].clone());
    let long_lived = parent.as_ref().is_some_and(|p| p.long_lived);
    let expires_at = match &parent {
        Some(p) if !p.long_lived => p.expires_at,
        _ => 0,
    };
    if let Some(existing) = st.world.tokens.iter().find(|t| {
        t.kind == TokenKind::Page
            && t.app_id == caller.app_id
            && t.user_id.as_deref() == Some(user_id)
            && t.page_id.as_deref() == Some(page_id)
            && t.long_lived == long_lived
            && token_problem(&st.world, t, now_secs).is_none()
    }) {
        return existing.token.clone();
    }
    let scopes: Vec<String> = caller
        .scopes
        .iter()
        .filter(|s| s.starts_with("pages_") || *s == "public_profile")
        .cloned()
        .collect();
    let token = Token {
        token: mint_token(),
        label: format!("page {page_id}"),
        kind: TokenKind::Page,
        app_id: caller.app_id.clone(),
        user_id: Some(user_id.to_owned()),
        page_id: Some(page_id.to_owned()),
        issued_at: now_secs,
        expires_at,
        data_access_expires_at: parent.as_ref().and_then(|p| p.data_access_expires_at),
        long_lived,
        granular_scopes: vec![crate::world::GranularScope {
            scope: "pages_show_list".into(),
            target_ids: vec![page_id.to_owned()],
        }],
        scopes,
        parent: parent.map(|p| p.token),
        ..Token::default()
    };
    let text = token.token.clone();
    st.add_token(token);
    text
}

/// §3.4 `GET /{user-id}/accounts`.
fn accounts(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    let (caller, headers) = caller(st, ctx, req)?;
    let user_id = match (caller.kind, user_segment(&caller, id)) {
        (TokenKind::User, Some(u)) if caller.user_id.as_deref() == Some(u.as_str()) => u,
        _ => {
            return Err(with_headers(
                GraphError::unsupported_request("GET", &req.path),
                headers,
            ));
        }
    };
    if !caller.has_scope("pages_show_list") {
        return Err(with_headers(
            GraphError::new(
                403,
                10,
                "OAuthException",
                "(#10) This endpoint requires the 'pages_show_list' permission.",
            ),
            headers,
        ));
    }
    let pages: Vec<(String, String, String, Vec<String>)> = st
        .world
        .pages
        .iter()
        .filter_map(|p| {
            p.roles.iter().find(|r| r.user_id == user_id).map(|r| {
                (
                    p.id.clone(),
                    p.name.clone(),
                    p.category.clone(),
                    r.tasks.clone(),
                )
            })
        })
        .collect();
    let mut items = Vec::new();
    for (page_id, name, category, tasks) in pages {
        let token = page_token(st, &caller, &user_id, &page_id, ctx.now_secs);
        items.push(json!({
            "access_token": token,
            "category": category,
            "category_list": [{ "id": "2201", "name": category }],
            "name": name,
            "id": page_id,
            "tasks": tasks,
        }));
    }
    let body = paging::page(items, req, ctx.base_url, &ctx.version)
        .map_err(|e| with_headers(e, headers.clone()))?;
    ok(body, headers)
}

/// `GET /{id}`: a page (with `fields=access_token`, §3.4), a user, a system user, a business,
/// or a campaign.
fn object(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    if st.world.campaign(id).is_some() {
        return marketing::campaign(st, ctx, req, id);
    }
    let (caller, headers) = caller(st, ctx, req)?;
    if let Some(page) = st.world.page(id).cloned() {
        let fields = req.param("fields").unwrap_or("");
        if fields.split(',').any(|f| f.trim() == "access_token") {
            let user_id = caller.user_id.clone().unwrap_or_default();
            let has_role =
                caller.kind == TokenKind::User && page.roles.iter().any(|r| r.user_id == user_id);
            if !has_role {
                return Err(with_headers(
                    GraphError::new(
                        400,
                        190,
                        "OAuthException",
                        "(#190) This method must be called with a Page Access Token or a User Access Token of a Page admin",
                    ),
                    headers,
                ));
            }
            let token = page_token(st, &caller, &user_id, &page.id, ctx.now_secs);
            return ok(json!({ "access_token": token, "id": page.id }), headers);
        }
        return ok(
            select_fields(
                json!({ "id": page.id, "name": page.name, "category": page.category }),
                req,
            ),
            headers,
        );
    }
    if let Some(user) = st.world.user(id) {
        return ok(
            select_fields(json!({ "id": user.id, "name": user.name }), req),
            headers,
        );
    }
    if let Some(su) = st.world.system_user(id) {
        return ok(
            select_fields(
                json!({ "id": su.id, "name": su.name, "role": su.role }),
                req,
            ),
            headers,
        );
    }
    if let Some(b) = st.world.businesses.iter().find(|b| b.id == id) {
        return ok(
            select_fields(json!({ "id": b.id, "name": b.name }), req),
            headers,
        );
    }
    Err(with_headers(
        GraphError::unsupported_request("GET", &req.path),
        headers,
    ))
}

// ----- §6 permissions -----

fn permissions(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
    id: &str,
    only: Option<&str>,
) -> Outcome {
    let (caller, headers) = caller(st, ctx, req)?;
    let Some(user_id) = user_segment(&caller, id) else {
        return Err(with_headers(
            GraphError::unsupported_request("GET", &req.path),
            headers,
        ));
    };
    let auth = st
        .world
        .user(&user_id)
        .and_then(|u| u.apps.iter().find(|a| a.app_id == caller.app_id))
        .cloned()
        .unwrap_or_default();
    let filter_permission = only.or(req.param("permission"));
    let filter_status = req.param("status");
    let mut data = Vec::new();
    for (list, status) in [
        (&auth.granted, "granted"),
        (&auth.declined, "declined"),
        (&auth.expired, "expired"),
    ] {
        for p in list {
            if filter_permission.is_some_and(|f| f != p)
                || filter_status.is_some_and(|f| f != status)
            {
                continue;
            }
            data.push(json!({ "permission": p, "status": status }));
        }
    }
    ok(json!({ "data": data }), headers)
}

fn delete_permissions(
    st: &mut State,
    ctx: &mut Ctx<'_>,
    req: &SimRequest,
    id: &str,
    one: Option<&str>,
) -> Outcome {
    let (caller, headers) = caller(st, ctx, req)?;
    let Some(user_id) = user_segment(&caller, id) else {
        return Err(with_headers(
            GraphError::unsupported_request("DELETE", &req.path),
            headers,
        ));
    };
    let allowed =
        caller.kind == TokenKind::App || caller.user_id.as_deref() == Some(user_id.as_str());
    if !allowed {
        return Err(with_headers(
            GraphError::unsupported_request("DELETE", &req.path),
            headers,
        ));
    }
    let one = one.or(req.param("permission"));
    let app_id = caller.app_id.clone();
    match one {
        Some(permission) => remove_permission(st, &user_id, &app_id, permission),
        None => deauthorize(st, &user_id, &app_id),
    }
    ok(json!({ "success": true }), headers)
}

/// One permission withdrawn: gone from the grant and from every token of that user and app.
pub fn remove_permission(st: &mut State, user_id: &str, app_id: &str, permission: &str) {
    if let Some(user) = st.world.user_mut(user_id)
        && let Some(auth) = user.apps.iter_mut().find(|a| a.app_id == app_id)
    {
        auth.granted.retain(|p| p != permission);
        if !auth.declined.iter().any(|p| p == permission) {
            auth.declined.push(permission.to_owned());
        }
    }
    for token in &mut st.world.tokens {
        if token.app_id == app_id && token.user_id.as_deref() == Some(user_id) {
            token.scopes.retain(|s| s != permission);
            token.granular_scopes.retain(|g| g.scope != permission);
        }
    }
}

/// The whole app withdrawn: all permissions and all tokens of this user for the app go, and stay
/// gone even if the user logs in again (§6.1, §6.3): those tokens answer 458.
pub fn deauthorize(st: &mut State, user_id: &str, app_id: &str) {
    if let Some(user) = st.world.user_mut(user_id) {
        user.apps.retain(|a| a.app_id != app_id);
    }
    for token in &mut st.world.tokens {
        if token.app_id == app_id
            && token.user_id.as_deref() == Some(user_id)
            && token.invalidated.is_none()
        {
            token.invalidated = Some(Invalidation::Deauthorized);
        }
    }
}

// ----- §4 system users -----

fn system_user_token(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    // The proof is required here whatever the app's setting (§4).
    if req.param("appsecret_proof").is_none() {
        return Err(GraphError::proof_required());
    }
    let (caller, headers) = caller(st, ctx, req)?;
    let fail = |e: GraphError| Err(with_headers(e, headers.clone()));
    let Some(su) = st.world.system_user(id).cloned() else {
        return fail(GraphError::unsupported_request("POST", &req.path));
    };
    let Some(app_id) = req.param("business_app") else {
        return fail(GraphError::invalid_parameter(
            "The parameter business_app is required",
        ));
    };
    if !su.apps.iter().any(|a| a == app_id) {
        return fail(GraphError::invalid_parameter(format!(
            "The app {app_id} is not installed for system user {id}; install it with POST /{id}/applications first"
        )));
    }
    let Some(scope) = req.param("scope") else {
        return fail(GraphError::invalid_parameter(
            "The parameter scope is required",
        ));
    };
    let business_admin = caller.user_id.as_ref().is_some_and(|u| {
        st.world
            .businesses
            .iter()
            .any(|b| b.id == su.business_id && b.admins.contains(u))
    });
    let system_admin = caller.system_user_id.as_ref().is_some_and(|s| {
        s == id
            || st
                .world
                .system_user(s)
                .is_some_and(|o| o.business_id == su.business_id && o.role == "admin")
    });
    if !(business_admin || system_admin) {
        return fail(GraphError::permission_missing("business_management"));
    }
    let sixty_days = req.param("set_token_expires_in_60_days") == Some("true");
    if su.requires_expiring_tokens && !sixty_days {
        return fail(GraphError::invalid_parameter(
            "This business requires expiring system user access tokens: set set_token_expires_in_60_days=true",
        ));
    }
    let token = Token {
        token: mint_token(),
        label: format!("system user {id}"),
        kind: TokenKind::SystemUser,
        app_id: app_id.to_owned(),
        system_user_id: Some(id.to_owned()),
        issued_at: ctx.now_secs,
        expires_at: if sixty_days {
            ctx.now_secs + SIXTY_DAYS_SECS
        } else {
            0
        },
        data_access_expires_at: None,
        long_lived: true,
        scopes: scope
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        ..Token::default()
    };
    let body = json!({ "access_token": token.token });
    st.add_token(token);
    ok(body, headers)
}

fn install_app(st: &mut State, ctx: &mut Ctx<'_>, req: &SimRequest, id: &str) -> Outcome {
    let (_, headers) = caller(st, ctx, req)?;
    let Some(app_id) = req.param("business_app").map(str::to_owned) else {
        return Err(with_headers(
            GraphError::invalid_parameter("The parameter business_app is required"),
            headers,
        ));
    };
    if st.world.app(&app_id).is_none() {
        return Err(with_headers(
            GraphError::invalid_parameter("Invalid business_app"),
            headers,
        ));
    }
    match st.world.system_users.iter_mut().find(|s| s.id == id) {
        Some(su) => {
            if !su.apps.contains(&app_id) {
                su.apps.push(app_id);
            }
            ok(json!(true), headers)
        }
        None => Err(with_headers(
            GraphError::unsupported_request("POST", &req.path),
            headers,
        )),
    }
}
