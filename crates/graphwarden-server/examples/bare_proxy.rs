//! The floor under graphwarden's Graph proxy, for `bench/proxy.sh`: the same hyper 1 server
//! (with `proxy::guard` for unused connections instead of hyper's header-read time-out),
//! upstream connection pool (`graphwarden_server::proxy::upstream`), worker threads and
//! single-threaded runtimes as `graphwarden_server::proxy`, forwarding every call as it is and
//! doing nothing else (and with the same allocator, mimalloc) — no token lookup, no usage headers, no pacing, no metrics, no records.
//! What graphwarden's proxy costs above this is graphwarden's own work; what this costs above
//! nginx is the HTTP stack's.
//!
//! `cargo run --release -p graphwarden-server --example bare_proxy -- LISTEN UPSTREAM [WORKERS]`
//! (UPSTREAM an origin: scheme, host and port; each call goes with its path and query as they came)
//! prints `listening on http://ADDR` once it accepts calls, and runs until killed.
//! `BARE_HTTP2=1` uses the `proxy.http2` way to Graph (`hyper_util`'s pooled client).

use std::convert::Infallible;
use std::sync::Arc;

use graphwarden_server::proxy::body::ProxyBody;
use graphwarden_server::proxy::guard;
use graphwarden_server::proxy::upstream::{Call, Outgoing, Upstream};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};

/// The same allocator as the `graphwarden` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Forward a call as it came: its path and query in origin form (as graphwarden's proxy sends
/// a call whose query it passes on unchanged), the caller's `Host` replaced with Graph's.
async fn forward(req: Request<Incoming>, upstream: Upstream) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(http::header::HOST);
    let call = Call {
        method: &parts.method,
        target: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        headers: &parts.headers,
        at: graphwarden_core::Stopwatch::start(),
    };
    let body = Outgoing::stream(body.map_err(Into::into).boxed());
    match upstream.send(call, body).await {
        Ok(answer) => answer.map(BodyExt::boxed),
        Err(_) => status(502),
    }
}

fn status(code: u16) -> Response<ProxyBody> {
    let mut r = Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_GATEWAY);
    r
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_proxy LISTEN UPSTREAM [WORKERS]";
    let listen = args.next().ok_or(usage)?;
    let upstream_url = args.next().ok_or(usage)?;
    let workers = match args.next() {
        Some(n) => n.parse::<usize>()?,
        None => std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    };
    let origin: Uri = upstream_url.trim_end_matches('/').parse()?;
    let http2 = std::env::var("BARE_HTTP2").is_ok_and(|v| v == "1");
    // One listening socket per worker (SO_REUSEPORT), so the kernel spreads connections over
    // the workers.
    let reuse = |addr: std::net::SocketAddr| -> std::io::Result<std::net::TcpListener> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let std = socket.listen(4096)?.into_std()?;
        Ok(std)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let _guard = runtime.enter();
    let first = reuse(listen.parse()?)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(reuse(addr)?);
    }
    println!("listening on http://{addr}");
    let mut threads = Vec::new();
    for listener in listeners {
        let origin = origin.clone();
        threads.push(std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return eprintln!("a worker could not start its runtime: {e}"),
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return eprintln!("a worker could not listen: {e}"),
                };
                let upstream = Upstream::new(&origin, http2);
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let upstream = upstream.clone();
                    let activity = guard::Activity::new();
                    let service = hyper::service::service_fn({
                        let activity = Arc::clone(&activity);
                        move |req| {
                            let upstream = upstream.clone();
                            let call = activity.begin();
                            async move {
                                Ok::<_, Infallible>(call.answer(forward(req, upstream).await))
                            }
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .writev(false) // as the proxy's
                        .header_read_timeout(None)
                        .serve_connection(TokioIo::new(stream), service);
                    guard::spawn_guarded(
                        async move {
                            let _ = conn.await;
                        },
                        activity,
                    );
                }
            });
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
