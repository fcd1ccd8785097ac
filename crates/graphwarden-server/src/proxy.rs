//! The Graph proxy: what callers point an SDK's base URL at instead of `graph.facebook.com`.
//! Paths are Graph's own; answers are Graph's own, streamed.
//!
//! On the way out it picks the token (the caller's own, or a stored one by alias — see
//! [`credential`]), adds `appsecret_proof` for the token actually sent, and asks the pacer
//! whether the call may go now, later, or not at all (held calls are answered here with a
//! Meta-shaped throttle error and `Retry-After`: they never reach Meta to prolong a block).
//! On the way back it reads the usage headers of every answer (errors and batch items too),
//! feeds them to the pacer and the metrics, decodes Meta's error, starts an inspection when a
//! stored token is refused with 190, and records the call through the batching writer.
//!
//! Bodies: requests stream upstream, except form bodies (read, up to `max_body`, to find the
//! token and the batch) and the JSON bodies of writes (read, up to `max_body`, for the names
//! that say what an update changes, then passed on as they came). Answers stream back, except errors and batches (read, to decode
//! them), and answers to callers that hold no token, which are read so the stored token
//! can be scrubbed out of `paging.next` links. Graph is asked for uncompressed answers so
//! that what is read can be decoded.

pub mod body;
pub mod credential;
pub mod deadline;
pub mod guard;
mod h1;
pub mod recorder;
pub mod upstream;
mod usage_cache;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use graphwarden_core::call::{self, CallRecord, PathInfo};
use graphwarden_core::pacing::{Decision, Pacer, PacingConfig, Refusal, Subject};
use graphwarden_core::usage::Usage;
use graphwarden_core::{Stopwatch, TokenAlias};
use graphwarden_lifecycle::Selection;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use self::body::{BoxError, Observed, Pending, ProxyBody, Read, full, read_up_to};
use self::credential::{CredentialError, Credentials, KEY_PREFIX};
use self::recorder::Recorder;
use self::upstream::{Answer, Outgoing, Upstream};
use crate::state::AppState;

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Graph's base URL (`https://graph.facebook.com`), or a simulator's.
    pub upstream: String,
    /// The stored token used when a caller with a key names none.
    pub default_alias: Option<TokenAlias>,
    pub pacing: PacingConfig,
    /// The longest a held call waits before it is refused.
    pub max_wait: Duration,
    /// Record every call in the database.
    pub record: bool,
    /// The largest form or JSON body read (and request body passed on), in bytes.
    pub max_body: usize,
    /// The largest answer read into memory (errors, batches, answers that must be scrubbed).
    pub max_buffer: usize,
    /// The largest request head (request line and headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// How long Graph may take to start answering.
    pub upstream_timeout: Duration,
    /// How long an answer's body may stall before it is cut off.
    pub idle_timeout: Duration,
    /// Extra attempts for safe methods (GET, HEAD) after a transient failure.
    pub retries: usize,
    /// Send the timed proof (`appsecret_time`) instead of the classic one.
    pub timed_proof: bool,
    /// How long token and key lookups are cached.
    pub cache_ttl: Duration,
    /// Threads serving the proxy, each with its own single-threaded runtime, accept loop and
    /// upstream connection pool, so a call never hops between threads (0: one per core).
    pub workers: usize,
    /// Offer HTTP/2 to Graph (by ALPN, through `hyper_util`'s pooled client) instead of
    /// graphwarden's own pool of HTTP/1.1 connections.
    pub http2: bool,
    /// How often this instance exchanges pacing state with the others on the same database
    /// (zero: never; it then paces on its own answers only). `graphwarden serve` sets zero on
    /// SQLite, where one instance runs.
    pub pacing_sync: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            upstream: "https://graph.facebook.com".to_owned(),
            default_alias: None,
            pacing: PacingConfig::default(),
            max_wait: Duration::from_secs(10),
            record: true,
            max_body: 8 * 1024 * 1024,
            max_buffer: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            upstream_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            retries: 2,
            timed_proof: false,
            cache_ttl: Duration::from_secs(30),
            workers: 0,
            http2: false,
            pacing_sync: Duration::from_secs(1),
        }
    }
}

/// The proxy's workers, for handing connections between them.
struct Peers {
    senders: Vec<tokio::sync::mpsc::UnboundedSender<std::net::TcpStream>>,
    /// Client connections each worker serves (or has been handed).
    loads: Vec<AtomicUsize>,
}

impl Peers {
    /// The worker serving the fewest connections; `me` when it is among them.
    fn least_loaded(&self, me: usize) -> usize {
        let mine = self.loads[me].load(Ordering::Relaxed);
        let mut best = (me, mine);
        for (i, l) in self.loads.iter().enumerate() {
            let l = l.load(Ordering::Relaxed);
            if l < best.1 && !self.senders[i].is_closed() {
                best = (i, l);
            }
        }
        best.0
    }
}

/// One connection counted against a worker while it is open.
struct Load {
    peers: Arc<Peers>,
    worker: usize,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.peers.loads[self.worker].fetch_sub(1, Ordering::Relaxed);
    }
}

/// The proxy's shared state.
pub struct Proxy {
    state: AppState,
    config: ProxyConfig,
    upstream_base: String,
    /// The path of `upstream_base` (empty when it has none), before each call's own.
    upstream_path: String,
    /// `upstream_base` as a JSON string may spell it (`\/` for `/`), for scrubbed answers.
    upstream_base_escaped: String,
    /// Scheme and host of `upstream_base`, where the worker pools connect.
    upstream_uri: Uri,
    /// The upstream's URL has no path of its own: a call whose query is passed on unchanged
    /// then reuses its path and query as they came.
    upstream_is_origin: bool,
    /// The runtime `Proxy::new` ran on: detached work (inspections) goes there, so it outlives
    /// the proxy's own worker threads.
    main: tokio::runtime::Handle,
    pacer: Mutex<Pacer>,
    /// [`Pacer::calm_from`] as of the pacer's last change (see [`Proxy::pace`]): a call reads
    /// it to learn that no key holds or spaces calls, without the pacer's lock.
    calm_from: AtomicI64,
    credentials: Credentials,
    recorder: Mutex<Option<Recorder>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// When an inspection was last started for a token refused by Meta, by alias.
    inspected: Mutex<HashMap<String, Stopwatch>>,
    /// This instance's name in the shared pacing rows.
    instance: String,
}

/// What one worker's calls hold: the proxy, and what belongs to this worker alone (its pool of
/// connections to Graph, its watchdog, its sender of records). A call clones the
/// `Arc<Worker>`, whose count only this worker's thread writes, rather than the `Arc<Proxy>`
/// both workers share: a count both cores write moves its cache line between them each time.
pub(crate) struct Worker {
    proxy: Arc<Proxy>,
    client: Upstream,
    watchdog: Arc<deadline::Watchdog>,
    /// This worker's call records on their way to the writer (`None` when recording is off).
    recorder: Option<recorder::Gathered>,
}

/// The proxy's settings and shared state, read through its workers.
impl std::ops::Deref for Worker {
    type Target = Proxy;
    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// graphwarden's own request headers, never passed on.
static KEY_HEADER: HeaderName = HeaderName::from_static("x-graphwarden-key");
static TOKEN_HEADER: HeaderName = HeaderName::from_static("x-graphwarden-token");

/// Hop-by-hop headers (RFC 9110 §7.6.1), never passed on.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Don't start another inspection of the same token within this.
const INSPECT_DEBOUNCE: Duration = Duration::from_secs(60);

/// Where `name` is in [`HOP_BY_HOP`]. Names are told apart by length first: of the headers
/// calls and answers usually carry, none has the length of a hop-by-hop one but `connection`.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    let text = name.as_str();
    match text.len() {
        2 | 7 | 10 | 16 | 17 | 18 | 19 => HOP_BY_HOP.iter().position(|h| h.as_str() == text),
        _ => None,
    }
}

/// The hop-by-hop headers found in a pass over a message's headers.
#[derive(Debug, Default, Clone, Copy)]
struct HopByHop {
    found: [bool; 9],
    any: bool,
}

impl HopByHop {
    /// Note `name`; whether it is hop-by-hop.
    fn note(&mut self, name: &HeaderName) -> bool {
        match hop_by_hop_index(name) {
            Some(i) => {
                self.found[i] = true;
                self.any = true;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut hop = HopByHop::default();
    for k in headers.keys() {
        hop.note(k);
    }
    strip_found(headers, hop);
}

/// Remove the hop-by-hop headers a pass over `headers` found (usually `connection` at most),
/// and those `Connection` names.
fn strip_found(headers: &mut HeaderMap, hop: HopByHop) {
    let HopByHop { found, any } = hop;
    if !any {
        return;
    }
    if found[0] {
        // The names `Connection` lists go too; `keep-alive` and `close` (the usual ones) are
        // connection options, not names, so they are not parsed as names.
        let option = |v: &[u8]| {
            v.is_empty()
                || v.eq_ignore_ascii_case(b"keep-alive")
                || v.eq_ignore_ascii_case(b"close")
        };
        let mut named: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            if option(value.as_bytes()) {
                continue;
            }
            let Ok(value) = value.to_str() else { continue };
            for n in value.split(',').map(str::trim) {
                if option(n.as_bytes()) {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(n.as_bytes())
                    && hop_by_hop_index(&name).is_none()
                {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
    }
    for (name, found) in HOP_BY_HOP.iter().zip(found) {
        if found {
            headers.remove(name);
        }
    }
}

/// A Meta-shaped error answered by the proxy itself.
fn meta_error(
    status: StatusCode,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    transient: bool,
) -> Response<ProxyBody> {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": transient,
        "fbtrace_id": "graphwarden",
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    let body = json!({ "error": error }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    headers.insert(
        HeaderName::from_static("x-graphwarden-error"),
        HeaderValue::from_static("1"),
    );
    response
}

fn class_name(c: &graphwarden_meta::Classification) -> &'static str {
    use graphwarden_meta::Classification as C;
    match c {
        C::TokenDead { .. } => "token_dead",
        C::NeedsUserAction { .. } => "needs_user_action",
        C::PermissionMissing => "permission_missing",
        C::Throttled { .. } => "throttled",
        C::Transient => "transient",
        C::AppConfiguration => "app_configuration",
        C::BadRequest => "bad_request",
    }
}

/// Meta's error in an answer body, if it holds one: code, subcode, class.
fn decode_error(status: u16, body: &[u8], usage: &Usage) -> Option<(i64, Option<i64>, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = graphwarden_meta::parse::error_envelope(&value)?;
    let class = graphwarden_meta::classify::classify(status, &error, usage);
    Some((error.code, error.subcode, class_name(&class).to_owned()))
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `text` with every `/` written `\/`, as JSON may write it (Graph's paging links do).
fn json_escaped_slashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '/' {
            out.push_str("\\/");
        } else {
            out.push(c);
        }
    }
    out
}

/// `head`, then `&` and `tail` when there is a tail (and a head to separate it from).
fn joined(mut head: String, tail: Option<&str>) -> String {
    if let Some(tail) = tail {
        if !head.is_empty() {
            head.push('&');
        }
        head.push_str(tail);
    }
    head
}

fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The last value of `name` in a query string, decoded (see [`last_pairs`]).
#[cfg(test)]
fn last_param(query: &str, name: &str) -> Option<String> {
    let [pair] = last_pairs(query, [name]);
    pair.map(|p| pair_value(p).into_owned())
}

/// The value of a `name=value` pair, decoded; not copied when it holds no escape.
fn pair_value(pair: &str) -> std::borrow::Cow<'_, str> {
    // `=` is ASCII: the slice after it starts on a character boundary.
    let value = memchr::memchr(b'=', pair.as_bytes())
        .and_then(|i| pair.get(i + 1..))
        .unwrap_or("");
    if memchr::memchr2(b'%', b'+', value.as_bytes()).is_none() {
        return value.into();
    }
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into())
        .unwrap_or_default()
}

/// For each of `names`, the last `name=value` pair of a query string whose name, decoded, is
/// that name; in one pass over the query's bytes. Names are compared as they are unless
/// they hold an escape, so a call's query is not decoded for the few names the proxy
/// looks for.
fn last_pairs<'q, const N: usize>(query: &'q str, names: [&str; N]) -> [Option<&'q str>; N] {
    let mut found = [None; N];
    let bytes = query.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        let rest = &bytes[start..];
        // (memchr: a token is ~200 bytes, scanned a word at a time rather than byte by byte.)
        let end = start + memchr::memchr(b'&', rest).unwrap_or(rest.len());
        let pair = &bytes[start..end];
        let key = &pair[..memchr::memchr(b'=', pair).unwrap_or(pair.len())];
        let escaped = memchr::memchr2(b'%', b'+', key).is_some();
        for (slot, name) in found.iter_mut().zip(names) {
            let matches = if escaped {
                form_urlencoded::parse(key)
                    .next()
                    .is_some_and(|(k, _)| k == name)
            } else {
                key == name.as_bytes()
            };
            if matches {
                // `&` is ASCII: `start..end` lies on character boundaries.
                *slot = query.get(start..end);
            }
        }
        start = end + 1;
    }
    found
}

/// [`call::parse_path`], remembered per thread for the last few paths: a client mostly calls
/// the same few endpoints, and a remembered parse is shared, not copied.
fn parsed_path(path: &str) -> PathInfo {
    /// The paths kept, with their parses, and the slot to reuse next.
    type Recent = (Vec<(Box<str>, PathInfo)>, usize);
    const KEPT: usize = 16;
    thread_local! {
        static RECENT: std::cell::RefCell<Recent> =
            const { std::cell::RefCell::new((Vec::new(), 0)) };
    }
    if path.len() > 256 {
        return call::parse_path(path);
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let (kept, next) = &mut *recent;
        if let Some((_, info)) = kept.iter().find(|(p, _)| &**p == path) {
            return info.clone();
        }
        let info = call::parse_path(path);
        if kept.len() < KEPT {
            kept.push((path.into(), info.clone()));
        } else {
            kept[*next] = (path.into(), info.clone());
            *next = (*next + 1) % KEPT;
        }
        info
    })
}

fn take_param(pairs: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let mut found = None;
    pairs.retain(|(k, v)| {
        if k == name {
            found = Some(v.clone());
            false
        } else {
            true
        }
    });
    found
}

/// Whether `needle` (lower case, not empty) is in `haystack`, ignoring ASCII case. A plain
/// scan: header values are short, and a substring searcher costs more to set up.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = n.first() else {
        return true;
    };
    if h.len() < n.len() {
        return false;
    }
    for i in 0..=h.len() - n.len() {
        if h[i].to_ascii_lowercase() == first && h[i..i + n.len()].eq_ignore_ascii_case(n) {
            return true;
        }
    }
    false
}

/// What the proxy reads of a call's headers, found in one pass (a lookup by name hashes the
/// name; a call carries few headers).
#[derive(Debug, Default)]
struct CallHeaders<'h> {
    /// The first value of each, trimmed; `None` when it is empty or not text (as a lookup
    /// by name read it before).
    content_type: Option<&'h str>,
    authorization: Option<&'h str>,
    key: Option<&'h str>,
    alias: Option<&'h str>,
    host: Option<&'h HeaderValue>,
    present: Present,
}

/// Which of the headers the proxy never passes on a call holds.
#[derive(Debug, Default, Clone, Copy)]
struct Present {
    hop: HopByHop,
    host: bool,
    accept_encoding: bool,
    key: bool,
    alias: bool,
}

impl<'h> CallHeaders<'h> {
    fn scan(headers: &'h HeaderMap) -> Self {
        let mut seen = Self::default();
        let first = |slot: &mut Option<&'h str>, present: &mut bool, value: &'h HeaderValue| {
            if !*present {
                *slot = value.to_str().ok().map(str::trim).filter(|v| !v.is_empty());
                *present = true;
            }
        };
        let (mut ct, mut auth) = (false, false);
        for (name, value) in headers {
            if seen.present.hop.note(name) {
                continue;
            }
            if name == header::HOST {
                if !seen.present.host {
                    seen.host = Some(value);
                }
                seen.present.host = true;
            } else if name == header::ACCEPT_ENCODING {
                seen.present.accept_encoding = true;
            } else if name == header::CONTENT_TYPE {
                first(&mut seen.content_type, &mut ct, value);
            } else if name == header::AUTHORIZATION {
                first(&mut seen.authorization, &mut auth, value);
            } else if name == KEY_HEADER {
                first(&mut seen.key, &mut seen.present.key, value);
            } else if name == TOKEN_HEADER {
                first(&mut seen.alias, &mut seen.present.alias, value);
            }
        }
        seen
    }
}

/// One item of a batch request, as far as recording and pacing need it.
#[derive(Debug)]
struct BatchItem {
    method: std::borrow::Cow<'static, str>,
    info: PathInfo,
    change: call::ChangeType,
}

fn batch_items(batch: &str) -> Option<Vec<BatchItem>> {
    let items: Vec<Value> = serde_json::from_str(batch).ok()?;
    Some(
        items
            .iter()
            .map(|item| {
                let method = call::method_name(
                    &item
                        .get("method")
                        .and_then(Value::as_str)
                        .unwrap_or("GET")
                        .to_ascii_uppercase(),
                );
                let url = item
                    .get("relative_url")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                let path = if path.starts_with('/') {
                    path.to_owned()
                } else {
                    format!("/{path}")
                };
                let info = call::parse_path(&path);
                let body = item.get("body").and_then(Value::as_str).unwrap_or("");
                let names: Vec<String> = form_pairs(query)
                    .into_iter()
                    .chain(form_pairs(body))
                    .map(|(k, _)| k)
                    .collect();
                let change = call::change_type(&method, &info, names.iter().map(String::as_str));
                BatchItem {
                    method,
                    info,
                    change,
                }
            })
            .collect(),
    )
}

/// Usage headers of a batch item: `[{name, value}]` (or, tolerated, an object).
fn item_usage(item: &Value) -> Usage {
    match item.get("headers") {
        Some(Value::Array(list)) => Usage::from_headers(
            list.iter()
                .filter_map(|h| Some((h.get("name")?.as_str()?, h.get("value")?.as_str()?))),
        ),
        Some(Value::Object(map)) => Usage::from_headers(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))),
        ),
        _ => Usage::default(),
    }
}

/// A call in progress: recorded as `aborted` if it is dropped before it is answered.
struct Armed {
    worker: Arc<Worker>,
    record: Option<CallRecord>,
    watch: Stopwatch,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.duration_us =
                i64::try_from(self.watch.elapsed().as_micros()).unwrap_or(i64::MAX);
            tracing::debug!(path = %record.path, "The caller went away before the answer; recording the call as aborted.");
            self.worker.finished(record);
        }
    }
}

fn subject<'a>(
    id: &'a Identity,
    account: Option<&'a str>,
    object: Option<&'a str>,
    use_case: Option<&'static str>,
) -> Subject<'a> {
    Subject {
        app_id: id.app_id.as_deref(),
        token_fingerprint: id.fingerprint.as_deref(),
        ad_account: account,
        object_id: object,
        use_case,
    }
}

/// Who a call is made as, once the token is chosen.
#[derive(Debug, Default, Clone)]
struct Identity {
    alias: Option<Arc<str>>,
    fingerprint: Option<Arc<str>>,
    app_id: Option<Arc<str>>,
    /// The stored token was injected: its secret must not reach the caller.
    injected: Option<Arc<credential::Stored>>,
    /// What the caller put where the token goes (its key), to put back in scrubbed links;
    /// `None` when nothing was injected or the key came in a header. (An `Option`: a
    /// `SecretString` is zeroed when dropped, even an empty one, on every call.)
    placeholder: Option<SecretString>,
}

impl Proxy {
    /// A proxy over `state` (inventory, checker, metrics). Records are written by a writer
    /// task started here when `config.record` is set; [`Proxy::serve`] stops it.
    pub fn new(state: AppState, config: ProxyConfig) -> Result<Arc<Self>, String> {
        let upstream_base = config.upstream.trim_end_matches('/').to_owned();
        let uri: Uri = upstream_base
            .parse()
            .map_err(|e| format!("proxy.upstream `{upstream_base}` is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "proxy.upstream `{upstream_base}` must be an http:// or https:// URL with a host"
            ));
        }
        let upstream_is_origin = matches!(uri.path(), "" | "/");
        let upstream_path = if upstream_is_origin {
            String::new()
        } else {
            uri.path().trim_end_matches('/').to_owned()
        };
        let (recorder, writer) = if config.record {
            let (recorder, task) = Recorder::start(Arc::clone(state.inventory()));
            (Some(recorder), Some(task))
        } else {
            (None, None)
        };
        let pacer = Pacer::new(config.pacing.clone());
        let proxy = Arc::new(Self {
            calm_from: AtomicI64::new(pacer.calm_from()),
            pacer: Mutex::new(pacer),
            credentials: Credentials::new(config.cache_ttl),
            recorder: Mutex::new(recorder),
            writer: Mutex::new(writer),
            inspected: Mutex::new(HashMap::new()),
            instance: format!("proxy-{:016x}", rand::random::<u64>()),
            upstream_base_escaped: json_escaped_slashes(&upstream_base),
            upstream_base,
            upstream_path,
            upstream_is_origin,
            upstream_uri: uri,
            main: tokio::runtime::Handle::current(),
            config,
            state,
        });
        proxy.state.set_proxy(&proxy);
        Ok(proxy)
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Change the pacer, then publish whether it is calm (see `calm_from`).
    fn pace<R>(&self, f: impl FnOnce(&mut Pacer) -> R) -> Option<R> {
        let mut p = self.pacer.lock().ok()?;
        let r = f(&mut p);
        self.calm_from.store(p.calm_from(), Ordering::Relaxed);
        Some(r)
    }

    /// The pacer's keys now, for metrics.
    pub fn pacing_snapshot(&self) -> Vec<graphwarden_core::pacing::KeyView> {
        let now = self.state.clock().now_ms();
        self.pacer
            .lock()
            .map(|p| p.snapshot(now))
            .unwrap_or_default()
    }

    /// Serve on `listener` until `shutdown`; then stop accepting, let calls in flight finish
    /// (up to `grace`), and write every queued record before returning.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) {
        let workers = match self.config.workers {
            0 => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            n => n,
        };
        let listener = match listener.into_std() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "The proxy's listener could not be handed to its workers.");
                return;
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut finished = Vec::new();
        // Connections are spread by load: the worker that accepts one hands it to the worker
        // serving the fewest (kept-alive connections last; left to the kernel, a burst of them
        // can all land on one worker while the other idles).
        let mut inboxes: Vec<Option<_>> = Vec::with_capacity(workers);
        let mut senders = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
            senders.push(tx);
            inboxes.push(Some(rx));
        }
        let peers = Arc::new(Peers {
            senders,
            loads: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
        });
        for (i, inbox) in inboxes.into_iter().enumerate() {
            let peers = Arc::clone(&peers);
            let listener = match listener.try_clone() {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "The proxy could not start worker {i}.");
                    continue;
                }
            };
            let proxy = Arc::clone(&self);
            let mut stop = stop_rx.clone();
            let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
            let started = std::thread::Builder::new()
                .name(format!("gw-proxy-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt.block_on(async move {
                            match tokio::net::TcpListener::from_std(listener) {
                                Ok(listener) => {
                                    let stopped = async move {
                                        let _ = stop.wait_for(|s| *s).await;
                                    };
                                    if let Some(inbox) = inbox {
                                        proxy
                                            .accept_loop(i, listener, inbox, peers, stopped, grace)
                                            .await;
                                    }
                                }
                                Err(e) => tracing::error!(error = %e, "A proxy worker could not listen."),
                            }
                        }),
                        Err(e) => tracing::error!(error = %e, "A proxy worker could not start its runtime."),
                    }
                    let _ = done_tx.send(());
                });
            match started {
                Ok(_) => finished.push(done_rx),
                Err(e) => tracing::error!(error = %e, "The proxy could not start worker {i}."),
            }
        }
        drop(listener);
        let sync = (self.config.pacing_sync > Duration::ZERO)
            .then(|| tokio::spawn(Arc::clone(&self).share_pacing()));
        shutdown.await;
        if let Some(sync) = sync {
            sync.abort();
        }
        let _ = stop_tx.send(true);
        for done in finished {
            let _ = done.await;
        }
        // The writer stops once its last sender is gone, after writing what is queued.
        if let Ok(mut r) = self.recorder.lock() {
            r.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer
            && tokio::time::timeout(grace.max(Duration::from_secs(10)), writer)
                .await
                .is_err()
        {
            tracing::error!(
                "The call-record writer did not finish in time; records still queued are lost."
            );
        }
    }

    /// One worker's accept loop, on its own single-threaded runtime, with its own pool of
    /// connections to Graph.
    async fn accept_loop(
        self: Arc<Self>,
        me: usize,
        listener: tokio::net::TcpListener,
        mut inbox: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
        peers: Arc<Peers>,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) {
        // The worker's limit on calls to Graph (no timer per call). Its ticker also keeps a
        // timer pending on this runtime at all times: when a new timer (an answer's idle
        // time-out, say) is the only one, tokio wakes its own driver through an eventfd to
        // re-arm the park time-out, a system call and a wasted poll.
        let watchdog = deadline::Watchdog::new();
        let keeper = tokio::spawn(Arc::clone(&watchdog).run());
        let worker = Arc::new(Worker {
            client: Upstream::new(&self.upstream_uri, self.config.http2),
            watchdog,
            recorder: self
                .recorder
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .map(recorder::Gathered::new),
            proxy: Arc::clone(&self),
        });
        // Records wait in chunks no longer than `recorder::FLUSH`.
        let flusher = worker.recorder.is_some().then(|| {
            let worker = Arc::clone(&worker);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(recorder::FLUSH).await;
                    if let Some(r) = &worker.recorder {
                        r.flush();
                    }
                }
            })
        });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "The proxy could not accept a connection.");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let target = peers.least_loaded(me);
                    peers.loads[target].fetch_add(1, Ordering::Relaxed);
                    if target != me {
                        match stream.into_std() {
                            Ok(std) => match peers.senders[target].send(std) {
                                Ok(()) => continue,
                                Err(back) => {
                                    // That worker is gone: serve it here.
                                    peers.loads[target].fetch_sub(1, Ordering::Relaxed);
                                    peers.loads[me].fetch_add(1, Ordering::Relaxed);
                                    let load = Load { peers: Arc::clone(&peers), worker: me };
                                    if let Ok(stream) = tokio::net::TcpStream::from_std(back.0) {
                                        worker.connection(stream, &graceful, load);
                                    }
                                }
                            },
                            Err(_) => {
                                peers.loads[target].fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                        continue;
                    }
                    worker.connection(stream, &graceful, Load { peers: Arc::clone(&peers), worker: me });
                }
                handed = inbox.recv() => {
                    let Some(std) = handed else { continue };
                    let load = Load { peers: Arc::clone(&peers), worker: me };
                    if let Ok(stream) = tokio::net::TcpStream::from_std(std) {
                        worker.connection(stream, &graceful, load);
                    }
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        keeper.abort();
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "Proxied calls were still running when the grace period ended."
            );
        }
        if let Some(flusher) = flusher {
            flusher.abort();
        }
        // What the worker gathered goes to the writer when its last call lets go of it (at
        // the latest when this runtime drops the calls still running).
        drop(worker);
    }

    /// Exchange pacing state with the other instances on the same database, every
    /// `pacing_sync`: write the keys this instance's answers changed, merge what the others
    /// wrote since the last turn. Rows not updated for an hour are deleted.
    async fn share_pacing(self: Arc<Self>) {
        let every = self.config.pacing_sync;
        let store = Arc::clone(self.state.inventory().store());
        let mut since = self.state.clock().now_ms() - 3_600_000;
        let mut failing = false;
        loop {
            tokio::time::sleep(every).await;
            let now = self.state.clock().now_ms();
            let mine = self.pace(Pacer::export).unwrap_or_default();
            let result = async {
                store
                    .share_pacing(&self.instance, &mine, now, now - 3_600_000)
                    .await?;
                // A margin for clocks that differ between hosts.
                store.shared_pacing(&self.instance, since - 5_000).await
            }
            .await;
            match result {
                Ok(theirs) => {
                    if failing {
                        tracing::info!("Pacing state is shared with the other instances again.");
                        failing = false;
                    }
                    since = now;
                    if !theirs.is_empty() {
                        self.pace(|p| p.import(now, &theirs));
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "Pacing state could not be shared with the other instances; this one paces on its own answers until the database answers again.");
                        failing = true;
                    }
                }
            }
        }
    }

    /// What the call-record writer has done (`None` when recording is off).
    pub fn recorder_stats(&self) -> Option<Arc<recorder::RecorderStats>> {
        self.recorder
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| Arc::clone(r.stats())))
    }

    /// Meta refused a stored token with 190: inspect it now (at most once a minute per
    /// token), so its status, its alerts and the tokens derived from it follow at once.
    fn token_refused(&self, alias: &str, fingerprint: Option<&str>) {
        self.credentials.forget(Some(alias), fingerprint);
        let Ok(alias) = TokenAlias::parse(alias) else {
            return;
        };
        if let Ok(mut inspected) = self.inspected.lock() {
            if inspected
                .get(alias.as_str())
                .is_some_and(|w| w.elapsed() < INSPECT_DEBOUNCE)
            {
                return;
            }
            inspected.insert(alias.to_string(), Stopwatch::start());
        }
        self.state.metrics().inspections_triggered.inc();
        let state = self.state.clone();
        self.main.spawn(async move {
            tracing::info!(token = %alias, "Meta refused `{alias}` with error 190 on a proxied call; inspecting it now.");
            match state
                .checker()
                .check(Selection::Aliases(vec![alias.clone()]), "proxy", &|_, _| {})
                .await
            {
                Ok(_) => state.tokens_changed(),
                Err(e) => {
                    tracing::warn!(token = %alias, error = %e, "The inspection after error 190 failed.");
                }
            }
        });
    }

    #[allow(clippy::ptr_arg)] // see the note inside
    fn record(
        &self,
        at_ms: i64,
        id: &Identity,
        method: &std::borrow::Cow<'static, str>,
        info: &PathInfo,
        change: call::ChangeType,
        outcome: &'static str,
    ) -> CallRecord {
        // (`&Cow`, not `&str`: cloning the `Cow` keeps a constant method name uncopied.)
        CallRecord {
            at_ms,
            token_alias: id.alias.clone(),
            token_fingerprint: id.fingerprint.clone(),
            app_id: id.app_id.clone(),
            method: method.clone(),
            path: info.template.clone(),
            object_id: info.object_id.clone(),
            change,
            http_status: 0,
            error_code: None,
            error_subcode: None,
            error_class: None,
            duration_us: 0,
            usage_pct: None,
            usage: None,
            batch_index: None,
            outcome: outcome.into(),
        }
    }
}

impl Worker {
    /// Serve one client connection on this worker.
    fn connection(
        self: &Arc<Self>,
        stream: tokio::net::TcpStream,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
        load: Load,
    ) {
        let _ = stream.set_nodelay(true);
        let worker = Arc::clone(self);
        let activity = guard::Activity::new();
        // The call's future is `handle`'s own, not wrapped in another async block: a future
        // is moved whole each time one wraps it (3.5 kB here).
        let service = hyper::service::service_fn({
            let activity = Arc::clone(&activity);
            move |req| Arc::clone(&worker).handle(req, activity.begin())
        });
        // No header-read time-out of hyper's (a timer per call): `guard` closes connections
        // that go unused, slow request heads included.
        let mut builder = hyper::server::conn::http1::Builder::new();
        // An answer's head and body go out in one buffer (one copy of the body, which Graph's
        // answers keep small) rather than as a vectored write: measurably less CPU per call.
        builder
            .timer(TokioTimer::new())
            .writev(false)
            .header_read_timeout(None)
            .max_buf_size(self.config.max_header_bytes.max(8192));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        guard::spawn_guarded(
            async move {
                let _load = load;
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "A proxy connection ended with an error.");
                }
            },
            activity,
        );
    }

    /// A call finished: count it, and queue its record.
    fn finished(&self, record: CallRecord) {
        let metrics = self.state.metrics();
        metrics.count_call(
            crate::metrics::CallLabelsRef {
                app: record.app_id.as_deref().unwrap_or_default(),
                token: record.token_alias.as_deref().unwrap_or_default(),
                method: &record.method,
                outcome: &record.outcome,
                class: record.error_class.as_deref().unwrap_or("ok"),
                code: record.error_code.unwrap_or(0),
            },
            // (A batch is timed once, with its first item.)
            record
                .batch_index
                .is_none_or(|i| i == 0)
                .then(|| record.duration_us as f64 / 1e6),
        );
        match &self.recorder {
            Some(recorder) => recorder.record(record),
            None if self.config.record => {
                tracing::warn!(
                    "A call finished after the proxy stopped recording; its record is lost."
                );
            }
            None => {}
        }
    }

    fn respond(
        self: &Arc<Self>,
        response: Response<ProxyBody>,
        records: Vec<CallRecord>,
        watch: Stopwatch,
    ) -> Response<ProxyBody> {
        let (parts, body) = response.into_parts();
        let observed = Observed::new(
            body,
            self.config.idle_timeout,
            Pending {
                worker: Arc::clone(self),
                records,
                watch,
            },
        );
        Response::from_parts(parts, observed.boxed())
    }

    /// Answer a call graphwarden will not send, recording it.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        self: &Arc<Self>,
        mut record: CallRecord,
        status: StatusCode,
        code: i64,
        subcode: Option<i64>,
        class: &str,
        message: &str,
        watch: Stopwatch,
    ) -> Response<ProxyBody> {
        record.http_status = status.as_u16();
        record.error_code = Some(code);
        record.error_subcode = subcode;
        record.error_class = Some(class.to_owned());
        let transient = class == "throttled" || class == "transient";
        let response = meta_error(status, code, subcode, message, transient);
        self.respond(response, vec![record], watch)
    }

    fn refuse_paced(
        self: &Arc<Self>,
        mut record: CallRecord,
        r: &Refusal,
        watch: Stopwatch,
    ) -> Response<ProxyBody> {
        record.outcome = "refused".into();
        let mut response = self.refuse(
            record,
            StatusCode::BAD_REQUEST,
            r.code,
            r.subcode,
            "throttled",
            &r.message,
            watch,
        );
        let secs = r.retry_after.as_secs() + u64::from(r.retry_after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.headers_mut().insert(
            HeaderName::from_static("x-graphwarden-paced"),
            HeaderValue::from_static("refused"),
        );
        response
    }

    /// Handle one call. When the caller goes away before the answer (hyper then drops this
    /// future, perhaps while Graph is already working on the call), the call is still
    /// recorded, as `aborted`.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        call: guard::Call,
    ) -> Result<Response<guard::Tracked<ProxyBody>>, Infallible> {
        // A full queue makes new calls wait for the writer rather than pile up records.
        if let Some(recorder) = self
            .recorder
            .as_ref()
            .map(recorder::Gathered::recorder)
            .filter(|r| r.is_full())
        {
            recorder.wait_for_room().await;
        }
        let mut armed = Armed {
            worker: Arc::clone(&self),
            record: None,
            watch: Stopwatch::start(),
        };
        let response = self.handle_call(req, &mut armed).await;
        armed.record = None;
        Ok(call.answer(response))
    }

    async fn handle_call(
        self: &Arc<Self>,
        req: Request<Incoming>,
        armed: &mut Armed,
    ) -> Response<ProxyBody> {
        let watch = armed.watch;
        let at_ms = self.state.clock().now_ms();
        let (mut parts, body) = req.into_parts();
        let method = call::method_name(parts.method.as_str());
        // The path and query as they came (shared bytes, not a copy): passed on unchanged when
        // nothing is injected or added, decoded only when something is.
        let original = parts.uri.path_and_query().cloned();
        let path = original.as_ref().map_or("/", |pq| pq.path());
        let raw_query = original.as_ref().and_then(|pq| pq.query()).unwrap_or("");
        let info = parsed_path(path);
        let mut query: Option<Vec<(String, String)>> = None;
        let mut id = Identity::default();
        // Where the caller reached the proxy, for Graph's absolute links in scrubbed answers.
        // (Built only when an answer is scrubbed.)
        let seen = CallHeaders::scan(&parts.headers);
        let caller_host = seen.host.cloned();

        // A form body is read: it may hold the token, the batch, and what an update changes.
        // So is the JSON body of a write (the Node SDK's): its top-level names say what an
        // update changes; it is passed on as it came.
        let content_type = seen
            .content_type
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let is_form = content_type.starts_with("application/x-www-form-urlencoded");
        let is_json_write = content_type.starts_with("application/json")
            && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let mut form: Option<Vec<(String, String)>> = None;
        let mut json_body: Option<(Bytes, Vec<String>)> = None;
        let mut stream_body: Option<Incoming> = None;
        if is_form || is_json_write {
            let refused = |outcome: &'static str| {
                self.record(at_ms, &id, &method, &info, call::ChangeType::Read, outcome)
            };
            match read_up_to(body, self.config.max_body).await {
                Ok(Read::Whole(bytes)) if is_json_write => {
                    // Names only; a body that is not a JSON object still goes on to Graph,
                    // which answers it.
                    let names = match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(map)) => map.keys().cloned().collect(),
                        _ => Vec::new(),
                    };
                    json_body = Some((bytes, names));
                }
                Ok(Read::Whole(bytes)) => match std::str::from_utf8(&bytes) {
                    Ok(text) => form = Some(form_pairs(text)),
                    Err(_) => {
                        return self.refuse(
                            refused("refused"),
                            StatusCode::BAD_REQUEST,
                            100,
                            None,
                            "bad_request",
                            "(#100) The request body is not valid form data (it is not UTF-8).",
                            watch,
                        );
                    }
                },
                Ok(Read::Partial(..)) => {
                    return self.refuse(refused("refused"), StatusCode::PAYLOAD_TOO_LARGE, 100, None, "bad_request",
                        &format!("(#100) The request body is larger than graphwarden's proxy.max_body_bytes ({} bytes).", self.config.max_body), watch);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "A caller went away while sending its request body.");
                    return self.refuse(
                        refused("aborted"),
                        StatusCode::BAD_REQUEST,
                        100,
                        None,
                        "bad_request",
                        "(#100) The request body was cut off.",
                        watch,
                    );
                }
            }
        } else {
            stream_body = Some(body);
        }

        // The token: the caller's own, or a stored one by alias with a graphwarden key.
        let bearer = seen.authorization.and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
                .then(|| token.trim().to_owned())
        });
        let [token_pair, proof_pair] = last_pairs(raw_query, ["access_token", "appsecret_proof"]);
        let mut presented = token_pair.map(pair_value);
        if let Some(f) = form.as_mut()
            && let Some(t) = take_param(f, "access_token")
        {
            presented = Some(t.into());
        }
        let from_bearer = presented.is_none() && bearer.is_some();
        if from_bearer {
            presented = bearer.clone().map(Into::into);
        }
        let key_header = seen.key.map(str::to_owned);
        let alias_header = seen.alias.map(str::to_owned);
        let seen = seen.present;
        let presented_is_key = presented
            .as_deref()
            .is_some_and(|t| t.starts_with(KEY_PREFIX));
        let key_text = key_header.clone().or_else(|| {
            presented
                .as_deref()
                .filter(|_| presented_is_key)
                .map(str::to_owned)
        });
        let inject = key_text.is_some()
            || alias_header.is_some()
            || (presented.is_none() && self.config.default_alias.is_some());
        let change = if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            call::ChangeType::Read
        } else {
            let names: Vec<String> = form_urlencoded::parse(raw_query.as_bytes())
                .map(|(k, _)| k.into_owned())
                .chain(form.iter().flatten().map(|(k, _)| k.clone()))
                .chain(
                    json_body
                        .iter()
                        .flat_map(|(_, names)| names.iter().cloned()),
                )
                .collect();
            call::change_type(&method, &info, names.iter().map(String::as_str))
        };

        let mut proof_secret: Option<SecretString> = None;
        // The classic proof for the token sent, computed once per token by `credentials`.
        let mut classic_proof: Option<SecretString> = None;
        let mut token_to_send: Option<SecretString> = None;
        if inject {
            let Some(key_text) = key_text else {
                let record = self.record(at_ms, &id, &method, &info, change, "refused");
                return self.refuse(
                    record,
                    StatusCode::UNAUTHORIZED,
                    190,
                    None,
                    "token_dead",
                    &format!("(#190) {}", CredentialError::NoKey),
                    watch,
                );
            };
            let inventory = self.state.inventory();
            let stored = match self
                .credentials
                .injection(
                    inventory,
                    &key_text,
                    alias_header.as_deref(),
                    self.config.default_alias.as_ref().map(|a| a.as_str()),
                    watch,
                )
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    return self.credential_failure(
                        e,
                        self.record(at_ms, &id, &method, &info, change, "refused"),
                        watch,
                    );
                }
            };
            id.alias = Some(Arc::clone(&stored.alias_text));
            id.fingerprint = Some(Arc::clone(&stored.fingerprint));
            id.app_id = Some(Arc::clone(&stored.app_id));
            id.injected = Some(Arc::clone(&stored));
            id.placeholder =
                (presented_is_key && !from_bearer).then(|| SecretString::from(key_text.clone()));
            // The caller's own proof was for its key, not for the token sent.
            if let Some(f) = form.as_mut() {
                take_param(f, "appsecret_proof");
                take_param(f, "appsecret_time");
            }
            proof_secret = stored.app_secret.clone();
            classic_proof = stored.proof.clone();
            token_to_send = Some(stored.secret.clone());
        } else if let Some(token) = presented.as_deref() {
            let inventory = self.state.inventory();
            match self.credentials.known(inventory, token, watch).await {
                Ok(known) => {
                    id.alias.clone_from(&known.alias);
                    id.fingerprint = Some(Arc::clone(&known.fingerprint));
                    id.app_id.clone_from(&known.app_id);
                    let has_proof = proof_pair.is_some()
                        || form.iter().flatten().any(|(k, _)| k == "appsecret_proof");
                    if !has_proof {
                        proof_secret = known.app_secret.clone();
                        classic_proof = known.proof.clone();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not look the caller's token up in the inventory; passing it on as it is.")
                }
            }
        }
        // The query is rebuilt only when something in it changes: a token injected (the
        // caller's key or its own token taken out), a proof added, or a form body that the
        // token moves into.
        let rewrite_query = inject || proof_secret.is_some() || form.is_some();
        // The caller's own token goes back in where the rebuilt query or form puts it (one in
        // `Authorization` stays there).
        if !inject && !from_bearer && rewrite_query {
            token_to_send = presented
                .as_deref()
                .map(|t| SecretString::from(t.to_owned()));
        }
        if rewrite_query {
            let q = query.get_or_insert_with(|| form_pairs(raw_query));
            take_param(q, "access_token");
            if inject {
                take_param(q, "appsecret_proof");
                take_param(q, "appsecret_time");
            }
        }
        // The token and its proof, already encoded, to follow the caller's own pairs (in the
        // form body of a POST that has one, else in the query); a stored token's encoding is
        // kept with it, so a ~200-byte token is not encoded again on every call.
        let mut tail: Option<String> = None;
        let mut tail_in_form = false;
        if let Some(token) = &token_to_send
            && rewrite_query
        {
            query.get_or_insert_with(Vec::new);
            tail_in_form = form.is_some() && parts.method == Method::POST;
            let mut t = String::with_capacity(token.expose_secret().len() + 96);
            t.push_str("access_token=");
            match &id.injected {
                Some(stored) => t.push_str(stored.encoded.expose_secret()),
                None => t.extend(form_urlencoded::byte_serialize(
                    token.expose_secret().as_bytes(),
                )),
            }
            // (Proofs are hex and times digits: nothing to encode.)
            if let Some(app_secret) = &proof_secret {
                t.push_str("&appsecret_proof=");
                if self.config.timed_proof {
                    let now = self.state.clock().now().as_second();
                    t.push_str(&graphwarden_meta::proof::timed(app_secret, token, now));
                    t.push_str("&appsecret_time=");
                    t.push_str(&now.to_string());
                } else {
                    match &classic_proof {
                        Some(p) => t.push_str(p.expose_secret()),
                        None => t.push_str(&graphwarden_meta::proof::classic(app_secret, token)),
                    }
                }
            }
            tail = Some(t);
        }
        let query_tail = tail.as_deref().filter(|_| !tail_in_form);
        let form_tail = tail.as_deref().filter(|_| tail_in_form);

        // From here on the call may reach Meta: if the caller leaves, it is recorded anyway.
        armed.record = Some(self.record(at_ms, &id, &method, &info, change, "aborted"));

        // A batch: every item is recorded and paced on its own.
        let items = form
            .as_ref()
            .and_then(|f| f.iter().find(|(k, _)| k == "batch"))
            .and_then(|(_, b)| batch_items(b));

        // Pacing (nothing to decide while no key holds or spaces calls: the usual case).
        let mut delayed = Duration::ZERO;
        let calm = at_ms >= self.calm_from.load(Ordering::Relaxed);
        if !calm {
            let mut subjects: Vec<(Option<&str>, Option<&str>, Option<&'static str>)> =
                Vec::with_capacity(items.as_ref().map_or(1, Vec::len));
            match &items {
                Some(items) => {
                    for item in items {
                        subjects.push((
                            item.info.ad_account.as_deref(),
                            item.info.object_id.as_deref(),
                            item.info.use_case,
                        ));
                    }
                }
                None => subjects.push((
                    info.ad_account.as_deref(),
                    info.object_id.as_deref(),
                    info.use_case,
                )),
            }
            let mut keys = Vec::with_capacity(4 * subjects.len());
            for (account, object, use_case) in &subjects {
                let subject = Subject {
                    app_id: id.app_id.as_deref(),
                    token_fingerprint: id.fingerprint.as_deref(),
                    ad_account: *account,
                    object_id: *object,
                    use_case: *use_case,
                };
                for k in subject.keys() {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            loop {
                let patience = self.config.max_wait.saturating_sub(watch.elapsed());
                let now = self.state.clock().now_ms();
                let decision = self
                    .pace(|p| p.decide(now, &keys, patience))
                    .unwrap_or(Decision::Go);
                match decision {
                    Decision::Go => break,
                    Decision::Wait { wait, recheck } => {
                        tokio::time::sleep(wait).await;
                        delayed += wait;
                        if !recheck {
                            break;
                        }
                        if watch.elapsed() >= self.config.max_wait {
                            // Waited as long as allowed and the key is still held.
                            let now = self.state.clock().now_ms();
                            let d = self.pace(|p| p.decide(now, &keys, Duration::ZERO));
                            match d {
                                Some(Decision::Refuse(r)) => {
                                    let record =
                                        self.record(at_ms, &id, &method, &info, change, "refused");
                                    return self.refuse_paced(record, &r, watch);
                                }
                                _ => break,
                            }
                        }
                    }
                    Decision::Refuse(r) => {
                        let record = self.record(at_ms, &id, &method, &info, change, "refused");
                        return self.refuse_paced(record, &r, watch);
                    }
                }
            }
        }
        let outcome = if delayed.is_zero() {
            "forwarded"
        } else {
            "delayed"
        };

        // The request to Graph, in origin form (the worker's pool knows where Graph is, and
        // hyper's client is given Graph's origin): the upstream's own path, then the call's.
        // A call whose query is passed on unchanged reuses its path and query as they came;
        // one built here is made of parts that were valid in the caller's request line and
        // of form-encoded pairs, so it is checked only for what would break the request
        // line (parsing it as a URI again cost ~2,600 instructions with a stored token).
        let built: String;
        let target: Option<&str> = match (&query, self.upstream_is_origin) {
            (None, true) => Some(original.as_ref().map_or("/", |pq| pq.as_str())),
            _ => {
                let query_text = match &query {
                    Some(q) => joined(encode_pairs(q), query_tail),
                    None => raw_query.to_owned(),
                };
                built = if query_text.is_empty() {
                    format!("{}{}", self.upstream_path, path)
                } else {
                    format!("{}{}?{}", self.upstream_path, path, query_text)
                };
                upstream::fits_request_line(&built).then_some(built.as_str())
            }
        };
        let Some(target) = target else {
            let record = self.record(at_ms, &id, &method, &info, change, "refused");
            return self.refuse(
                record,
                StatusCode::BAD_REQUEST,
                100,
                None,
                "bad_request",
                "(#100) The request's path or query cannot be passed on.",
                watch,
            );
        };
        strip_found(&mut parts.headers, seen.hop);
        // Only those there are: a removal looks its name up. (`Host`, the proxy's own address,
        // is replaced with Graph's on the way out.)
        for (name, present) in [
            (&header::ACCEPT_ENCODING, seen.accept_encoding),
            (&KEY_HEADER, seen.key),
            (&TOKEN_HEADER, seen.alias),
        ] {
            if present {
                parts.headers.remove(name);
            }
        }
        if from_bearer && inject {
            parts.headers.remove(header::AUTHORIZATION);
        }
        let request_body: Option<Bytes> = match (&form, json_body) {
            (Some(f), _) => Some(Bytes::from(joined(encode_pairs(f), form_tail))),
            (None, Some((bytes, _))) => Some(bytes),
            (None, None) => None,
        };
        if request_body.is_some() {
            parts.headers.remove(header::CONTENT_LENGTH);
        }
        let safe = matches!(parts.method, Method::GET | Method::HEAD);
        let attempts = if safe
            && stream_body
                .as_ref()
                .is_none_or(http_body::Body::is_end_stream)
        {
            self.config.retries + 1
        } else {
            1
        };
        // A body that has ended already (a GET's) goes as an empty one.
        let mut stream_body = stream_body
            .filter(|b| !http_body::Body::is_end_stream(b))
            .map(|b| {
                http_body_util::Limited::new(b, self.config.max_body)
                    .map_err(|e| -> BoxError { e })
                    .boxed()
            });
        let mut backoff = Duration::from_millis(100);
        let mut last_failure = String::new();
        let mut timed_out = false;
        let mut answer = None;
        for attempt in 1..=attempts {
            let body = match (&request_body, stream_body.take()) {
                (Some(bytes), _) => Outgoing::Full(bytes.clone()),
                (None, Some(b)) => Outgoing::Stream(b),
                (None, None) => Outgoing::Full(Bytes::new()),
            };
            let call = upstream::Call {
                method: &parts.method,
                target,
                headers: &parts.headers,
                at: watch,
            };
            match self
                .watchdog
                .limit(
                    self.config.upstream_timeout,
                    std::pin::pin!(self.client.send(call, body)),
                )
                .await
            {
                Ok(Ok(response)) => {
                    let transient_status = matches!(response.status().as_u16(), 502..=504);
                    if transient_status && attempt < attempts {
                        last_failure = format!("Graph answered {}", response.status());
                    } else {
                        answer = Some(response);
                        break;
                    }
                }
                Ok(Err(e)) => {
                    // Never the URL: it holds the token.
                    last_failure = if e == upstream::Failure::Connect {
                        "could not connect to Graph".to_owned()
                    } else {
                        "the connection to Graph failed before an answer".to_owned()
                    };
                    timed_out = false;
                }
                Err(_) => {
                    last_failure = format!(
                        "Graph did not start answering within {:?}",
                        self.config.upstream_timeout
                    );
                    timed_out = true;
                }
            }
            if attempt < attempts {
                tracing::debug!(attempt, failure = %last_failure, "Retrying a safe call after a transient failure.");
                tokio::time::sleep(backoff).await;
                backoff *= 3;
            }
        }
        let Some(answer) = answer else {
            tracing::warn!(path = %info.template, failure = %last_failure, "A proxied call failed.");
            let record = self.record(at_ms, &id, &method, &info, change, "failed");
            let status = if timed_out {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            return self.refuse(
                record,
                status,
                2,
                None,
                "transient",
                &format!(
                    "(#2) Service temporarily unavailable: graphwarden's proxy {last_failure}."
                ),
                watch,
            );
        };

        // The answer.
        let (mut parts_out, body_in) = answer.into_parts();
        let status = parts_out.status.as_u16();
        // One pass over the answer's headers for all the proxy looks at.
        let mut hop = HopByHop::default();
        let mut usage_found = usage_cache::Found::default();
        let mut content_type = None;
        for (name, value) in &parts_out.headers {
            if hop.note(name) {
                continue;
            }
            if name == header::CONTENT_TYPE {
                content_type = content_type.or(Some(value));
            } else {
                usage_found.note(name, value);
            }
        }
        let parsed = usage_cache::usage_found(&usage_found, &parts_out.headers);
        // (Whether the answer is JSON matters only when a stored token may be in it.)
        let is_json = || {
            content_type
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| {
                    contains_ignoring_case(ct, "json") || contains_ignoring_case(ct, "javascript")
                })
        };
        let read = status >= 400 || items.is_some() || (id.injected.is_some() && is_json());
        let usage = &parsed.usage;
        // What the call itself was about, for the pacer (batch items have their own).
        let call_subject = subject(
            &id,
            info.ad_account.as_deref(),
            info.object_id.as_deref(),
            info.use_case,
        );
        strip_found(&mut parts_out.headers, hop);
        let mut records = Vec::with_capacity(items.as_ref().map_or(1, Vec::len));
        // The record armed for an abort becomes the call's record: taken when the answer
        // streams on from here (nothing awaits before `respond` takes over), copied when it
        // is read first (the caller may still leave meanwhile).
        let mut base = if read {
            armed.record.clone()
        } else {
            armed.record.take()
        }
        .unwrap_or_else(|| self.record(at_ms, &id, &method, &info, change, outcome));
        base.outcome = outcome.into();
        base.http_status = status;
        base.usage_pct = parsed.max_pct;
        if self.config.record {
            base.usage.clone_from(&parsed.json);
        }
        // Whether the gauges take this answer's usage (not when it repeats what was just seen).
        let mut gauges = true;
        let body_out: ProxyBody = if read {
            let bytes = match read_up_to(body_in, self.config.max_buffer).await {
                Ok(Read::Whole(b)) => b,
                Ok(Read::Partial(head, rest)) => {
                    if id.injected.is_some() {
                        let record = self.record(at_ms, &id, &method, &info, change, "failed");
                        return self.refuse(record, StatusCode::INTERNAL_SERVER_ERROR, 1, None, "transient",
                            &format!("(#1) Please reduce the amount of data you're asking for, then retry your request: graphwarden reads answers made with a stored token to keep the token out of them, and this one is larger than proxy.max_buffer_bytes ({} bytes).", self.config.max_buffer), watch);
                    }
                    // Too large to decode: pass it on as it is.
                    self.observe(&call_subject, usage, None);
                    records.push(base);
                    let stream = chain_rest(head, rest);
                    let response = Response::from_parts(parts_out, stream);
                    return self.respond(response, records, watch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Graph's answer broke off.");
                    let record = self.record(at_ms, &id, &method, &info, change, "failed");
                    return self.refuse(
                        record,
                        StatusCode::BAD_GATEWAY,
                        2,
                        None,
                        "transient",
                        "(#2) Service temporarily unavailable: Graph's answer broke off.",
                        watch,
                    );
                }
            };
            let envelope_error;
            let mut batch_done = false;
            if let Some(items) = &items
                && status < 400
                && let Ok(Value::Array(answers)) = serde_json::from_slice::<Value>(&bytes)
            {
                batch_done = true;
                for (i, item) in items.iter().enumerate() {
                    let answer = answers.get(i).unwrap_or(&Value::Null);
                    let mut r =
                        self.record(at_ms, &id, &item.method, &item.info, item.change, outcome);
                    r.batch_index = i32::try_from(i).ok();
                    if answer.is_null() {
                        // Meta left the item unfinished (a batch time-out): the caller retries it.
                        r.http_status = 0;
                        r.error_class = Some("transient".to_owned());
                        records.push(r);
                        continue;
                    }
                    let code = answer
                        .get("code")
                        .and_then(Value::as_u64)
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0);
                    r.http_status = code;
                    let item_usage = item_usage(answer);
                    let err = answer
                        .get("body")
                        .and_then(Value::as_str)
                        .and_then(|b| decode_error(code, b.as_bytes(), &item_usage));
                    if let Some((c, sub, class)) = &err {
                        r.error_code = Some(*c);
                        r.error_subcode = *sub;
                        r.error_class = Some(class.clone());
                    }
                    if !item_usage.is_empty() {
                        r.usage_pct = Some(item_usage.max_pct());
                        r.usage = serde_json::to_string(&item_usage).ok().map(Into::into);
                    }
                    let subject = subject(
                        &id,
                        item.info.ad_account.as_deref(),
                        item.info.object_id.as_deref(),
                        item.info.use_case,
                    );
                    self.observe(
                        &subject,
                        &item_usage,
                        err.as_ref().map(|(c, s, _)| (*c, *s)),
                    );
                    records.push(r);
                }
                // The envelope's own headers count too.
                self.observe(&subject(&id, None, None, None), usage, None);
            }
            if !batch_done {
                envelope_error = decode_error(status, &bytes, usage);
                if let Some((c, sub, class)) = &envelope_error {
                    base.error_code = Some(*c);
                    base.error_subcode = *sub;
                    base.error_class = Some(class.clone());
                } else if status >= 400 {
                    base.error_class = Some(
                        if status >= 500 {
                            "transient"
                        } else {
                            "bad_request"
                        }
                        .to_owned(),
                    );
                }
                // As for a streamed answer: the same calm figures just seen are not passed on
                // again (an error always is).
                gauges = usage_cache::needs_observing(
                    Arc::as_ptr(&self.proxy) as usize,
                    &call_subject,
                    &parsed,
                    envelope_error.is_some() || status >= 400,
                    self.config.pacing.soft_percent,
                    watch,
                );
                if gauges {
                    self.observe(
                        &call_subject,
                        usage,
                        envelope_error.as_ref().map(|(c, s, _)| (*c, *s)),
                    );
                }
                records.push(base);
            }
            let scrubbed = match &id.injected {
                Some(stored) => self.scrub(
                    &bytes,
                    stored,
                    id.placeholder.as_ref(),
                    &caller_host
                        .as_ref()
                        .and_then(|h| h.to_str().ok())
                        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
                        .map(|h| format!("http://{h}"))
                        .unwrap_or_default(),
                ),
                None => None,
            };
            let out = scrubbed.map(Bytes::from).unwrap_or(bytes);
            parts_out.headers.remove(header::CONTENT_LENGTH);
            if let Ok(v) = HeaderValue::from_str(&out.len().to_string()) {
                parts_out.headers.insert(header::CONTENT_LENGTH, v);
            }
            full(out)
        } else {
            gauges = usage_cache::needs_observing(
                Arc::as_ptr(&self.proxy) as usize,
                &call_subject,
                &parsed,
                false,
                self.config.pacing.soft_percent,
                watch,
            );
            if gauges {
                self.observe(&call_subject, usage, None);
            }
            records.push(base);
            body_in.boxed()
        };
        if gauges {
            self.state.metrics().set_usage(
                usage,
                id.app_id.as_deref(),
                info.ad_account.as_deref(),
                info.object_id.as_deref(),
            );
        }
        for r in &records {
            if matches!(r.error_code, Some(190 | 102))
                && let Some(alias) = &r.token_alias
            {
                self.token_refused(alias, r.token_fingerprint.as_deref());
                break;
            }
        }
        if !delayed.is_zero()
            && let Ok(v) = HeaderValue::from_str(&delayed.as_millis().to_string())
        {
            parts_out
                .headers
                .insert(HeaderName::from_static("x-graphwarden-paced-ms"), v);
        }
        self.respond(Response::from_parts(parts_out, body_out), records, watch)
    }

    fn credential_failure(
        self: &Arc<Self>,
        e: CredentialError,
        record: CallRecord,
        watch: Stopwatch,
    ) -> Response<ProxyBody> {
        let (status, code, class) = match &e {
            CredentialError::BadKey | CredentialError::NoKey => {
                (StatusCode::UNAUTHORIZED, 190, "token_dead")
            }
            CredentialError::NotAllowed { .. } => {
                (StatusCode::FORBIDDEN, 200, "permission_missing")
            }
            CredentialError::NoAlias
            | CredentialError::BadAlias(_)
            | CredentialError::UnknownAlias(_) => (StatusCode::BAD_REQUEST, 100, "bad_request"),
            CredentialError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, 2, "transient"),
        };
        if matches!(e, CredentialError::Store(_)) {
            tracing::error!(error = %e, "The proxy could not read the inventory.");
        }
        let message = match &e {
            CredentialError::Store(_) => {
                "(#2) Service temporarily unavailable: graphwarden could not read its inventory."
                    .to_owned()
            }
            other => format!("(#{code}) {other}"),
        };
        self.refuse(record, status, code, None, class, &message, watch)
    }
}

impl Proxy {
    fn observe(&self, subject: &Subject<'_>, usage: &Usage, error: Option<(i64, Option<i64>)>) {
        if usage.is_empty() && error.is_none() {
            return;
        }
        let now = self.state.clock().now_ms();
        self.pace(|p| p.observe(now, subject, usage, error));
    }

    /// Take the stored token (and its proof) out of an answer for a caller that holds no
    /// token, and point Graph's absolute links back at the proxy.
    fn scrub(
        &self,
        bytes: &[u8],
        stored: &credential::Stored,
        placeholder: Option<&SecretString>,
        proxy_base: &str,
    ) -> Option<Vec<u8>> {
        let placeholder = placeholder.map_or(&[][..], |p| p.expose_secret().as_bytes());
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (
                stored.secret.expose_secret().as_bytes().to_vec(),
                placeholder.to_vec(),
            ),
            (
                stored.encoded.expose_secret().as_bytes().to_vec(),
                placeholder.to_vec(),
            ),
        ];
        if !proxy_base.is_empty() {
            pairs.push((
                self.upstream_base.as_bytes().to_vec(),
                proxy_base.as_bytes().to_vec(),
            ));
            pairs.push((
                self.upstream_base_escaped.as_bytes().to_vec(),
                json_escaped_slashes(proxy_base).into_bytes(),
            ));
        }
        body::replace_all(bytes, &pairs)
    }
}

/// A body that yields `head`, then the rest of `rest`.
fn chain_rest(head: Bytes, rest: Answer) -> ProxyBody {
    let head = http_body_util::Full::new(head).map_err(|never| -> BoxError { match never {} });
    Chain {
        head: Some(head.boxed()),
        rest: rest.boxed(),
    }
    .boxed()
}

struct Chain {
    head: Option<ProxyBody>,
    rest: ProxyBody,
}

impl http_body::Body for Chain {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        let this = &mut *self;
        if let Some(head) = this.head.as_mut() {
            match std::pin::Pin::new(head).poll_frame(cx) {
                Poll::Ready(None) => this.head = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut this.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_worker_that_still_runs() {
        let (tx0, _rx0) = tokio::sync::mpsc::unbounded_channel();
        let (tx1, rx1) = tokio::sync::mpsc::unbounded_channel();
        let (tx2, _rx2) = tokio::sync::mpsc::unbounded_channel();
        let peers = Peers {
            senders: vec![tx0, tx1, tx2],
            loads: vec![
                AtomicUsize::new(3),
                AtomicUsize::new(1),
                AtomicUsize::new(2),
            ],
        };
        assert_eq!(peers.least_loaded(0), 1);
        assert_eq!(peers.least_loaded(2), 1);
        peers.loads[0].store(1, Ordering::Relaxed);
        assert_eq!(
            peers.least_loaded(0),
            0,
            "a tie keeps it where it was accepted"
        );
        drop(rx1);
        peers.loads[0].store(5, Ordering::Relaxed);
        assert_eq!(peers.least_loaded(0), 2, "a worker that stopped gets none");
    }

    #[test]
    fn slashes_are_escaped_as_json_may_write_them() {
        for text in [
            "",
            "/",
            "//",
            "http://127.0.0.1:8080",
            "/v26.0/me/",
            "no slash",
            "é/ü",
        ] {
            assert_eq!(
                json_escaped_slashes(text),
                text.replace('/', "\\/"),
                "{text}"
            );
        }
    }

    #[test]
    fn query_parameters_are_found_as_a_full_decode_would_find_them() {
        let queries = [
            "",
            "access_token=abc",
            "a=1&access_token=first&b=2&access_token=last",
            "access%5Ftoken=escaped%20value&x=1",
            "access_token=a+b%2Bc&&&",
            "access_token",
            "access_token=&fields=id",
            "x=access_token&access_token%3D=no",
            "fields=id,name&access_token=%E2%82%AC%ZZ",
            "ACCESS_TOKEN=upper",
        ];
        // Real tokens are ~200 bytes: the scans' long paths, an escape or `+` far in.
        let long = format!("EAA{}", "Zx9".repeat(66));
        let long_queries = [
            format!("fields=id,name&access_token={long}"),
            format!("access_token={long}%2B&appsecret_proof={long}"),
            format!("access_token={long}+{long}&x=1"),
            format!("{}=1&access_token={long}", "f".repeat(100)),
            format!("access%5Ftoken={long}&{}", "y".repeat(80)),
        ];
        for q in queries
            .iter()
            .copied()
            .chain(long_queries.iter().map(String::as_str))
        {
            let full = form_urlencoded::parse(q.as_bytes())
                .filter(|(k, _)| k == "access_token")
                .last()
                .map(|(_, v)| v.into_owned());
            assert_eq!(last_param(q, "access_token"), full, "query `{q}`");
            let proof = form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "appsecret_proof");
            let [token, found] = last_pairs(q, ["access_token", "appsecret_proof"]);
            assert_eq!(
                token.map(|t| pair_value(t).into_owned()),
                full,
                "query `{q}`, two names"
            );
            assert_eq!(found.is_some(), proof, "query `{q}`, the proof");
        }
        let [t, p] = last_pairs(
            "appsecret%5Fproof=x&access_token=t",
            ["access_token", "appsecret_proof"],
        );
        assert_eq!(
            (t, p),
            (Some("access_token=t"), Some("appsecret%5Fproof=x"))
        );
    }

    #[test]
    fn a_calls_headers_are_read_in_one_pass_as_lookups_would_read_them() {
        let mut h = HeaderMap::new();
        h.append(&TOKEN_HEADER, HeaderValue::from_static("  "));
        h.append(&TOKEN_HEADER, HeaderValue::from_static("second"));
        h.append(&KEY_HEADER, HeaderValue::from_static(" gwk_abc "));
        h.append(header::HOST, HeaderValue::from_static("proxy.local"));
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let seen = CallHeaders::scan(&h);
        assert_eq!(
            seen.alias, None,
            "an empty first value is no alias, as before"
        );
        assert_eq!(seen.key, Some("gwk_abc"));
        assert_eq!(seen.content_type, None);
        assert_eq!(seen.host.and_then(|v| v.to_str().ok()), Some("proxy.local"));
        let p = seen.present;
        assert!(p.alias && p.key && p.host && !p.accept_encoding && p.hop.any);
    }

    #[test]
    fn content_types_are_matched_ignoring_case() {
        for (ct, needle, expected) in [
            ("application/json; charset=UTF-8", "json", true),
            ("Application/JSON", "json", true),
            ("text/javascript; charset=UTF-8", "javascript", true),
            ("text/html", "json", false),
            ("jso", "json", false),
            ("", "json", false),
            ("xxjsojson", "json", true),
        ] {
            assert_eq!(
                contains_ignoring_case(ct, needle),
                expected,
                "`{ct}` / `{needle}`"
            );
        }
    }

    #[test]
    fn remembered_path_parses_are_the_parses() {
        // More distinct paths than a thread keeps, each asked for twice.
        let paths: Vec<String> = (0..40)
            .map(|i| format!("/v26.0/act_{i}/campaigns"))
            .chain(["/".into(), "/me".into(), "/v26.0/1234/insights".into()])
            .chain(std::iter::once(format!("/v26.0/{}", "x".repeat(300))))
            .collect();
        for _ in 0..2 {
            for p in &paths {
                assert_eq!(parsed_path(p), call::parse_path(p), "{p}");
            }
        }
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-app-usage", HeaderValue::from_static("{}"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-app-usage"]);
        let mut plain = HeaderMap::new();
        plain.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain.len(), 1);
    }
}
