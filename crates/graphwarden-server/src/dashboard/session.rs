//! Dashboard sessions: a signed cookie naming the API key or local user a person signed in as,
//! checked on every request (a revoked key or removed user ends its sessions at once), and a
//! CSRF token bound to it.
//!
//! The cookie is `k.KEY_ID.EXPIRES_MS.SIG` (an API key) or `u.NAME.EXPIRES_MS.SIG` (a local
//! user), where SIG is this installation's link signature
//! (HMAC under a key derived from the fingerprint key) over those parts: nothing secret is in it,
//! and only this installation can make one. It is `HttpOnly`, `SameSite=Strict`, `Path=/`, and
//! `Secure` when `server.public_url` is `https://`.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use graphwarden_core::Role;
use graphwarden_store::ApiKey;
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use subtle::ConstantTimeEq as _;

use crate::state::AppState;

pub const COOKIE: &str = "gw_session";
/// How long a sign-in lasts.
pub const LIFETIME_MS: i64 = 12 * 3600 * 1000;

fn message(kind: &str, id: &str, expires_ms: i64) -> String {
    format!("dashboard-session\n{kind}\n{id}\n{expires_ms}")
}

/// Who a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Key(&'a ApiKey),
    User(&'a str),
}

/// The cookie value for a new session.
pub fn issue(state: &AppState, subject: Subject<'_>) -> Option<String> {
    let (kind, id) = match subject {
        Subject::Key(key) => ("k", key.id.clone()),
        // A user name may hold a `.`, the cookie's separator: the id part is its hex.
        Subject::User(name) => ("u", hex::encode(name)),
    };
    let expires = state.clock().now_ms().saturating_add(LIFETIME_MS);
    let sig = state
        .inventory()
        .sign_link(&message(kind, &id, expires))
        .ok()?;
    Some(format!("{kind}.{id}.{expires}.{sig}"))
}

/// `Set-Cookie` for `value` (`None`: clear it).
pub fn set_cookie(state: &AppState, value: Option<&str>) -> String {
    let secure = state
        .config()
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let (value, age) = match value {
        Some(v) => (v, LIFETIME_MS / 1000),
        None => ("", 0),
    };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{}",
        if secure { "; Secure" } else { "" }
    )
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Someone signed in to the dashboard.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The key's or the user's name.
    pub name: String,
    pub role: Role,
    /// `apikey` or `user`.
    pub kind: &'static str,
    /// The cookie, which the CSRF token is bound to.
    cookie: String,
    pub csrf: String,
}

impl Viewer {
    pub fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }

    /// How events name this person.
    pub fn actor(&self) -> String {
        match self.kind {
            "user" => format!("dashboard:user:{}", self.name),
            _ => format!("dashboard:{}", self.name),
        }
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

fn csrf_for(state: &AppState, cookie: &str) -> Option<String> {
    let sig = state
        .inventory()
        .sign_link(&format!("dashboard-csrf\n{cookie}"))
        .ok()?;
    Some(sig[..32.min(sig.len())].to_owned())
}

/// The viewer a request's cookie names, if it is valid, unexpired and its key still live.
pub async fn viewer(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
    let cookie = cookie_value(headers)?;
    let mut parts = cookie.splitn(4, '.');
    let (kind, id, expires, sig) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires: i64 = expires.parse().ok()?;
    if expires <= state.clock().now_ms() {
        return None;
    }
    if !state
        .inventory()
        .verify_link(&message(kind, id, expires), sig)
        .ok()?
    {
        return None;
    }
    let (name, role, kind) = match kind {
        "k" => {
            let record = state.inventory().store().api_key(id).await.ok()??;
            if record.key.revoked_at.is_some() || record.key.role == Role::Consumer {
                return None;
            }
            (record.key.name, record.key.role, "apikey")
        }
        "u" => {
            let name = String::from_utf8(hex::decode(id).ok()?).ok()?;
            let user = state.inventory().user(&name).await.ok()??;
            (user.name, user.role, "user")
        }
        _ => return None,
    };
    Some(Viewer {
        csrf: csrf_for(state, cookie)?,
        cookie: cookie.to_owned(),
        name,
        role,
        kind,
    })
}

impl Viewer {
    /// The cookie this session lives in.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }
}

/// Pages need a viewer; without one the browser goes to the sign-in form.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match viewer(state, &parts.headers).await {
            Some(v) => Ok(v),
            None => {
                let back = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| p.starts_with('/') && !p.starts_with("//"))
                    .unwrap_or("/");
                let mut to = String::from("/login");
                if back != "/" && parts.method == http::Method::GET {
                    to.push_str("?next=");
                    to.push_str(
                        &form_urlencoded::byte_serialize(back.as_bytes()).collect::<String>(),
                    );
                }
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// A form post from somewhere else (another origin) is refused outright.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        // Browsers send Origin on every cross-site POST; no Origin is a same-site form or a tool.
        return true;
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// The answer to a form whose CSRF token or origin is wrong.
pub fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this dashboard. Go back, reload the page and try again.",
    )
        .into_response()
}
