//! graphwarden's daemon, as `graphwarden serve` runs it: the HTTP API under `/api/v1`, health
//! probes, and the scheduler that runs inspection and renewal unattended.
//!
//! What lives here: routing, authentication by API key, the wire shapes of the API and its
//! OpenAPI description, the store-backed scheduler loop. What does not: talking to Meta
//! (`graphwarden-meta`), lifecycle policy (`graphwarden-lifecycle`), SQL (`graphwarden-store`),
//! command-line parsing and config files (the `graphwarden` binary).

pub mod alerting;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod openapi;
pub mod proxy;
pub mod scheduler;
pub mod state;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use http::{HeaderName, HeaderValue, StatusCode};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use alerting::{AlertEngine, AlertingConfig};
pub use error::ApiError;
pub use proxy::{Proxy, ProxyConfig};
pub use scheduler::{DatasetSpec, JobKind, JobSpec, Scheduler, SchedulerConfig};
pub use state::{AppState, ServerConfig, Services};

/// The whole HTTP application: every route of the API and the health probes.
pub fn router(state: AppState) -> Router {
    let (api, _) = openapi::router().split_for_parts();
    let limits = state.config();
    api.merge(dashboard::router())
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn(error::with_request_id))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

/// Serve the application on `listener` until `shutdown` completes, then stop accepting, let
/// requests in flight finish (up to `grace`), and return.
pub async fn launch_with_listener(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let app = router(state);
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopped_tx.send(());
    });
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        result = &mut serve => result,
        () = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "Requests were still running when the shutdown grace period ended; stopping anyway.");
            Ok(())
        }
    }
}
