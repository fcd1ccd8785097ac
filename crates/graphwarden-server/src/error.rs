//! The one error type of the API, its wire shape `{code, message, request_id}`, and the request
//! id every response carries.
//!
//! A 5xx never shows internal text: the detail is logged once, here, with the request id, and
//! the caller gets the id to quote.

use axum::Json;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use graphwarden_store::StoreError;
use http::{HeaderValue, StatusCode};
use rand::RngCore as _;
use serde::Serialize;
use utoipa::ToSchema;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `invalid_input`, `conflict`, `rate_limited`, `payload_too_large`, `timeout`,
    /// `unavailable`, `internal`.
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// Quote this when reporting a problem: the server's log lines carry it too.
    pub request_id: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer KEY` (make one with `graphwarden apikey create`)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// An unexpected failure: logged here with its detail, answered without it.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), "The request failed: {detail}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "graphwarden could not complete the request; the server log has the details under this request id",
        )
    }
}

/// The id of the request being handled (empty outside one).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            request_id: current_request_id(),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"graphwarden\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::InvalidInput(_) => Self::invalid(e.to_string()),
            StoreError::DuplicateToken { .. }
            | StoreError::AliasTaken { .. }
            | StoreError::NameTaken { .. }
            | StoreError::AppExists { .. }
            | StoreError::AppInUse { .. }
            | StoreError::ConcurrentChange { .. } => Self::conflict(e.to_string()),
            StoreError::Locked | StoreError::Unavailable { .. } => {
                tracing::warn!(request_id = %current_request_id(), "The store is unavailable: {e}");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is busy or unreachable; try again shortly",
                )
            }
            _ => Self::internal(e),
        }
    }
}

/// Give every request an id (the caller's `x-request-id` when it is short and printable, else
/// a new one), make it available to errors and logs, and echo it on the response. Answers that
/// tower layers produce without a body (408 time-out, 413 too large) get the JSON shape too.
pub async fn with_request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            rand::thread_rng().fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    REQUEST_ID
        .scope(id.clone(), async move {
            let mut response = next.run(request).await;
            // Bodies axum or tower made (none, or plain text) get our JSON shape; pages and
            // JSON made by handlers are left as they are.
            let plain_or_none = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
            if plain_or_none {
                let plain = match response.status() {
                    StatusCode::REQUEST_TIMEOUT => Some(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "timeout",
                        "the request took too long and was stopped",
                    )),
                    StatusCode::PAYLOAD_TOO_LARGE => Some(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is larger than this server accepts",
                    )),
                    StatusCode::METHOD_NOT_ALLOWED => Some(ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "this path does not take that method",
                    )),
                    StatusCode::NOT_FOUND => Some(ApiError::not_found("no such path")),
                    // axum's own rejections of a malformed body or query: keep their words.
                    StatusCode::BAD_REQUEST
                    | StatusCode::UNSUPPORTED_MEDIA_TYPE
                    | StatusCode::UNPROCESSABLE_ENTITY => {
                        let status = response.status();
                        let body = std::mem::take(response.body_mut());
                        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
                        let text = String::from_utf8_lossy(&text).trim().to_owned();
                        let message = if text.is_empty() {
                            "the request is malformed".to_owned()
                        } else {
                            text
                        };
                        Some(ApiError::new(status, "invalid_input", message))
                    }
                    _ => None,
                };
                if let Some(e) = plain {
                    response = e.into_response();
                }
            }
            tracing::debug!(%method, %path, status = response.status().as_u16(), "Answered a request.");
            if let Ok(v) = HeaderValue::from_str(&current_request_id()) {
                response.headers_mut().insert(REQUEST_ID_HEADER, v);
            }
            response
        })
        .await
}
