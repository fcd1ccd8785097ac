//! The dashboard's pages and form actions. Each page gathers what it shows into a view of plain
//! strings and numbers, so templates only lay it out.

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use graphwarden_core::{Role, TokenAlias, TokenKind, TokenStatus};
use graphwarden_lifecycle::Selection;
use graphwarden_lifecycle::audit::{AuditReport, Auditor, Finding};
use graphwarden_store::{Expiry, Token, TokenFilter};
use http::{HeaderMap, StatusCode, header};
use jiff::{SignedDuration, Timestamp};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::session::{self, Viewer};
use crate::state::AppState;

// ----- shared pieces -----

/// What every page's frame shows.
pub struct Chrome {
    pub title: String,
    pub nav: &'static str,
    pub csrf: String,
    pub who: String,
    pub role: String,
    pub can_act: bool,
    pub can_admin: bool,
    pub flash: Option<String>,
}

impl Chrome {
    fn new(viewer: &Viewer, title: impl Into<String>, nav: &'static str) -> Self {
        Self {
            title: title.into(),
            nav,
            csrf: viewer.csrf.clone(),
            who: viewer.name.clone(),
            role: viewer.role.as_str().to_owned(),
            can_act: viewer.can(Role::Operator),
            can_admin: viewer.can(Role::Admin),
            flash: None,
        }
    }

    fn flash(mut self, flash: &FlashQuery) -> Self {
        self.flash = flash.done.as_deref().and_then(done_message);
        self
    }
}

/// `?done=…` after a form: a fixed message per action, never text from the URL.
#[derive(Debug, Default, Deserialize)]
pub struct FlashQuery {
    done: Option<String>,
}

fn done_message(code: &str) -> Option<String> {
    Some(
        match code {
            "checked" => "Inspected with debug_token; the status below is Meta's answer.",
            "renewed" => "Renewed: the inventory holds the new token.",
            "not-renewed" => "Nothing was renewed; see the token's history for why.",
            "revoked" => "Revoked through Meta; the status below is Meta's answer.",
            "silenced" => "Silence created.",
            "expired" => "Silence expired.",
            "audited" => "Audit run and stored.",
            "job" => "Job started; its run appears below when it ends.",
            _ => return None,
        }
        .to_owned(),
    )
}

fn page(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("A dashboard page could not be rendered: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Chrome,
    heading: String,
    body: String,
    back: String,
}

/// A page that says what went wrong, with the way back.
fn trouble(viewer: &Viewer, status: StatusCode, body: impl Into<String>, back: &str) -> Response {
    let mut r = page(&MessagePage {
        chrome: Chrome::new(viewer, "Something went wrong", ""),
        heading: "That did not work".into(),
        body: body.into(),
        back: back.to_owned(),
    });
    *r.status_mut() = status;
    r
}

/// The form fields every action posts.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// Check the form's origin and CSRF token, and the viewer's role.
fn allowed(
    viewer: &Viewer,
    headers: &HeaderMap,
    csrf: &str,
    role: Role,
) -> Result<(), Box<Response>> {
    if !session::same_origin(headers) || !viewer.csrf_ok(csrf) {
        return Err(Box::new(session::forbidden()));
    }
    if !viewer.can(role) {
        return Err(Box::new(trouble(
            viewer,
            StatusCode::FORBIDDEN,
            format!(
                "This needs the `{role}` role; you signed in as a `{}`.",
                viewer.role
            ),
            "/",
        )));
    }
    Ok(())
}

/// The token a form acts on and the page to go back to, once the form's origin and CSRF token
/// and the viewer's role are checked.
fn action_target(
    viewer: &Viewer,
    headers: &HeaderMap,
    csrf: &str,
    role: Role,
    alias: &str,
) -> Result<(TokenAlias, String), Box<Response>> {
    allowed(viewer, headers, csrf, role)?;
    let alias = parse_alias(viewer, alias)?;
    let back = format!("/tokens/{alias}");
    Ok((alias, back))
}

fn parse_alias(viewer: &Viewer, text: &str) -> Result<TokenAlias, Box<Response>> {
    TokenAlias::parse(text).map_err(|e| {
        Box::new(trouble(
            viewer,
            StatusCode::NOT_FOUND,
            e.to_string(),
            "/tokens",
        ))
    })
}

fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn fmt_opt(t: Option<Timestamp>) -> String {
    t.map(fmt_time).unwrap_or_else(|| "—".to_owned())
}

fn remaining(expiry: Expiry, now: Timestamp) -> String {
    match expiry {
        Expiry::Never => "never".into(),
        Expiry::Unknown => "unknown".into(),
        Expiry::At(at) => {
            let left = now.duration_until(at);
            if left <= SignedDuration::ZERO {
                "expired".into()
            } else {
                graphwarden_core::duration::format_duration_short(left)
            }
        }
    }
}

/// The badge class of a status: ok, warn or bad.
fn tone(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Valid => "ok",
        TokenStatus::Expiring | TokenStatus::Unknown | TokenStatus::NeedsAttention => "warn",
        _ => "bad",
    }
}

fn store_error(viewer: &Viewer, e: impl std::fmt::Display, back: &str) -> Response {
    tracing::warn!("A dashboard page failed: {e}");
    trouble(
        viewer,
        StatusCode::INTERNAL_SERVER_ERROR,
        e.to_string(),
        back,
    )
}

// ----- sign in -----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this site, never `//elsewhere`.
fn local_path(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/")
        .to_owned()
}

pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if session::viewer(&state, &headers).await.is_some() {
        return Redirect::to(&local_path(q.next.as_deref())).into_response();
    }
    page(&LoginPage {
        error: None,
        next: local_path(q.next.as_deref()),
    })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_path(Some(&form.next));
    if !session::same_origin(&headers) {
        return session::forbidden();
    }
    let refuse = |message: &str| {
        let mut r = page(&LoginPage {
            error: Some(message.to_owned()),
            next: next.clone(),
        });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    let unreachable = |e: graphwarden_store::StoreError| {
        tracing::warn!("Dashboard sign-in failed: {e}");
        "The database could not be reached; try again shortly."
    };
    let (cookie, who) = if !form.user.trim().is_empty() {
        let password = secrecy::SecretString::from(form.password);
        match state
            .inventory()
            .verify_user(form.user.trim(), &password)
            .await
        {
            Ok(Some(user)) => (
                session::issue(&state, session::Subject::User(&user.name)),
                user.name,
            ),
            Ok(None) => return refuse("That user name and password do not match."),
            Err(e) => return refuse(unreachable(e)),
        }
    } else {
        let key = match state.inventory().verify_api_key(form.key.trim()).await {
            Ok(Some(key)) => key,
            Ok(None) => return refuse("That key is not valid (or was revoked)."),
            Err(e) => return refuse(unreachable(e)),
        };
        if key.role == Role::Consumer {
            return refuse(
                "Consumer keys are for applications; sign in with a reader, operator or admin key.",
            );
        }
        (
            session::issue(&state, session::Subject::Key(&key)),
            key.name,
        )
    };
    let Some(cookie) = cookie else {
        return refuse("A session could not be started; try again.");
    };
    tracing::info!(who = %who, "`{who}` signed in to the dashboard.");
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&state, Some(&cookie)),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    if !session::same_origin(&headers) || !viewer.csrf_ok(&form.csrf) {
        return session::forbidden();
    }
    (
        [(header::SET_COOKIE, session::set_cookie(&state, None))],
        Redirect::to("/login"),
    )
        .into_response()
}

// ----- overview -----

pub struct StatusCount {
    pub status: String,
    pub tone: &'static str,
    pub count: usize,
}

pub struct TimelineItem {
    pub alias: String,
    pub day: i64,
    pub when: String,
    pub tone: &'static str,
}

pub struct ActionItem {
    pub kind: &'static str,
    pub alias: String,
    pub text: String,
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    total: usize,
    counts: Vec<StatusCount>,
    timeline: Vec<TimelineItem>,
    actions: Vec<ActionItem>,
    audit_id: Option<i64>,
}

pub async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let now = state.clock().now();
    let tokens = match state.inventory().tokens(&TokenFilter::default()).await {
        Ok(t) => t,
        Err(e) => return store_error(&viewer, e, "/"),
    };
    let mut by_status: BTreeMap<&'static str, (usize, &'static str)> = BTreeMap::new();
    for t in &tokens {
        let entry = by_status
            .entry(t.status.as_str())
            .or_insert((0, tone(t.status)));
        entry.0 += 1;
    }
    let counts = by_status
        .into_iter()
        .map(|(status, (count, tone))| StatusCount {
            status: status.to_owned(),
            tone,
            count,
        })
        .collect();
    let mut timeline: Vec<TimelineItem> = tokens
        .iter()
        .filter(|t| t.status.is_usable())
        .filter_map(|t| match t.expires {
            Expiry::At(at) if at > now => {
                let day = now.duration_until(at).as_secs() / 86_400;
                (day < 30).then(|| TimelineItem {
                    alias: t.alias.to_string(),
                    day,
                    when: fmt_time(at),
                    tone: if day < 7 {
                        "bad"
                    } else if day < 14 {
                        "warn"
                    } else {
                        "ok"
                    },
                })
            }
            _ => None,
        })
        .collect();
    timeline.sort_by(|a, b| a.day.cmp(&b.day).then_with(|| a.alias.cmp(&b.alias)));

    // What needs a person today.
    let base = crate::handler::meta::base_url(&state, &headers);
    let mut actions = Vec::new();
    for t in &tokens {
        if !t.status.is_usable() && t.status != TokenStatus::Unknown {
            let link = if viewer.can(Role::Operator) && t.kind != TokenKind::App {
                crate::handler::oauth::relogin_link(&state, &base, &t.app_id, &t.alias)
                    .ok()
                    .map(|(url, _)| url)
            } else {
                None
            };
            actions.push(ActionItem {
                kind: "relogin",
                alias: t.alias.to_string(),
                text: format!("is {}: {}", t.status, t.status.action()),
                link,
            });
        } else if t.renewal_failures > 0 {
            actions.push(ActionItem {
                kind: "renewal",
                alias: t.alias.to_string(),
                text: format!("renewal failed {} time(s) in a row", t.renewal_failures),
                link: None,
            });
        }
    }
    let auditor = Auditor::new(state.inventory().clone(), state.config().audit.clone());
    let latest = auditor.stored(None).await.ok().flatten();
    if let Some(report) = &latest {
        for f in report.findings.iter().filter(|f| {
            matches!(
                f.rule.as_str(),
                "event_log_tampered"
                    | "app_mismatch"
                    | "user_changed"
                    | "unexpected_user"
                    | "excess_scope"
            )
        }) {
            actions.push(ActionItem {
                kind: if f.rule == "event_log_tampered" {
                    "tampering"
                } else {
                    "privilege"
                },
                alias: f.alias.clone().unwrap_or_default(),
                text: f.title.clone(),
                link: None,
            });
        }
    }
    let since = now.as_millisecond() - 24 * 3600 * 1000;
    if let Ok(rollups) = state.inventory().store().rollups_since(since).await {
        let mut throttled: BTreeMap<String, i64> = BTreeMap::new();
        for r in rollups
            .iter()
            .filter(|r| r.error_class == "throttled" || r.refused > 0)
        {
            let key = if r.account.is_empty() {
                r.app_id.clone()
            } else {
                r.account.clone()
            };
            *throttled.entry(key).or_default() += r.calls;
        }
        for (account, calls) in throttled {
            actions.push(ActionItem {
                kind: "throttled",
                alias: account,
                text: format!("{calls} call(s) throttled or held back in the last 24 hours"),
                link: None,
            });
        }
    }
    page(&OverviewPage {
        chrome: Chrome::new(&viewer, "Overview", "overview").flash(&flash),
        total: tokens.len(),
        counts,
        timeline,
        actions,
        audit_id: latest.map(|r| r.id),
    })
}

// ----- tokens -----

pub struct TokenRow {
    pub alias: String,
    pub kind: String,
    pub app: String,
    pub status: String,
    pub tone: &'static str,
    pub expires_in: String,
    pub owner: String,
    pub scopes: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    chrome: Chrome,
    rows: Vec<TokenRow>,
    q: String,
    status: String,
    kind: String,
    sort: String,
    statuses: Vec<&'static str>,
    kinds: Vec<&'static str>,
    total: usize,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokensQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    sort: String,
}

/// Seconds to expiry for sorting: soonest first, never last.
fn expiry_key(t: &Token, now: Timestamp) -> i64 {
    match t.expires {
        Expiry::At(at) => now.duration_until(at).as_secs(),
        Expiry::Unknown => i64::MAX - 1,
        Expiry::Never => i64::MAX,
    }
}

pub async fn tokens(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TokensQuery>,
) -> Response {
    let now = state.clock().now();
    let all = match state.inventory().tokens(&TokenFilter::default()).await {
        Ok(t) => t,
        Err(e) => return store_error(&viewer, e, "/"),
    };
    let total = all.len();
    let needle = q.q.trim().to_lowercase();
    let mut chosen: Vec<&Token> = all
        .iter()
        .filter(|t| q.status.is_empty() || t.status.as_str() == q.status)
        .filter(|t| q.kind.is_empty() || t.kind.as_str() == q.kind)
        .filter(|t| {
            needle.is_empty()
                || t.alias.as_str().contains(&needle)
                || t.owner.to_lowercase().contains(&needle)
                || t.purpose.to_lowercase().contains(&needle)
                || t.app_id.as_str().contains(&needle)
                || t.tags.iter().any(|tag| tag.as_str().contains(&needle))
        })
        .collect();
    match q.sort.as_str() {
        "alias" => chosen.sort_by(|a, b| a.alias.cmp(&b.alias)),
        "status" => chosen.sort_by(|a, b| {
            a.status
                .as_str()
                .cmp(b.status.as_str())
                .then_with(|| a.alias.cmp(&b.alias))
        }),
        "kind" => chosen.sort_by(|a, b| {
            a.kind
                .as_str()
                .cmp(b.kind.as_str())
                .then_with(|| a.alias.cmp(&b.alias))
        }),
        "owner" => chosen.sort_by(|a, b| a.owner.cmp(&b.owner).then_with(|| a.alias.cmp(&b.alias))),
        _ => chosen.sort_by(|a, b| {
            expiry_key(a, now)
                .cmp(&expiry_key(b, now))
                .then_with(|| a.alias.cmp(&b.alias))
        }),
    }
    let rows = chosen
        .into_iter()
        .map(|t| TokenRow {
            alias: t.alias.to_string(),
            kind: t.kind.as_str().to_owned(),
            app: t.app_id.to_string(),
            status: t.status.as_str().to_owned(),
            tone: tone(t.status),
            expires_in: remaining(t.expires, now),
            owner: t.owner.clone(),
            scopes: t.scopes.as_ref().map(|s| s.join(", ")).unwrap_or_default(),
        })
        .collect();
    page(&TokensPage {
        chrome: Chrome::new(&viewer, "Tokens", "tokens"),
        rows,
        q: q.q,
        status: q.status,
        kind: q.kind,
        sort: if q.sort.is_empty() {
            "expires".into()
        } else {
            q.sort
        },
        statuses: TokenStatus::ALL.iter().map(|s| s.as_str()).collect(),
        kinds: ["user", "page", "app", "system_user"].to_vec(),
        total,
    })
}

pub struct EventRow {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub struct CallRow {
    pub at: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub error: String,
    pub ms: String,
}

pub struct Link {
    pub alias: String,
    pub status: String,
    pub tone: &'static str,
}

#[derive(Template)]
#[template(path = "token.html")]
struct TokenPage {
    chrome: Chrome,
    alias: String,
    kind: String,
    app: String,
    status: String,
    tone: &'static str,
    cause: String,
    expires: String,
    expires_in: String,
    data_access: String,
    owner: String,
    requested_by: String,
    purpose: String,
    hint: String,
    scopes: Vec<String>,
    needed: Vec<String>,
    targets: Vec<String>,
    flags: Vec<String>,
    last_checked: String,
    parent: Option<Link>,
    children: Vec<Link>,
    events: Vec<EventRow>,
    calls: Vec<CallRow>,
    chart: String,
    revocable: bool,
}

/// Calls per hour over the last `hours`, as the chart script reads it.
fn hourly_chart(
    rollups: &[graphwarden_store::Rollup],
    now: Timestamp,
    hours: i64,
    keep: impl Fn(&graphwarden_store::Rollup) -> bool,
) -> String {
    let end = now.as_second() - now.as_second().rem_euclid(3600) + 3600;
    let start = end - hours * 3600;
    let mut calls = vec![0i64; hours as usize];
    let mut errors = vec![0i64; hours as usize];
    for r in rollups.iter().filter(|r| keep(r)) {
        let at = r.minute_ms / 1000;
        if at < start || at >= end {
            continue;
        }
        let i = ((at - start) / 3600) as usize;
        calls[i] += r.calls;
        if !r.error_class.is_empty() {
            errors[i] += r.calls;
        }
    }
    let x: Vec<i64> = (0..hours).map(|h| start + h * 3600).collect();
    serde_json::json!({
        "x": x,
        "series": [
            {"label": "calls", "values": calls},
            {"label": "errors", "values": errors},
        ],
    })
    .to_string()
}

pub async fn token(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(alias): Path<String>,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let alias = match parse_alias(&viewer, &alias) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let inventory = state.inventory();
    let now = state.clock().now();
    let t = match inventory.token(&alias).await {
        Ok(t) => t,
        Err(e @ graphwarden_store::StoreError::NotFound { .. }) => {
            return trouble(&viewer, StatusCode::NOT_FOUND, e.to_string(), "/tokens");
        }
        Err(e) => return store_error(&viewer, e, "/tokens"),
    };
    let parent = match &t.parent_alias {
        Some(p) => inventory.token(p).await.ok().map(|p| Link {
            alias: p.alias.to_string(),
            status: p.status.as_str().to_owned(),
            tone: tone(p.status),
        }),
        None => None,
    };
    let children = inventory
        .children(&t)
        .await
        .unwrap_or_default()
        .iter()
        .map(|c| Link {
            alias: c.alias.to_string(),
            status: c.status.as_str().to_owned(),
            tone: tone(c.status),
        })
        .collect();
    let mut events: Vec<EventRow> = inventory
        .token_events(&alias)
        .await
        .unwrap_or_default()
        .iter()
        .map(|e| EventRow {
            at: fmt_time(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            detail: e.detail_text(),
        })
        .collect();
    events.reverse();
    let store = inventory.store();
    let calls = store
        .recent_calls(Some(alias.as_str()), 20)
        .await
        .unwrap_or_default()
        .iter()
        .map(|c| CallRow {
            at: Timestamp::from_millisecond(c.at_ms)
                .map(fmt_time)
                .unwrap_or_default(),
            method: c.method.to_string(),
            path: c.path.to_string(),
            status: c.http_status,
            error: match (&c.error_class, c.error_code) {
                (Some(class), Some(code)) => format!("{class} ({code})"),
                (Some(class), None) => class.clone(),
                _ => String::new(),
            },
            ms: format!("{:.1}", c.duration_us as f64 / 1000.0),
        })
        .collect();
    let rollups = store
        .rollups_since(now.as_millisecond() - 48 * 3600 * 1000)
        .await
        .unwrap_or_default();
    let chart = hourly_chart(&rollups, now, 48, |r| r.token_alias == alias.as_str());
    page(&TokenPage {
        chrome: Chrome::new(&viewer, format!("Token {alias}"), "tokens").flash(&flash),
        alias: alias.to_string(),
        kind: t.kind.as_str().to_owned(),
        app: t.app_id.to_string(),
        status: t.status.as_str().to_owned(),
        tone: tone(t.status),
        cause: if t.status_cause.is_empty() || t.status_cause == t.status.as_str() {
            t.status.action().to_owned()
        } else {
            t.status_cause.clone()
        },
        expires: match t.expires {
            Expiry::At(at) => fmt_time(at),
            Expiry::Never => "never".into(),
            Expiry::Unknown => "unknown".into(),
        },
        expires_in: remaining(t.expires, now),
        data_access: fmt_opt(t.data_access_expires_at),
        owner: t.owner.clone(),
        requested_by: t.requested_by.clone(),
        purpose: t.purpose.clone(),
        hint: t.hint.clone(),
        scopes: t.scopes.clone().unwrap_or_default(),
        needed: t
            .scopes_needed
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        targets: t
            .granular_scopes
            .iter()
            .flatten()
            .flat_map(|g| {
                g.target_ids
                    .iter()
                    .map(move |id| format!("{}: {id}", g.scope))
            })
            .collect(),
        flags: t.flags.clone(),
        last_checked: fmt_opt(t.last_checked_at),
        parent,
        children,
        events,
        calls,
        chart,
        revocable: matches!(t.kind, TokenKind::User | TokenKind::SystemUser),
    })
}

pub async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(alias): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (alias, back) = match action_target(&viewer, &headers, &form.csrf, Role::Operator, &alias) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state
        .checker()
        .check(
            Selection::Aliases(vec![alias.clone()]),
            &viewer.actor(),
            &|_, _| {},
        )
        .await
    {
        Ok(_) => {
            state.tokens_changed();
            Redirect::to(&format!("{back}?done=checked")).into_response()
        }
        Err(e) => store_error(&viewer, e, &back),
    }
}

pub struct PlanRow {
    pub alias: String,
    pub plan: String,
    pub reason: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    heading: String,
    lines: Vec<String>,
    plans: Vec<PlanRow>,
    action: String,
    button: String,
    back: String,
    danger: bool,
    can_go: bool,
}

pub async fn renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(alias): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    let (alias, back) = match action_target(&viewer, &headers, &form.csrf, Role::Operator, &alias) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let token = match state.inventory().token(&alias).await {
        Ok(t) => t,
        Err(e) => return store_error(&viewer, e, &back),
    };
    let dry_run = form.confirm != "yes";
    let report = match state
        .renewer()
        .renew(vec![token], dry_run, true, &viewer.actor())
        .await
    {
        Ok(r) => r,
        Err(e) => return store_error(&viewer, e, &back),
    };
    if dry_run {
        let plans: Vec<PlanRow> = report
            .tokens
            .iter()
            .map(|r| PlanRow {
                alias: r.alias.clone(),
                plan: r.plan.name().to_owned(),
                reason: r.plan.reason().to_owned(),
                outcome: r.outcome.to_owned(),
            })
            .collect();
        let can_go = plans.iter().any(|p| p.outcome == "planned");
        return page(&ConfirmPage {
            chrome: Chrome::new(&viewer, format!("Renew {alias}"), "tokens"),
            heading: format!("Renew `{alias}`?"),
            lines: vec![if can_go {
                "Nothing has been changed yet. This is what renewing would do:".into()
            } else {
                "There is nothing to renew now:".into()
            }],
            plans,
            action: format!("/tokens/{alias}/renew"),
            button: "Renew now".into(),
            back,
            danger: false,
            can_go,
        });
    }
    state.tokens_changed();
    let done = if report.tokens.iter().any(|r| r.outcome == "renewed") {
        "renewed"
    } else {
        "not-renewed"
    };
    Redirect::to(&format!("{back}?done={done}")).into_response()
}

pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(alias): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    use graphwarden_lifecycle::revoke as rv;
    let (alias, back) = match action_target(&viewer, &headers, &form.csrf, Role::Admin, &alias) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let inventory = state.inventory();
    let token = match inventory.token(&alias).await {
        Ok(t) => t,
        Err(e) => return store_error(&viewer, e, &back),
    };
    if form.confirm != "yes" {
        let deps = match rv::dependents(inventory, &token).await {
            Ok(d) => d,
            Err(e) => return store_error(&viewer, e, &back),
        };
        let mut lines =
            vec!["Nothing has been changed yet. Revoking it through Meta would break:".to_owned()];
        if deps.derived.is_empty() {
            lines.push("No token was derived from it.".into());
        } else {
            lines.push(format!(
                "Derived tokens, which die with it: {}.",
                deps.derived
                    .iter()
                    .map(|t| format!("{} ({})", t.alias, t.kind))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines.push(if deps.consumers.is_empty() {
            "No consumer key fetches it.".into()
        } else {
            format!(
                "Consumer keys that fetch it: {}.",
                deps.consumers.join(", ")
            )
        });
        lines.push(format!(
            "{} recent call(s) through the proxy{}.",
            deps.recent_calls,
            deps.last_call_at_ms
                .and_then(|ms| Timestamp::from_millisecond(ms).ok())
                .map(|t| format!(", the last at {}", fmt_time(t)))
                .unwrap_or_default()
        ));
        return page(&ConfirmPage {
            chrome: Chrome::new(&viewer, format!("Revoke {alias}"), "tokens"),
            heading: format!("Revoke `{alias}` at Meta?"),
            lines,
            plans: Vec::new(),
            action: format!("/tokens/{alias}/revoke"),
            button: "Revoke it".into(),
            back,
            danger: true,
            can_go: true,
        });
    }
    match rv::revoke(
        inventory,
        state.graph(),
        state.checker(),
        &token,
        &viewer.actor(),
    )
    .await
    {
        Ok(()) => {
            state.tokens_changed();
            Redirect::to(&format!("{back}?done=revoked")).into_response()
        }
        Err(e) => trouble(&viewer, StatusCode::BAD_GATEWAY, e.to_string(), &back),
    }
}

#[derive(Template)]
#[template(path = "reveal.html")]
struct RevealPage {
    chrome: Chrome,
    alias: String,
    secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    reason: String,
}

pub async fn reveal(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(alias): Path<String>,
    Form(form): Form<RevealForm>,
) -> Response {
    if let Err(r) = allowed(&viewer, &headers, &form.csrf, Role::Admin) {
        return *r;
    }
    let alias = match parse_alias(&viewer, &alias) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let chrome = Chrome::new(&viewer, format!("Reveal {alias}"), "tokens");
    if form.confirm != "yes" {
        return page(&RevealPage {
            chrome,
            alias: alias.to_string(),
            secret: None,
        });
    }
    let reason = if form.reason.trim().is_empty() {
        "revealed from the dashboard".to_owned()
    } else {
        form.reason.trim().chars().take(500).collect()
    };
    match state
        .inventory()
        .reveal_token(&alias, &viewer.actor(), &reason)
        .await
    {
        Ok(secret) => page(&RevealPage {
            chrome,
            alias: alias.to_string(),
            secret: Some(secret.expose_secret().to_owned()),
        }),
        Err(e) => store_error(&viewer, e, &format!("/tokens/{alias}")),
    }
}

// ----- usage -----

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    chrome: Chrome,
    hours: i64,
    calls_chart: String,
    errors_chart: String,
    usage_chart: String,
    buc_chart: String,
    throttle_chart: String,
    total: i64,
    errors: i64,
    refused: i64,
}

#[derive(Debug, Default, Deserialize)]
pub struct UsageQuery {
    hours: Option<i64>,
}

pub async fn usage(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<UsageQuery>,
) -> Response {
    let hours = q.hours.unwrap_or(24).clamp(1, 24 * 14);
    let now = state.clock().now();
    let rollups = match state
        .inventory()
        .store()
        .rollups_since(now.as_millisecond() - hours * 3600 * 1000)
        .await
    {
        Ok(r) => r,
        Err(e) => return store_error(&viewer, e, "/"),
    };
    let end = now.as_second() - now.as_second().rem_euclid(3600) + 3600;
    let start = end - hours * 3600;
    let slot = |r: &graphwarden_store::Rollup| {
        let at = r.minute_ms / 1000;
        (at >= start && at < end).then(|| ((at - start) / 3600) as usize)
    };
    let n = hours as usize;
    let x: Vec<i64> = (0..hours).map(|h| start + h * 3600).collect();
    let mut calls = vec![0i64; n];
    let mut by_class: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut usage: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut refused = vec![0i64; n];
    let mut throttled = vec![0i64; n];
    let (mut total, mut errors, mut held) = (0, 0, 0);
    for r in &rollups {
        let Some(i) = slot(r) else { continue };
        calls[i] += r.calls;
        total += r.calls;
        refused[i] += r.refused;
        held += r.refused;
        if !r.error_class.is_empty() {
            errors += r.calls;
            by_class
                .entry(r.error_class.clone())
                .or_insert_with(|| vec![0; n])[i] += r.calls;
            if r.error_class == "throttled" {
                throttled[i] += r.calls;
            }
        }
        if r.max_usage_pct > 0.0 {
            let key = if r.account.starts_with("act_") {
                r.account.clone()
            } else {
                format!("app {}", r.app_id)
            };
            let v = &mut usage.entry(key).or_insert_with(|| vec![0.0; n])[i];
            *v = v.max(r.max_usage_pct);
        }
    }
    // Business use cases by type (ads_management, ads_insights, pages…), from the usage the
    // recorded calls carried: the highest of call count, CPU and time per hour.
    let mut by_type: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let calls_kept = state
        .inventory()
        .store()
        .recent_calls(None, 20_000)
        .await
        .unwrap_or_default();
    for c in &calls_kept {
        let at = c.at_ms / 1000;
        if at < start || at >= end {
            continue;
        }
        let i = ((at - start) / 3600) as usize;
        let Some(usage) = c
            .usage
            .as_deref()
            .and_then(|u| serde_json::from_str::<serde_json::Value>(u).ok())
        else {
            continue;
        };
        for e in usage["business_use_case"].as_array().into_iter().flatten() {
            let kind = e["kind"].as_str().unwrap_or("other").to_owned();
            let pct = ["call_count", "total_cputime", "total_time"]
                .iter()
                .filter_map(|k| e[*k].as_f64())
                .fold(0.0_f64, f64::max);
            let v = &mut by_type.entry(kind).or_insert_with(|| vec![0.0; n])[i];
            *v = v.max(pct);
        }
    }
    let series = |pairs: Vec<(String, serde_json::Value)>| {
        serde_json::json!({
            "x": x,
            "series": pairs.into_iter().map(|(label, values)| serde_json::json!({"label": label, "values": values})).collect::<Vec<_>>(),
        })
        .to_string()
    };
    page(&UsagePage {
        chrome: Chrome::new(&viewer, "Usage", "usage"),
        hours,
        calls_chart: series(vec![("calls".into(), serde_json::json!(calls))]),
        errors_chart: series(
            by_class
                .into_iter()
                .map(|(k, v)| (k, serde_json::json!(v)))
                .collect(),
        ),
        usage_chart: series(
            usage
                .into_iter()
                .take(8)
                .map(|(k, v)| (k, serde_json::json!(v)))
                .collect(),
        ),
        buc_chart: series(
            by_type
                .into_iter()
                .map(|(k, v)| (k, serde_json::json!(v)))
                .collect(),
        ),
        throttle_chart: series(vec![
            ("throttled by Meta".into(), serde_json::json!(throttled)),
            (
                "held back by graphwarden".into(),
                serde_json::json!(refused),
            ),
        ]),
        total,
        errors,
        refused: held,
    })
}

// ----- alerts and silences -----

pub struct AlertRow {
    pub name: String,
    pub severity: String,
    pub labels: String,
    pub summary: String,
    pub since: String,
    pub silenced: bool,
    pub matcher: String,
}

pub struct SilenceRow {
    pub id: String,
    pub matchers: String,
    pub ends: String,
    pub by: String,
    pub comment: String,
    pub active: bool,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    enabled: bool,
    alerts: Vec<AlertRow>,
    silences: Vec<SilenceRow>,
}

pub async fn alerts(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let now = state.clock().now();
    let mut rows = Vec::new();
    if let Some(engine) = state.alerts() {
        match engine.alerts().await {
            Ok(views) => {
                for v in views {
                    let labels = &v.alert.labels;
                    let name = labels.get("alertname").cloned().unwrap_or_default();
                    let matcher = match labels.get("token") {
                        Some(t) => format!("alertname=\"{name}\",token=\"{t}\""),
                        None => format!("alertname=\"{name}\""),
                    };
                    rows.push(AlertRow {
                        severity: labels.get("severity").cloned().unwrap_or_default(),
                        labels: labels
                            .iter()
                            .filter(|(k, _)| *k != "alertname" && *k != "severity")
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        summary: v
                            .alert
                            .annotations
                            .get("summary")
                            .cloned()
                            .unwrap_or_default(),
                        since: fmt_time(v.alert.starts_at),
                        silenced: !v.silenced_by.is_empty(),
                        matcher,
                        name,
                    });
                }
            }
            Err(e) => return store_error(&viewer, e, "/"),
        }
    }
    let silences = state
        .inventory()
        .store()
        .silences()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| SilenceRow {
            active: s.silence.ends_at > now,
            id: s.silence.id.clone(),
            matchers: s.silence.matchers.to_string(),
            ends: fmt_time(s.silence.ends_at),
            by: s.silence.created_by.clone(),
            comment: s.silence.comment.clone(),
        })
        .collect();
    page(&AlertsPage {
        chrome: Chrome::new(&viewer, "Alerts", "alerts").flash(&flash),
        enabled: state.alerts().is_some(),
        alerts: rows,
        silences,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct SilenceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    matchers: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    comment: String,
}

pub async fn silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(form): Form<SilenceForm>,
) -> Response {
    if let Err(r) = allowed(&viewer, &headers, &form.csrf, Role::Operator) {
        return *r;
    }
    let now = state.clock().now();
    let ends = graphwarden_core::duration::parse_duration(form.duration.trim())
        .map_err(|e| e.to_string())
        .and_then(|d| now.checked_add(d).map_err(|e| e.to_string()));
    let ends = match ends {
        Ok(e) => e,
        Err(e) => {
            return trouble(
                &viewer,
                StatusCode::BAD_REQUEST,
                format!("The duration: {e}"),
                "/alerts",
            );
        }
    };
    let matchers: Vec<String> = split_matchers(&form.matchers);
    let comment = form.comment.trim();
    if comment.is_empty() {
        return trouble(
            &viewer,
            StatusCode::BAD_REQUEST,
            "Say why in the comment: silences are read later by others.",
            "/alerts",
        );
    }
    let silence = match crate::alerting::new_silence(&matchers, now, ends, &viewer.actor(), comment)
    {
        Ok(s) => s,
        Err(e) => return trouble(&viewer, StatusCode::BAD_REQUEST, e.to_string(), "/alerts"),
    };
    if let Err(e) = state
        .inventory()
        .store()
        .insert_silence(&silence, now.as_millisecond())
        .await
    {
        return store_error(&viewer, e, "/alerts");
    }
    tracing::info!(silence = %silence.id, actor = %viewer.actor(), "Silence `{}` was created for {}.", silence.id, silence.matchers);
    state.tokens_changed();
    Redirect::to("/alerts?done=silenced").into_response()
}

/// `a="1",b=~"x,y"` into its matchers: commas inside quotes stay.
fn split_matchers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
    {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                current.push(c);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_owned());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        escaped = false;
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

pub async fn expire_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = allowed(&viewer, &headers, &form.csrf, Role::Operator) {
        return *r;
    }
    let now = state.clock().now();
    match state
        .inventory()
        .store()
        .expire_silence(&id, now.as_millisecond())
        .await
    {
        Ok(true) => {
            state.tokens_changed();
            Redirect::to("/alerts?done=expired").into_response()
        }
        Ok(false) => trouble(
            &viewer,
            StatusCode::NOT_FOUND,
            "That silence has ended already.",
            "/alerts",
        ),
        Err(e) => store_error(&viewer, e, "/alerts"),
    }
}

// ----- audits -----

pub struct FindingRow {
    pub severity: String,
    pub new: bool,
    pub who: String,
    pub is_token: bool,
    pub rule: String,
    pub subject: String,
    pub title: String,
    pub evidence: String,
    pub action: String,
}

impl From<&Finding> for FindingRow {
    fn from(f: &Finding) -> Self {
        Self {
            severity: f.severity.as_str().to_owned(),
            new: f.new,
            is_token: f.alias.is_some(),
            who: f
                .alias
                .clone()
                .or_else(|| f.app_id.clone())
                .unwrap_or_default(),
            rule: f.rule.clone(),
            subject: f.subject.clone().unwrap_or_default(),
            title: f.title.clone(),
            evidence: f.evidence.clone(),
            action: f.action.clone(),
        }
    }
}

pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "audits.html")]
struct AuditsPage {
    chrome: Chrome,
    report: Option<ReportView>,
    history: Vec<AuditRow>,
}

pub struct ReportView {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub compared: String,
    pub counts: String,
    pub findings: Vec<FindingRow>,
    pub resolved: Vec<FindingRow>,
}

fn report_view(r: &AuditReport) -> ReportView {
    let s = &r.summary;
    ReportView {
        id: r.id,
        at: fmt_time(r.at),
        actor: r.actor.clone(),
        compared: match (r.previous_id, r.previous_at) {
            (Some(id), Some(at)) => format!(
                "Compared with audit #{id} of {}: {} new, {} resolved.",
                fmt_time(at),
                s.new,
                s.resolved
            ),
            _ => "The first audit: every finding is new.".into(),
        },
        counts: format!(
            "{} critical, {} high, {} medium, {} low, {} info — {} token(s), {} app(s)",
            s.critical, s.high, s.medium, s.low, s.info, s.tokens, s.apps
        ),
        findings: r.findings.iter().map(FindingRow::from).collect(),
        resolved: r.resolved.iter().map(FindingRow::from).collect(),
    }
}

async fn audits_page(
    state: &AppState,
    viewer: &Viewer,
    id: Option<i64>,
    flash: &FlashQuery,
) -> Response {
    let auditor = Auditor::new(state.inventory().clone(), state.config().audit.clone());
    let report = match auditor.stored(id).await {
        Ok(r) => r,
        Err(e) => return store_error(viewer, e, "/audits"),
    };
    if id.is_some() && report.is_none() {
        return trouble(
            viewer,
            StatusCode::NOT_FOUND,
            "There is no such audit.",
            "/audits",
        );
    }
    let history = state
        .inventory()
        .store()
        .audits(30)
        .await
        .unwrap_or_default()
        .iter()
        .map(|a| AuditRow {
            id: a.id,
            at: Timestamp::from_millisecond(a.at_ms)
                .map(fmt_time)
                .unwrap_or_default(),
            actor: a.actor.clone(),
            summary: ["critical", "high", "medium", "low"]
                .iter()
                .map(|k| format!("{} {k}", a.summary[k].as_u64().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    page(&AuditsPage {
        chrome: Chrome::new(viewer, "Audits", "audits").flash(flash),
        report: report.as_ref().map(report_view),
        history,
    })
}

pub async fn audits(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(flash): Query<FlashQuery>,
) -> Response {
    audits_page(&state, &viewer, None, &flash).await
}

pub async fn audit(State(state): State<AppState>, viewer: Viewer, Path(id): Path<i64>) -> Response {
    audits_page(&state, &viewer, Some(id), &FlashQuery::default()).await
}

/// The stored audit as the self-contained HTML report `graphwarden audit --format html` writes.
pub async fn audit_report(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Response {
    let auditor = Auditor::new(state.inventory().clone(), state.config().audit.clone());
    match auditor.stored(Some(id)).await {
        Ok(Some(report)) => (
            [
                // The report styles itself inline and has no script.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                ),
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            ],
            graphwarden_lifecycle::audit::render::html(&report),
        )
            .into_response(),
        Ok(None) => trouble(
            &viewer,
            StatusCode::NOT_FOUND,
            "There is no such audit.",
            "/audits",
        ),
        Err(e) => store_error(&viewer, e, "/audits"),
    }
}

pub async fn run_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = allowed(&viewer, &headers, &form.csrf, Role::Operator) {
        return *r;
    }
    let auditor = Auditor::new(state.inventory().clone(), state.config().audit.clone());
    match auditor.run(&viewer.actor()).await {
        Ok(_) => Redirect::to("/audits?done=audited").into_response(),
        Err(e) => store_error(&viewer, e, "/audits"),
    }
}

// ----- jobs -----

pub struct JobRow {
    pub name: String,
    pub kind: String,
    pub schedule: String,
    pub next: String,
    pub running_on: String,
    pub last: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    chrome: Chrome,
    jobs: Vec<JobRow>,
    runs: Vec<JobRow>,
}

pub async fn jobs(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(flash): Query<FlashQuery>,
) -> Response {
    let scheduler = state.scheduler();
    let views = match scheduler.jobs().await {
        Ok(v) => v,
        Err(e) => return store_error(&viewer, e, "/"),
    };
    let kind = |k: crate::scheduler::JobKind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let jobs = views
        .iter()
        .map(|j| JobRow {
            name: j.name.clone(),
            kind: kind(j.kind),
            schedule: format!("{} ({})", j.schedule, j.timezone),
            next: fmt_opt(j.next_run_at),
            running_on: j.running_on.clone().unwrap_or_default(),
            last: j
                .last_run
                .as_ref()
                .map(|r| format!("{}: {}", fmt_time(r.started_at), r.summary))
                .unwrap_or_else(|| "never run".into()),
            outcome: j
                .last_run
                .as_ref()
                .map(|r| r.outcome.clone())
                .unwrap_or_default(),
        })
        .collect();
    let runs = scheduler
        .runs(None, 25)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| JobRow {
            name: r.job.clone(),
            kind: r.trigger.clone(),
            schedule: String::new(),
            next: fmt_time(r.started_at),
            running_on: r.owner.clone(),
            last: r.summary.clone(),
            outcome: r.outcome.clone(),
        })
        .collect();
    page(&JobsPage {
        chrome: Chrome::new(&viewer, "Jobs", "jobs").flash(&flash),
        jobs,
        runs,
    })
}

pub async fn run_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(r) = allowed(&viewer, &headers, &form.csrf, Role::Operator) {
        return *r;
    }
    match state.scheduler().run_now(&name).await {
        Ok(run) => {
            tracing::info!(job = %name, run, actor = %viewer.actor(), "Job `{name}` started by hand.");
            Redirect::to("/jobs?done=job").into_response()
        }
        Err(e) => trouble(&viewer, StatusCode::CONFLICT, e.to_string(), "/jobs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_split_on_commas_outside_quotes() {
        assert_eq!(
            split_matchers(r#"{alertname="token_expiring", token=~"a,b"}"#),
            vec![r#"alertname="token_expiring""#, r#"token=~"a,b""#]
        );
        assert_eq!(split_matchers("  "), Vec::<String>::new());
    }

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/tokens?q=a")), "/tokens?q=a");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", ""] {
            assert_eq!(local_path(Some(bad)), "/");
        }
    }
}
