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
//! With `proxy.http2` the worker uses `hyper_util`'s pooled client instead, which offers
//! HTTP/2 by ALPN and multiplexes calls over one TLS connection when Graph accepts it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use graphwarden_core::Stopwatch;
use http::header::{self, HeaderValue};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;

use super::body::ProxyBody;

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
        }))
    }

    /// Send one call: its URI absolute, on Graph's origin, or in origin form (a path and
    /// query, sent to Graph's origin).
    pub async fn send(&self, mut req: Request<ProxyBody>) -> Result<Response<Answer>, Failure> {
        match self {
            Self::Pool(pool) => pool.send(req).await,
            Self::Client(client) => {
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
            Ok(r) => Ok(r.map(|inner| Answer { inner, back: None })),
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
    idle: Mutex<Vec<(SendRequest<ProxyBody>, Stopwatch)>>,
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
        let io = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(|_| Failure::Connect)?;
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

    async fn send(
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
        if let Some(host) = &self.host
            && !req.headers().contains_key(header::HOST)
        {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let mut sender = self.sender().await?;
        let answer = sender
            .send_request(req)
            .await
            .map_err(|_| Failure::Broken)?;
        let pool = Arc::clone(self);
        Ok(answer.map(|inner| Answer {
            inner,
            back: Some((sender, pool)),
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
pub struct Answer {
    inner: Incoming,
    back: Option<(SendRequest<ProxyBody>, Arc<Pool>)>,
}

impl Answer {
    fn release(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            pool.put_back(sender);
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => this.release(),
            // A broken body leaves the connection in no state to reuse.
            Some(Err(_)) => this.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // An empty body is never polled: it ended all the same. One dropped half-read is not.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        f.debug_struct("Pool")
            .field("origin", &self.origin)
            .field("idle", &idle)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("pooled", &self.back.is_some())
            .finish_non_exhaustive()
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
