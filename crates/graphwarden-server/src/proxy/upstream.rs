//! Connections to Graph, one set per proxy worker thread.
//!
//! By default each worker keeps its own pool of kept-alive HTTP/1.1 connections (TLS by
//! rustls for `https://`), the way nginx talks to an upstream: a call takes an idle connection
//! (or opens one), sends on it, and the connection goes back to the pool when the answer's body
//! has been read to its end. An answer dropped half-read closes its connection. This costs
//! about 3 µs less per call than `hyper_util`'s general pool (`bench/proxy.sh`, "bare" runs in
//! BENCHMARKS.md), which races a new connection against every checkout and needs a task per
//! call to hand the connection back.
//!
//! A call whose body is in hand (all but uploads streamed through) is written and answered by
//! the calling task itself on one of these connections ([`super::h1`]); a connection Graph
//! closed while it sat idle is noticed before it is used (or as the call is written, and then
//! the call goes on another), never by sending a call twice. A call streaming its body goes
//! through one of hyper's client connections (a task each), kept in a pool of their own.
//!
//! With `proxy.http2` the worker uses `hyper_util`'s pooled client instead, which offers
//! HTTP/2 by ALPN and multiplexes calls over one TLS connection when Graph accepts it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use graphwarden_core::Stopwatch;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;

use super::body::{BoxError, ProxyBody};
use super::h1;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Idle connections kept per worker, and how long one may stay idle.
const MAX_IDLE: usize = 512;
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made.
    Connect,
    /// The connection broke before an answer.
    Broken,
}

/// A call's body on its way to Graph.
pub enum Outgoing {
    /// All of it, in hand (perhaps empty).
    Full(Bytes),
    /// Streamed through as the caller sends it.
    Stream(ProxyBody),
}

impl Outgoing {
    /// A body to stream; one that has ended already is empty.
    pub fn stream(body: ProxyBody) -> Self {
        if body.is_end_stream() {
            Self::Full(Bytes::new())
        } else {
            Self::Stream(body)
        }
    }

    fn into_body(self) -> ProxyBody {
        match self {
            Self::Full(bytes) => super::body::full(bytes),
            Self::Stream(body) => body,
        }
    }
}

/// A call on its way to Graph, borrowed from the caller's request rather than moved into
/// the future that sends it: a call's future is held in its connection's task and moved as
/// the call starts, and each layer that owned the request kept a copy of it (its head is
/// 256 bytes) for the whole call. Borrowed, the same head also serves every retry without
/// a copy of its headers. hyper's connections, which own what they send, get a copy.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub method: &'a Method,
    /// In origin form (a path and query, sent to Graph's origin), as the request line
    /// carries it; see [`fits_request_line`].
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// When the call began: the pool measures its idle connections' ages against this
    /// reading instead of reading the clock again (an age is then off by at most the
    /// call's own duration, against a 90-second limit).
    pub at: Stopwatch,
}

/// Whether `target` can go on a request line as it is: an origin-form target (it starts
/// with `/`) without a space or control character, which would end the line or the target
/// early (request smuggling). Not a full URI parse: the caller builds targets from parts of
/// a request line hyper parsed already and from form-encoded text.
pub fn fits_request_line(target: &str) -> bool {
    target.starts_with('/')
        && !target
            .bytes()
            .fold(false, |bad, b| bad | (b <= b' ') | (b == 0x7f))
}

/// The method and path only: the query and headers may hold a token.
impl std::fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", self.method)
            .field(
                "path",
                &self.target.split_once('?').map_or(self.target, |(p, _)| p),
            )
            .finish_non_exhaustive()
    }
}

impl Call<'_> {
    /// The call as a request of its own, for hyper's connections (the rare paths).
    fn request(self, body: ProxyBody) -> Result<Request<ProxyBody>, Failure> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::try_from(self.target).map_err(|_| Failure::Broken)?;
        *req.headers_mut() = self.headers.clone();
        Ok(req)
    }
}

/// One worker's way to Graph.
#[derive(Clone)]
pub enum Upstream {
    Pool(Arc<Pool>),
    /// hyper_util's client, and Graph's origin (it wants absolute URIs).
    Client(Box<(Client<Connector, ProxyBody>, Uri)>),
}

impl Upstream {
    /// A worker's connections to `origin` (scheme and host of Graph's URL).
    pub fn new(origin: &Uri, http2: bool) -> Self {
        if http2 {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .enable_http2()
                .build();
            return Self::Client(Box::new((
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(IDLE_TIMEOUT)
                    .pool_max_idle_per_host(MAX_IDLE)
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .build(connector),
                origin.clone(),
            )));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let host = origin
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        Self::Pool(Arc::new(Pool {
            connector,
            origin: origin.clone(),
            host,
            idle: Mutex::new(Vec::new()),
            conns: Mutex::new(Vec::new()),
        }))
    }

    /// Send one call, borrowed from the caller's request (see [`Call`]).
    pub async fn send(&self, call: Call<'_>, body: Outgoing) -> Result<Response<Answer>, Failure> {
        match self {
            Self::Pool(pool) => pool.send(call, body).await,
            Self::Client(client) => {
                let mut req = call.request(body.into_body())?;
                // Graph's host, from the URI (the caller's named the proxy).
                req.headers_mut().remove(header::HOST);
                let (client, origin) = &**client;
                if req.uri().scheme().is_none() {
                    let mut parts = std::mem::take(req.uri_mut()).into_parts();
                    parts.scheme = origin.scheme().cloned();
                    parts.authority = origin.authority().cloned();
                    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| Failure::Broken)?;
                }
                Self::answer(client.request(req).await)
            }
        }
    }

    fn answer(
        r: Result<Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
    ) -> Result<Response<Answer>, Failure> {
        match r {
            Ok(r) => Ok(r.map(|inner| Answer(Kind::Hyper { inner, back: None }))),
            Err(e) if e.is_connect() => Err(Failure::Connect),
            Err(_) => Err(Failure::Broken),
        }
    }
}

/// Kept-alive HTTP/1.1 connections to one origin, for one worker.
pub struct Pool {
    connector: Connector,
    origin: Uri,
    host: Option<HeaderValue>,
    /// hyper's connections, for calls that stream their bodies.
    idle: Mutex<Vec<(SendRequest<ProxyBody>, Stopwatch)>>,
    /// Connections driven by the calls themselves, for the rest.
    conns: Mutex<Vec<(h1::Conn, Stopwatch)>>,
}

impl Pool {
    async fn sender(&self) -> Result<SendRequest<ProxyBody>, Failure> {
        loop {
            // The most recent connection that is ready already: one put back an instant ago
            // may not be (its task has not yet seen the answer end), and waiting for it costs
            // a wake-up per call.
            let next = self.idle.lock().ok().and_then(|mut idle| {
                match idle.iter().rposition(|(s, _)| s.is_ready()) {
                    Some(at) => Some(idle.swap_remove(at)),
                    None => idle.pop(),
                }
            });
            let Some((mut sender, since)) = next else {
                break;
            };
            if since.elapsed() >= IDLE_TIMEOUT || sender.is_closed() {
                continue; // dropping it closes the connection
            }
            // Ready at once, or as soon as the connection's task has seen the last answer end.
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let io = self.connect().await?.into_inner();
        // A call's head and body in one buffer, not a vectored write (see the server's).
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await
            .map_err(|_| Failure::Connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "A connection to Graph ended with an error.");
            }
        });
        Ok(sender)
    }

    /// A new connection to Graph (TLS for `https://`).
    async fn connect(&self) -> Result<h1::Io, Failure> {
        let io = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(|_| Failure::Connect)?;
        Ok(hyper_util::rt::TokioIo::new(io))
    }

    /// The most recently used idle connection that is not too old at `now` and still open.
    fn checkout(&self, now: Stopwatch) -> Option<h1::Conn> {
        let mut conns = self.conns.lock().ok()?;
        while let Some((mut conn, since)) = conns.pop() {
            if now.since(since) < IDLE_TIMEOUT && conn.still_open() {
                return Some(conn);
            }
        }
        None
    }

    /// A connection whose last answer was read to its end, idle since `since`.
    pub(crate) fn put_back_conn(&self, conn: h1::Conn, since: Stopwatch) {
        if let Ok(mut conns) = self.conns.lock()
            && conns.len() < MAX_IDLE
        {
            conns.push((conn, since));
        }
    }

    async fn send(
        self: &Arc<Self>,
        call: Call<'_>,
        body: Outgoing,
    ) -> Result<Response<Answer>, Failure> {
        let body = match body {
            Outgoing::Full(bytes) => bytes,
            // (Boxed, as connecting is: rare, and each call's future would hold room for them.)
            Outgoing::Stream(body) => {
                return Box::pin(self.send_hyper(call.request(body)?)).await;
            }
        };
        let target = call.target;
        loop {
            let conn = match self.checkout(call.at) {
                Some(conn) => conn,
                None => h1::Conn::new(Box::pin(self.connect()).await?),
            };
            let exchanged = conn
                .exchange(call.method, target, call.headers, self.host.as_ref(), &body)
                .await;
            match exchanged {
                Ok(h1::Exchanged { head, body }) => {
                    let answer = match body {
                        h1::Delivered::Whole(bytes, conn) => {
                            if let Some(conn) = conn {
                                self.put_back_conn(conn, call.at);
                            }
                            Kind::Whole(Some(bytes))
                        }
                        h1::Delivered::Streaming(mut streaming) => {
                            streaming.returns_to(Arc::clone(self));
                            Kind::Streaming(streaming)
                        }
                    };
                    return Ok(head.map(|()| Answer(answer)));
                }
                // Closed by Graph while idle, found as the call was written: not sent; again
                // on another.
                Err(h1::Error::Stale) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "A call to Graph failed.");
                    return Err(Failure::Broken);
                }
            }
        }
    }

    async fn send_hyper(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Answer>, Failure> {
        // Origin form on the request line, Graph's host in `Host`.
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = None;
        parts.authority = None;
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(parts).map_err(|_| Failure::Broken)?;
        // Graph's host, not the caller's (which named the proxy).
        if let Some(host) = &self.host {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let mut sender = self.sender().await?;
        let answer = sender
            .send_request(req)
            .await
            .map_err(|_| Failure::Broken)?;
        let pool = Arc::clone(self);
        Ok(answer.map(|inner| {
            Answer(Kind::Hyper {
                inner,
                back: Some((sender, pool)),
            })
        }))
    }

    fn put_back(&self, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push((sender, Stopwatch::start()));
        }
    }
}

/// Graph's answer body. Read to its end, its connection goes back to the pool.
pub struct Answer(Kind);

enum Kind {
    /// From one of hyper's connections (and the pool it goes back to, when pooled).
    Hyper {
        inner: Incoming,
        back: Option<(SendRequest<ProxyBody>, Arc<Pool>)>,
    },
    /// All of it came with the head; its connection is back in the pool already.
    Whole(Option<Bytes>),
    /// Still arriving on a connection of the pool's.
    Streaming(Box<h1::Streaming>),
}

impl Kind {
    fn release(&mut self) {
        if let Self::Hyper { back, .. } = self
            && let Some((sender, pool)) = back.take()
        {
            pool.put_back(sender);
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut self.get_mut().0;
        match this {
            Kind::Whole(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Streaming(streaming) => Pin::new(&mut **streaming).poll_frame(cx),
            Kind::Hyper { inner, back } => {
                let frame = std::task::ready!(Pin::new(inner).poll_frame(cx));
                match &frame {
                    None => {
                        if let Some((sender, pool)) = back.take() {
                            pool.put_back(sender);
                        }
                    }
                    // A broken body leaves the connection in no state to reuse.
                    Some(Err(_)) => *back = None,
                    Some(Ok(_)) => {}
                }
                Poll::Ready(frame.map(|f| f.map_err(|e| -> BoxError { Box::new(e) })))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Hyper { inner, .. } => inner.is_end_stream(),
            Kind::Whole(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Streaming(streaming) => streaming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Hyper { inner, .. } => inner.size_hint(),
            Kind::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Streaming(streaming) => streaming.size_hint(),
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // An empty body is never polled: it ended all the same. One dropped half-read is not.
        if let Kind::Hyper { inner, .. } = &self.0
            && inner.is_end_stream()
        {
            self.0.release();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        let conns = self.conns.lock().map_or(0, |c| c.len());
        f.debug_struct("Pool")
            .field("origin", &self.origin)
            .field("idle", &idle)
            .field("conns", &conns)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0 {
            Kind::Hyper { back, .. } if back.is_some() => "pooled hyper",
            Kind::Hyper { .. } => "hyper",
            Kind::Whole(_) => "whole",
            Kind::Streaming(_) => "streaming",
        };
        f.debug_tuple("Answer").field(&kind).finish()
    }
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(bytes) => write!(f, "Outgoing::Full({} bytes)", bytes.len()),
            Self::Stream(_) => f.write_str("Outgoing::Stream"),
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pool(_) => f.write_str("Upstream::Pool"),
            Self::Client(_) => f.write_str("Upstream::Client"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_targets_that_keep_the_request_line_whole_go() {
        for ok in [
            "/",
            "/v26.0/me?fields=id%2Cname&access_token=EAAx",
            "/a/b?c=\"{}\"",
            "/\u{e9}",
        ] {
            assert!(fits_request_line(ok), "{ok:?}");
        }
        for bad in [
            "",
            "v26.0/me",
            "http://graph.facebook.com/me",
            "/me?a=b c",
            "/me?a=b\r\nX-Injected: 1",
            "/me\t",
            "/me\u{7f}",
            "/me\0",
        ] {
            assert!(!fits_request_line(bad), "{bad:?}");
        }
    }

    /// A call's future is held in its connection's task for every call, and moved when the
    /// call starts: the rare paths in it (connecting, a streamed upload through hyper) are
    /// boxed so that it stays small. (It was 2.7 kB before they were, and 1.4 kB
    /// while each layer held its own copy of the request, before [`Call`].)
    #[test]
    fn a_calls_future_to_graph_stays_small() {
        let origin: Uri = "http://127.0.0.1:9".parse().unwrap();
        let pool = Upstream::new(&origin, false);
        let (method, headers) = (Method::GET, HeaderMap::new());
        let call = Call {
            method: &method,
            target: "/me",
            headers: &headers,
            at: Stopwatch::start(),
        };
        let sending = pool.send(call, Outgoing::Full(Bytes::new()));
        let size = std::mem::size_of_val(&sending);
        assert!(size <= 1024, "{size} bytes");
    }
}
