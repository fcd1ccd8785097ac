//! The HTTP side: an accept loop on hyper (so a fault can drop a connection outright), request
//! parsing into [`SimRequest`], faults, and the control API's mount point.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Simulator;
use crate::control;
use crate::error::GraphError;
use crate::fault::{self, FaultKind};
use crate::sim::{Body, SimRequest, SimResponse};

/// Bodies larger than this are refused (Graph calls are small; a batch of 50 fits easily).
const MAX_BODY: usize = 1024 * 1024;

/// Returned instead of a response to make hyper close the connection unanswered.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

pub async fn serve(
    sim: Arc<Simulator>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors and the like: breathe, then keep serving.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let sim = Arc::clone(&sim);
        let builder = builder.clone();
        let mut conn_shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let sim = Arc::clone(&sim);
                async move { handle_http(sim, req).await }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = conn_shutdown.changed() => {}
            }
        });
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// `/v26.0/me` → (`Some("v26.0")`, `/me`).
pub fn split_version(path: &str) -> (Option<String>, String) {
    let trimmed = path.trim_start_matches('/');
    let (first, rest) = match trimmed.split_once('/') {
        Some((f, r)) => (f, format!("/{r}")),
        None => (trimmed, "/".to_owned()),
    };
    let is_version = first.len() > 1
        && first.starts_with('v')
        && first[1..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if is_version {
        (Some(first.to_owned()), rest)
    } else {
        (None, format!("/{trimmed}"))
    }
}

pub fn parse_form(text: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// A JSON body's fields as parameters: strings as they are, anything else as JSON text (how
/// the Node SDK sends POST parameters).
fn parse_json_params(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = serde_json::from_slice::<Value>(bytes).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
    )
}

fn json_response(status: u16, body: &Value, headers: &[(String, String)]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    response
}

fn to_http(r: SimResponse) -> Response<Full<Bytes>> {
    match r.body {
        Body::Json(v) => json_response(r.status, &v, &r.headers),
        Body::Html(html) => {
            let mut response = Response::new(Full::new(Bytes::from(html)));
            *response.status_mut() =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Body::Redirect(location) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response
        }
    }
}

fn graph_error(e: &GraphError) -> Response<Full<Bytes>> {
    json_response(e.http_status, &e.body("sim"), &e.headers)
}

async fn handle_http(
    sim: Arc<Simulator>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();

    if path == "/__sim" || path.starts_with("/__sim/") {
        let bytes = match Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return Ok(graph_error(&GraphError::invalid_parameter(
                    "The request body is too large or was cut off",
                )));
            }
        };
        return Ok(control::handle(&sim, parts.method.as_str(), &path, &query, &bytes).await);
    }

    let (version, graph_path) = split_version(&path);
    let fault = {
        let mut st = sim.state();
        fault::take(&mut st.faults, &graph_path)
    };
    if let Some(f) = &fault {
        match f.kind {
            FaultKind::Latency
            | FaultKind::WrongContentType
            | FaultKind::MalformedBody
            | FaultKind::TruncatedBody => {
                if f.latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
                }
            }
            FaultKind::ServerError => {
                if f.latency_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
                }
                return Ok(graph_error(&GraphError::service_unavailable(
                    f.status.unwrap_or(503),
                )));
            }
            FaultKind::Timeout => {
                let wait = if f.latency_ms > 0 {
                    f.latency_ms
                } else {
                    60_000
                };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                return Err(Dropped);
            }
            FaultKind::DropConnection => return Err(Dropped),
        }
        if f.kind == FaultKind::MalformedBody {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"{\"data\": [{\"id\": \"1\", ",
            )));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            );
            return Ok(response);
        }
    }

    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(graph_error(&GraphError::new(
                413,
                100,
                "OAuthException",
                "(#100) The request body is too large",
            )));
        }
    };
    let mut params = parse_form(&query);
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !bytes.is_empty() {
        if content_type.starts_with("application/json") {
            match parse_json_params(&bytes) {
                Some(p) => params.extend(p),
                None => {
                    return Ok(graph_error(&GraphError::invalid_parameter(
                        "The request body is not a JSON object",
                    )));
                }
            }
        } else if content_type.starts_with("multipart/form-data") {
            params.extend(parse_multipart(&content_type, &bytes));
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => params.extend(parse_form(text)),
                Err(_) => {
                    return Ok(graph_error(&GraphError::invalid_parameter(
                        "The request body is not valid form data",
                    )));
                }
            }
        }
    }
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(|t| t.trim().to_owned());
    let sim_req = SimRequest {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: graph_path,
        version,
        params,
        bearer,
    };
    let response = sim.handle(sim_req);
    let mut http = to_http(response);
    if let Some(f) = fault {
        match f.kind {
            FaultKind::WrongContentType => {
                http.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
            }
            FaultKind::TruncatedBody => {
                // Promise more than is sent: hyper ends the connection when the body runs short.
                let body = http.body().clone();
                let full = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let half = full.slice(..full.len() / 2);
                let promised = full.len().max(1);
                let mut cut = Response::new(Full::new(half));
                *cut.status_mut() = http.status();
                *cut.headers_mut() = http.headers().clone();
                if let Ok(v) = HeaderValue::from_str(&promised.to_string()) {
                    cut.headers_mut().insert(header::CONTENT_LENGTH, v);
                }
                return Ok(cut);
            }
            _ => {}
        }
    }
    Ok(http)
}

/// Text fields of a `multipart/form-data` body (files are not simulated).
fn parse_multipart(content_type: &str, bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(boundary) = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
    else {
        return out;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return out;
    };
    let delimiter = format!("--{boundary}");
    for part in text.split(&delimiter) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .split(';')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("name="))
            .map(|n| n.trim_matches('"').to_owned());
        if let Some(name) = name {
            out.insert(name, value.trim_end_matches("\r\n").to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_split_off() {
        assert_eq!(
            split_version("/v26.0/me"),
            (Some("v26.0".into()), "/me".into())
        );
        assert_eq!(split_version("/me"), (None, "/me".into()));
        assert_eq!(split_version("/v26.0"), (Some("v26.0".into()), "/".into()));
        assert_eq!(split_version("/"), (None, "/".into()));
        assert_eq!(split_version("/vx.0/me"), (None, "/vx.0/me".into()));
        assert_eq!(split_version("/v26/me"), (None, "/v26/me".into()));
    }

    #[test]
    fn multipart_text_fields() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"batch\"\r\n\r\n[1]\r\n--XX\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\nT\r\n--XX--\r\n";
        let fields = parse_multipart("multipart/form-data; boundary=XX", body.as_bytes());
        assert_eq!(fields.get("batch").map(String::as_str), Some("[1]"));
        assert_eq!(fields.get("access_token").map(String::as_str), Some("T"));
    }
}
