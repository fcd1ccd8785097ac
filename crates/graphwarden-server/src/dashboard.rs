//! The web dashboard at `/`: server-rendered pages (askama templates, auto-escaped), assets
//! embedded in the binary, nothing fetched from anywhere else, and plain HTML forms that work
//! without script (the little script there is draws the charts).
//!
//! Sign-in is by API key (a reader, operator or admin key; consumer keys are for applications);
//! see [`session`]. Readers see everything but secrets, operators act (check, renew, silence,
//! run an audit or a job), admins also reveal and revoke. Every form carries a CSRF token bound
//! to the session and is refused from another origin. Every answer carries a Content-Security-
//! Policy without inline script, `frame-ancestors 'none'`, and no caching.

mod pages;
pub mod session;

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};

use crate::state::AppState;

/// The policy of every dashboard page: scripts, styles and images only from here, no frames.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// The dashboard's routes, to merge into the application router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/tokens", get(pages::tokens))
        .route("/tokens/{alias}", get(pages::token))
        .route("/tokens/{alias}/check", post(pages::check))
        .route("/tokens/{alias}/renew", post(pages::renew))
        .route("/tokens/{alias}/revoke", post(pages::revoke))
        .route("/tokens/{alias}/reveal", post(pages::reveal))
        .route("/usage", get(pages::usage))
        .route("/alerts", get(pages::alerts))
        .route("/silences", post(pages::silence))
        .route("/silences/{id}/expire", post(pages::expire_silence))
        .route("/audits", get(pages::audits))
        .route("/audits/run", post(pages::run_audit))
        .route("/audits/{id}", get(pages::audit))
        .route("/audits/{id}/report.html", get(pages::audit_report))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{name}/run", post(pages::run_job))
        .route("/assets/{*file}", get(asset))
        .layer(axum::middleware::map_response(secure_headers))
}

/// Security headers on every dashboard answer (a page may set a stricter or looser CSP itself,
/// as the downloadable audit report does).
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: with no referrer at all, Chromium sends `Origin: null`
    // on form posts, and the same-origin check could not tell them from a forged one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn asset(Path(file): Path<String>) -> Response {
    let Some(found) = Assets::get(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mime = match file.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, mime)], found.data.into_owned()).into_response()
}
