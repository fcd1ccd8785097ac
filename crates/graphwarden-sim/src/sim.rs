//! The simulator's core: state behind one lock, requests in and responses out, independent of
//! HTTP so that batch items and tests go through exactly the same code as network calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use graphwarden_core::Clock;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::error::GraphError;
use crate::fault::Fault;
use crate::usage::Usage;
use crate::world::{Invalidation, Token, TokenKind, World};

/// The simulator's clock: a base clock plus an offset the control API moves. With the system
/// clock as base it runs in real time; with a `ManualClock` it stands still until told.
#[derive(Debug)]
pub struct SimClock {
    base: Arc<dyn Clock>,
    offset_ms: AtomicI64,
}

impl SimClock {
    pub fn new(base: Arc<dyn Clock>) -> Self {
        Self {
            base,
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn set(&self, at: Timestamp) {
        let offset = at.as_millisecond() - self.base.now_ms();
        self.offset_ms.store(offset, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let ms = self.base.now_ms() + self.offset_ms.load(Ordering::SeqCst);
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
    }
}

/// A Graph call, after the HTTP layer took it apart.
#[derive(Debug, Clone, Default)]
pub struct SimRequest {
    /// Upper-case HTTP method.
    pub method: String,
    /// The path without the version prefix, e.g. `/me/accounts`.
    pub path: String,
    /// `v26.0` when the call named one.
    pub version: Option<String>,
    /// Query and body parameters together.
    pub params: BTreeMap<String, String>,
    /// A token from `Authorization: Bearer|OAuth …`.
    pub bearer: Option<String>,
}

impl SimRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn access_token(&self) -> Option<&str> {
        self.param("access_token").or(self.bearer.as_deref())
    }
}

/// What the simulator answers.
#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Html(String),
    /// A redirect: the `Location`.
    Redirect(String),
}

#[derive(Debug, Clone)]
pub struct SimResponse {
    pub status: u16,
    pub body: Body,
    pub headers: Vec<(String, String)>,
}

impl SimResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }

    pub fn body_text(&self) -> String {
        match &self.body {
            Body::Json(v) => v.to_string(),
            Body::Html(h) => h.clone(),
            Body::Redirect(_) => String::new(),
        }
    }
}

/// One entry of the call log (`GET /__sim/calls`).
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub version: Option<String>,
    /// The parameter names sent (values left out: they may be tokens).
    pub params: Vec<String>,
    pub status: u16,
    pub error_code: Option<i64>,
    pub error_subcode: Option<i64>,
    /// The app the call was charged to, when known.
    pub app_id: Option<String>,
    pub in_batch: bool,
}

/// An authorization code from the login dialog (§3.2): single use, bound to its `redirect_uri`.
#[derive(Debug, Clone, Serialize)]
pub struct AuthCode {
    pub app_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub used: bool,
    pub expires_at_ms: i64,
}

const CALL_LOG_CAPACITY: usize = 10_000;

/// Everything that changes, behind one lock.
#[derive(Debug, Default)]
pub struct State {
    pub world: World,
    pub codes: HashMap<String, AuthCode>,
    pub usage: Usage,
    pub faults: Vec<Fault>,
    pub calls: VecDeque<CallRecord>,
    /// Token string → index in `world.tokens`, rebuilt when the token list changes shape.
    index: HashMap<String, usize>,
}

impl State {
    pub fn new(world: World) -> Self {
        let mut state = Self {
            world,
            ..Self::default()
        };
        state.reindex();
        state
    }

    pub fn reindex(&mut self) {
        self.index = self
            .world
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.token.clone(), i))
            .collect();
    }

    pub fn token_index(&self, token: &str) -> Option<usize> {
        self.index.get(token).copied()
    }

    pub fn add_token(&mut self, token: Token) -> usize {
        let i = self.world.tokens.len();
        self.index.insert(token.token.clone(), i);
        self.world.tokens.push(token);
        i
    }

    pub fn log_call(&mut self, record: CallRecord) {
        if self.calls.len() >= CALL_LOG_CAPACITY {
            self.calls.pop_front();
        }
        self.calls.push_back(record);
    }
}

/// Who is calling: the resolved `access_token`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Index into `world.tokens`; `None` for a literal `app_id|app_secret`.
    pub token_index: Option<usize>,
    pub token: String,
    pub kind: TokenKind,
    pub app_id: String,
    pub user_id: Option<String>,
    pub page_id: Option<String>,
    pub system_user_id: Option<String>,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.kind == TokenKind::App || self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token does not work, as debug_token and API calls report it (§2.3, §7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub subcode: Option<i64>,
    pub message: String,
    /// Whether a plain API call reports the subcode. Expiry famously does not (§7.1).
    pub subcode_on_calls: bool,
}

/// Meta's wording of a time in the expiry message: `Wednesday, 16-Nov-22 07:45:51 PST`.
fn meta_time(secs: i64) -> String {
    Timestamp::from_second(secs)
        .ok()
        .and_then(|t| t.in_tz("America/Los_Angeles").ok())
        .map(|z| z.strftime("%A, %d-%b-%y %H:%M:%S %Z").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// What is wrong with `token` at `now_secs`, if anything.
pub fn token_problem(world: &World, token: &Token, now_secs: i64) -> Option<Problem> {
    let dead = |subcode: i64, message: String| {
        Some(Problem {
            subcode: Some(subcode),
            message,
            subcode_on_calls: true,
        })
    };
    if let Some(invalidation) = token.invalidated {
        return match invalidation {
            Invalidation::PasswordChanged => dead(
                460,
                "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons.".into(),
            ),
            Invalidation::Deauthorized => dead(
                458,
                format!("Error validating access token: The user has not authorized application {}.", token.app_id),
            ),
            Invalidation::Revoked => dead(
                466,
                "Error validating access token: The session was invalidated explicitly using an API call.".into(),
            ),
            Invalidation::RoleLost => dead(
                492,
                "Error validating access token: The session is invalid because the user does not have an appropriate role on the Page.".into(),
            ),
            Invalidation::Checkpoint => dead(
                459,
                "Error validating access token: You cannot access the app till you log in to www.facebook.com and follow the instructions given.".into(),
            ),
            Invalidation::AppSecretReset => Some(Problem {
                subcode: None,
                message: "Invalid OAuth access token signature.".into(),
                subcode_on_calls: false,
            }),
        };
    }
    let user = token.user_id.as_deref().and_then(|u| world.user(u));
    if token.kind != TokenKind::App
        && token.kind != TokenKind::SystemUser
        && let Some(user) = user
    {
        if user.checkpointed {
            return dead(
                459,
                "Error validating access token: You cannot access the app till you log in to www.facebook.com and follow the instructions given.".into(),
            );
        }
        if !user.apps.iter().any(|a| a.app_id == token.app_id) {
            return dead(
                458,
                format!(
                    "Error validating access token: The user has not authorized application {}.",
                    token.app_id
                ),
            );
        }
    }
    if token.kind == TokenKind::Page
        && let (Some(page_id), Some(user_id)) = (&token.page_id, &token.user_id)
    {
        let has_role = world
            .page(page_id)
            .is_some_and(|p| p.roles.iter().any(|r| &r.user_id == user_id));
        if !has_role {
            return dead(
                492,
                "Error validating access token: The session is invalid because the user does not have an appropriate role on the Page.".into(),
            );
        }
    }
    if token.expires_at != 0 && now_secs >= token.expires_at {
        return Some(Problem {
            subcode: Some(463),
            message: format!(
                "Error validating access token: Session has expired on {}. The current time is {}.",
                meta_time(token.expires_at),
                meta_time(now_secs)
            ),
            subcode_on_calls: false,
        });
    }
    None
}

/// `appsecret_proof` (§5): lower-case hex HMAC-SHA256 of the token (or `token|time`) under the
/// app secret.
pub fn appsecret_proof(app_secret: &str, message: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(app_secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Resolve the caller's token and check its proof.
pub fn authenticate(st: &State, req: &SimRequest, now_secs: i64) -> Result<Caller, GraphError> {
    let token = req.access_token().ok_or_else(GraphError::token_required)?;
    let caller = resolve(st, token, now_secs)?;
    check_proof(st, req, &caller, now_secs)?;
    Ok(caller)
}

/// Resolve a token string to a caller, refusing dead and unknown tokens as API calls do.
pub fn resolve(st: &State, token: &str, now_secs: i64) -> Result<Caller, GraphError> {
    // Minted app tokens (`client_credentials`) are `id|…` too: look them up first.
    if st.token_index(token).is_none()
        && let Some((app_id, secret)) = token.split_once('|')
    {
        let app = st.world.app(app_id).ok_or_else(|| {
            GraphError::new(
                400,
                190,
                "OAuthException",
                "Error validating application. Cannot get application info due to a system error.",
            )
        })?;
        if !constant_time_eq(&app.secret, secret) {
            return Err(GraphError::new(
                400,
                190,
                "OAuthException",
                "Invalid OAuth access token signature.",
            ));
        }
        return Ok(Caller {
            token_index: None,
            token: token.to_owned(),
            kind: TokenKind::App,
            app_id: app.id.clone(),
            user_id: None,
            page_id: None,
            system_user_id: None,
            scopes: Vec::new(),
        });
    }
    let index = st
        .token_index(token)
        .ok_or_else(GraphError::cannot_parse_token)?;
    let t = &st.world.tokens[index];
    if let Some(problem) = token_problem(&st.world, t, now_secs) {
        let mut err = GraphError::new(400, 190, "OAuthException", problem.message);
        if problem.subcode_on_calls {
            err.subcode = problem.subcode;
        }
        return Err(err);
    }
    Ok(Caller {
        token_index: Some(index),
        token: token.to_owned(),
        kind: t.kind,
        app_id: t.app_id.clone(),
        user_id: t.user_id.clone(),
        page_id: t.page_id.clone(),
        system_user_id: t.system_user_id.clone(),
        scopes: t.scopes.clone(),
    })
}

/// §5: a proof, when sent, must match (classic, or timed within five minutes); when the app
/// requires one, it must be sent.
pub fn check_proof(
    st: &State,
    req: &SimRequest,
    caller: &Caller,
    now_secs: i64,
) -> Result<(), GraphError> {
    let Some(app) = st.world.app(&caller.app_id) else {
        return Ok(());
    };
    match req.param("appsecret_proof") {
        Some(proof) => {
            let expected = match req.param("appsecret_time") {
                Some(time) => {
                    let t: i64 = time.parse().map_err(|_| GraphError::proof_invalid())?;
                    if (now_secs - t).abs() > 300 {
                        return Err(GraphError::proof_invalid());
                    }
                    appsecret_proof(&app.secret, &format!("{}|{t}", caller.token))
                }
                None => appsecret_proof(&app.secret, &caller.token),
            };
            if constant_time_eq(&expected, &proof.to_ascii_lowercase()) {
                Ok(())
            } else {
                Err(GraphError::proof_invalid())
            }
        }
        None if app.require_app_secret => Err(GraphError::proof_required()),
        None => Ok(()),
    }
}

/// A lock on the state that does not give up if a previous holder panicked (the state is plain
/// data; a half-finished change is the worst case, and a simulator keeps serving).
pub fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_matches_the_reference_vectors() {
        assert_eq!(
            appsecret_proof("foo_app_secret", "foo_token"),
            "857d5f035a894f16b4180f19966e055cdeab92d4d53017b13dccd6d43b6497af"
        );
        assert_eq!(
            appsecret_proof("foo_app_secret", "foo_token|1700000000"),
            "a53b3cdf822ede8ad6f3cbc825d833757fa8ad3b99a9c9ac6ed6aeae17c605fb"
        );
        assert_eq!(
            appsecret_proof("key", "value"),
            "90fbfcf15e74a36b89dbdb2a721d9aecffdfdddc5c83e27f7592594f71932481"
        );
    }

    #[test]
    fn expiry_message_is_in_meta_words() {
        let text = meta_time(1_668_613_551);
        assert_eq!(text, "Wednesday, 16-Nov-22 07:45:51 PST");
    }
}
