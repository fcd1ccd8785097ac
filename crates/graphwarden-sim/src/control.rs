//! The control API under `/__sim/` (enabled in tests, the demo, and `graphwarden sim --control`):
//! the clock, the scenario, account events (password change, de-authorization with a real
//! signed `signed_request` POST, a data-deletion request likewise, app-secret reset, permission
//! removal, page-role loss, checkpoint), faults, the call log, usage, minting tokens, and the
//! login dialog's answer.
//!
//! The simulator signs its own callbacks (§6.2) with a few lines of `hmac` rather than use
//! `graphwarden-meta`: the dependency arrow points from graphwarden to the simulator, never back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use graphwarden_core::Clock;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Simulator;
use crate::fault::Fault;
use crate::graph;
use crate::world::{GranularScope, Invalidation, Token, TokenKind, World, mint_token, random_hex};

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn bad(message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(400, json!({ "error": message.into() }))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("the body is not the expected JSON: {e}"))
}

pub async fn handle(
    sim: &Simulator,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if !sim.control_enabled() {
        return reply(
            404,
            json!({ "error": "the control API is off; start the simulator with --control" }),
        );
    }
    let rest = path.trim_start_matches("/__sim").trim_matches('/');
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        ("GET", ["clock"]) => clock_reply(sim),
        ("POST", ["clock"]) => set_clock(sim, body),
        ("GET", ["scenario"]) => reply(
            200,
            serde_json::to_value(sim.world()).unwrap_or(Value::Null),
        ),
        ("PUT" | "POST", ["scenario"]) => load_scenario(sim, body),
        ("GET", ["summary"]) => reply(200, sim.summary()),
        ("POST", ["events", kind]) => event(sim, kind, body).await,
        ("GET", ["faults"]) => reply(
            200,
            serde_json::to_value(&sim.state().faults).unwrap_or(Value::Null),
        ),
        ("PUT" | "POST", ["faults"]) => add_faults(sim, body),
        ("DELETE", ["faults"]) => {
            sim.state().faults.clear();
            reply(200, json!({ "faults": [] }))
        }
        ("GET", ["calls"]) => {
            let limit: usize = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "limit")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(1000);
            let calls = sim.calls();
            let start = calls.len().saturating_sub(limit);
            reply(
                200,
                serde_json::to_value(&calls[start..]).unwrap_or(Value::Null),
            )
        }
        ("DELETE", ["calls"]) => {
            sim.state().calls.clear();
            reply(200, json!({ "calls": [] }))
        }
        ("GET", ["usage"]) => {
            let now = sim.clock().now_ms();
            reply(200, sim.state().usage.snapshot(now))
        }
        ("DELETE", ["usage"]) => {
            sim.state().usage.clear();
            reply(200, json!({ "usage": "cleared" }))
        }
        ("POST", ["tokens"]) => mint(sim, body),
        ("PUT" | "POST", ["dialog"]) => dialog(sim, body),
        _ => reply(
            404,
            json!({ "error": format!("no control route {method} {path}") }),
        ),
    }
}

fn clock_reply(sim: &Simulator) -> Response<Full<Bytes>> {
    let now = sim.clock().now();
    reply(
        200,
        json!({ "now": now.to_string(), "unix": now.as_second() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockChange {
    /// An RFC 3339 time or Unix seconds.
    set: Option<Value>,
    /// Seconds, or a duration such as `60d`, `12h`, `90s`.
    advance: Option<Value>,
}

fn set_clock(sim: &Simulator, body: &[u8]) -> Response<Full<Bytes>> {
    let change: ClockChange = match parse(body) {
        Ok(c) => c,
        Err(r) => return bad(r),
    };
    if let Some(set) = change.set {
        let at = match &set {
            Value::String(s) => s.parse::<Timestamp>().map_err(|e| e.to_string()),
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| "not an integer".to_owned())
                .and_then(|s| Timestamp::from_second(s).map_err(|e| e.to_string())),
            _ => Err("expected a time".to_owned()),
        };
        match at {
            Ok(at) => sim.clock().set(at),
            Err(e) => return bad(format!("`set`: {e}")),
        }
    }
    if let Some(advance) = change.advance {
        let ms = match &advance {
            Value::Number(n) => n.as_f64().map(|s| (s * 1000.0) as i64),
            Value::String(s) => graphwarden_core::duration::parse_duration(s)
                .ok()
                .and_then(|d| i64::try_from(d.as_millis()).ok()),
            _ => None,
        };
        match ms {
            Some(ms) => sim.clock().advance_ms(ms),
            None => return bad("`advance`: seconds, or a duration such as `60d`"),
        }
    }
    clock_reply(sim)
}

fn load_scenario(sim: &Simulator, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(text) = std::str::from_utf8(body) else {
        return bad("the scenario is not UTF-8 text");
    };
    let mut world = match World::parse(text) {
        Ok(w) => w,
        Err(e) => return bad(e),
    };
    // Check everything before changing anything: a refused scenario leaves clock and world be.
    let at = match world.now.take().map(|now| now.parse::<Timestamp>()) {
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => return bad(format!("scenario `now`: {e}")),
        None => None,
    };
    let load_time = at.map_or_else(|| sim.clock().now().as_second(), |t| t.as_second());
    if let Err(e) = world.normalise(load_time) {
        return bad(e);
    }
    {
        let mut st = sim.state();
        if let Some(at) = at {
            sim.clock().set(at);
        }
        *st = crate::sim::State::new(world);
    }
    reply(200, sim.summary())
}

fn add_faults(sim: &Simulator, body: &[u8]) -> Response<Full<Bytes>> {
    let faults: Vec<Fault> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => match serde_json::from_value(Value::Array(items)) {
            Ok(f) => f,
            Err(e) => return bad(format!("faults: {e}")),
        },
        Ok(one) => match serde_json::from_value(one) {
            Ok(f) => vec![f],
            Err(e) => return bad(format!("fault: {e}")),
        },
        Err(e) => return bad(format!("faults: {e}")),
    };
    let mut st = sim.state();
    st.faults.extend(faults);
    reply(200, serde_json::to_value(&st.faults).unwrap_or(Value::Null))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct EventBody {
    user_id: Option<String>,
    app_id: Option<String>,
    page_id: Option<String>,
    permission: Option<String>,
    /// `deauthorize` only: wait for the callback's answer instead of sending it in the
    /// background.
    wait: bool,
}

/// How long a callback may take (Meta's own limit is not documented).
const CALLBACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most of a callback's answer that a control reply repeats.
const CALLBACK_BODY_LIMIT: usize = 64 * 1024;

/// POST `signed_request=…` as a form to `url` (§6.2) and read the answer: the status and the
/// body, as JSON when it is JSON.
async fn post_callback(
    http: &reqwest::Client,
    url: &str,
    signed: &str,
) -> Result<(u16, Value), String> {
    let response = http
        .post(url)
        .timeout(CALLBACK_TIMEOUT)
        .form(&[("signed_request", signed)])
        .send()
        .await
        .map_err(callback_error)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(callback_error)?;
    let bytes = &bytes[..bytes.len().min(CALLBACK_BODY_LIMIT)];
    let body = serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
    Ok((status, body))
}

fn callback_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", CALLBACK_TIMEOUT.as_secs())
    } else {
        // The chain names the cause (refused, reset, DNS); the URL is reported beside it.
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// The callback's outcome as a control reply shows it.
fn callback_outcome(url: &str, result: Result<(u16, Value), String>) -> Value {
    match result {
        Ok((status, body)) => json!({ "url": url, "status": status, "body": body }),
        Err(error) => json!({ "url": url, "error": error }),
    }
}

/// Send a callback without holding up the control call; the outcome goes to the log.
fn spawn_callback(http: reqwest::Client, event: &'static str, url: String, signed: String) {
    tokio::spawn(async move {
        match post_callback(&http, &url, &signed).await {
            Ok((status, _)) => {
                tracing::info!(%url, status, "The `{event}` callback answered HTTP {status}.");
            }
            Err(error) => {
                tracing::warn!(%url, %error, "The `{event}` callback failed: {error}.");
            }
        }
    });
}

/// `signed_request` (§6.2): base64url(HMAC-SHA256(secret, payload segment)) `.` base64url(JSON).
pub fn signed_request(secret: &str, payload: &Value) -> String {
    let payload_b64 = URL_SAFE_NO_PAD.encode(payload.to_string());
    let sig = match <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(payload_b64.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{sig}.{payload_b64}")
}

async fn event(sim: &Simulator, kind: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let e: EventBody = if body.is_empty() {
        EventBody::default()
    } else {
        match parse(body) {
            Ok(e) => e,
            Err(r) => return bad(r),
        }
    };
    let need =
        |v: &Option<String>, name: &str| v.clone().ok_or_else(|| format!("`{name}` is required"));
    let now = sim.clock().now().as_second();
    match kind {
        "password_change" => {
            let user = match need(&e.user_id, "user_id") {
                Ok(u) => u,
                Err(r) => return bad(r),
            };
            let mut st = sim.state();
            if st.world.user(&user).is_none() {
                return bad(format!("no user `{user}`"));
            }
            let mut n = 0;
            for t in &mut st.world.tokens {
                if t.user_id.as_deref() == Some(user.as_str())
                    && matches!(t.kind, TokenKind::User | TokenKind::Page)
                    && t.invalidated.is_none()
                {
                    t.invalidated = Some(Invalidation::PasswordChanged);
                    n += 1;
                }
            }
            reply(200, json!({ "event": kind, "tokens_invalidated": n }))
        }
        "checkpoint" => {
            let user = match need(&e.user_id, "user_id") {
                Ok(u) => u,
                Err(r) => return bad(r),
            };
            let mut st = sim.state();
            match st.world.user_mut(&user) {
                Some(u) => u.checkpointed = true,
                None => return bad(format!("no user `{user}`")),
            }
            // Passing the checkpoint does not revive them: the user needs a new token (§7.3).
            for t in &mut st.world.tokens {
                if t.user_id.as_deref() == Some(user.as_str())
                    && matches!(t.kind, TokenKind::User | TokenKind::Page)
                    && t.invalidated.is_none()
                {
                    t.invalidated = Some(Invalidation::Checkpoint);
                }
            }
            reply(200, json!({ "event": kind, "user_id": user }))
        }
        "page_role_loss" => {
            let (user, page) = match (need(&e.user_id, "user_id"), need(&e.page_id, "page_id")) {
                (Ok(u), Ok(p)) => (u, p),
                (Err(r), _) | (_, Err(r)) => return bad(r),
            };
            let mut st = sim.state();
            match st.world.pages.iter_mut().find(|p| p.id == page) {
                Some(p) => p.roles.retain(|r| r.user_id != user),
                None => return bad(format!("no page `{page}`")),
            }
            reply(
                200,
                json!({ "event": kind, "user_id": user, "page_id": page }),
            )
        }
        "permission_removal" => {
            let (user, app, permission) = match (
                need(&e.user_id, "user_id"),
                need(&e.app_id, "app_id"),
                need(&e.permission, "permission"),
            ) {
                (Ok(u), Ok(a), Ok(p)) => (u, a, p),
                (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return bad(r),
            };
            graph::remove_permission(&mut sim.state(), &user, &app, &permission);
            reply(
                200,
                json!({ "event": kind, "user_id": user, "app_id": app, "permission": permission }),
            )
        }
        "app_secret_reset" => {
            let app = match need(&e.app_id, "app_id") {
                Ok(a) => a,
                Err(r) => return bad(r),
            };
            let mut st = sim.state();
            let secret = random_hex(16);
            match st.world.app_mut(&app) {
                Some(a) => a.secret = secret.clone(),
                None => return bad(format!("no app `{app}`")),
            }
            for t in &mut st.world.tokens {
                if t.app_id == app && t.kind == TokenKind::App {
                    t.invalidated = Some(Invalidation::AppSecretReset);
                }
            }
            reply(
                200,
                json!({ "event": kind, "app_id": app, "secret": secret }),
            )
        }
        "deauthorize" => {
            let (user, app) = match (need(&e.user_id, "user_id"), need(&e.app_id, "app_id")) {
                (Ok(u), Ok(a)) => (u, a),
                (Err(r), _) | (_, Err(r)) => return bad(r),
            };
            let (callback, secret) = {
                let mut st = sim.state();
                let Some(a) = st.world.app(&app).cloned() else {
                    return bad(format!("no app `{app}`"));
                };
                graph::deauthorize(&mut st, &user, &app);
                (a.deauthorize_callback_url, a.secret)
            };
            // §6.3: a form with one field, `signed_request`. The event does not wait for the app
            // unless asked to: a slow or dead endpoint must not hold up a test or a script.
            let mut result =
                json!({ "event": kind, "user_id": user, "app_id": app, "callback": Value::Null });
            if let Some(url) = callback {
                let signed = signed_request(
                    &secret,
                    &json!({ "algorithm": "HMAC-SHA256", "issued_at": now, "user_id": user }),
                );
                result["callback"] = if e.wait {
                    callback_outcome(&url, post_callback(sim.http(), &url, &signed).await)
                } else {
                    spawn_callback(sim.http().clone(), "deauthorize", url.clone(), signed);
                    json!({ "url": url, "delivery": "background" })
                };
            }
            reply(200, result)
        }
        "data_deletion" => {
            let (user, app) = match (need(&e.user_id, "user_id"), need(&e.app_id, "app_id")) {
                (Ok(u), Ok(a)) => (u, a),
                (Err(r), _) | (_, Err(r)) => return bad(r),
            };
            let Some(a) = sim.state().world.app(&app).cloned() else {
                return bad(format!("no app `{app}`"));
            };
            // §6.4: the answer should be `{url, confirmation_code}`; the caller sees it as sent.
            // Meta's example payload carries `expires` an hour after `issued_at`.
            let mut result =
                json!({ "event": kind, "user_id": user, "app_id": app, "callback": Value::Null });
            if let Some(url) = a.data_deletion_callback_url {
                let signed = signed_request(
                    &a.secret,
                    &json!({
                        "algorithm": "HMAC-SHA256",
                        "expires": now + 3600,
                        "issued_at": now,
                        "user_id": user,
                    }),
                );
                let outcome = post_callback(sim.http(), &url, &signed).await;
                match &outcome {
                    Ok((status, _)) => tracing::info!(
                        %url,
                        status,
                        "The `data_deletion` callback answered HTTP {status}."
                    ),
                    Err(error) => {
                        tracing::warn!(%url, %error, "The `data_deletion` callback failed: {error}.");
                    }
                }
                result["callback"] = callback_outcome(&url, outcome);
            }
            reply(200, result)
        }
        other => bad(format!(
            "unknown event `{other}`; use password_change, deauthorize, data_deletion, app_secret_reset, permission_removal, page_role_loss or checkpoint"
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest {
    #[serde(default)]
    kind: TokenKind,
    app_id: String,
    user_id: Option<String>,
    page_id: Option<String>,
    system_user_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    granular_scopes: Vec<GranularScope>,
    /// Seconds from now; 0 = never.
    #[serde(default)]
    expires_in: i64,
    #[serde(default)]
    long_lived: bool,
    #[serde(default)]
    label: String,
}

fn mint(sim: &Simulator, body: &[u8]) -> Response<Full<Bytes>> {
    let m: MintRequest = match parse(body) {
        Ok(m) => m,
        Err(r) => return bad(r),
    };
    let now = sim.clock().now().as_second();
    let mut st = sim.state();
    if st.world.app(&m.app_id).is_none() {
        return bad(format!("no app `{}`", m.app_id));
    }
    let token = Token {
        token: mint_token(),
        label: m.label,
        kind: m.kind,
        app_id: m.app_id,
        user_id: m.user_id,
        page_id: m.page_id,
        system_user_id: m.system_user_id,
        issued_at: now,
        expires_at: if m.expires_in > 0 {
            now + m.expires_in
        } else {
            0
        },
        data_access_expires_at: (m.kind != TokenKind::App)
            .then_some(now + crate::world::DATA_ACCESS_SECS),
        long_lived: m.long_lived || m.expires_in == 0,
        scopes: m.scopes,
        granular_scopes: m.granular_scopes,
        parent: None,
        invalidated: None,
    };
    let text = token.token.clone();
    st.add_token(token);
    reply(200, json!({ "access_token": text }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DialogSetting {
    approves: bool,
    user_id: Option<String>,
}

fn dialog(sim: &Simulator, body: &[u8]) -> Response<Full<Bytes>> {
    let d: DialogSetting = match parse(body) {
        Ok(d) => d,
        Err(r) => return bad(r),
    };
    let mut st = sim.state();
    st.world.dialog_approves = d.approves;
    if d.user_id.is_some() {
        st.world.dialog_user = d.user_id;
    }
    reply(
        200,
        json!({ "approves": st.world.dialog_approves, "user_id": st.world.dialog_user }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_request_matches_the_reference_vector() {
        // §6.2 vector 2: secret `key`, no padding.
        let payload = "eyJ1c2VyX2lkIjoiMCIsImFsZ29yaXRobSI6IkhNQUMtU0hBMjU2IiwiaXNzdWVkX2F0IjoxNjI0MjQ0MTU2fQ";
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"key").unwrap();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, "Mf_s6nTb38UYqioBmPqu0Ewm9souPZB9I2fIGwV729U");
        let ours = signed_request("key", &json!({ "user_id": "0" }));
        let (s, p) = ours.split_once('.').unwrap();
        let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        assert_eq!(decoded["user_id"], "0");
        assert_eq!(s.len(), 43);
    }
}
