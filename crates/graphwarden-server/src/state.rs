//! What every request handler shares: the inventory, the lifecycle workers, the scheduler, and
//! the limits of the API.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use graphwarden_core::Clock;
use graphwarden_lifecycle::{Checker, Renewer};
use graphwarden_meta::GraphClient;
use graphwarden_store::Inventory;

use crate::scheduler::Scheduler;

/// Limits and settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Requests per minute allowed per API key (bursts up to the same number).
    pub rate_limit_per_minute: u32,
    /// The address people and Meta reach this server at (`https://graphwarden.example.com`),
    /// for re-login links, OAuth redirects and data-deletion status pages; when unset, the
    /// request's `Host` over plain HTTP.
    pub public_url: Option<String>,
    /// How long a re-login link stays valid.
    pub link_ttl: Duration,
    /// `/metrics` asks for a reader key.
    pub metrics_require_key: bool,
    /// What audits run from the dashboard hold tokens to (`[audit]`).
    pub audit: graphwarden_lifecycle::audit::AuditPolicy,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(300),
            rate_limit_per_minute: 600,
            public_url: None,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            metrics_require_key: false,
            audit: graphwarden_lifecycle::audit::AuditPolicy::default(),
        }
    }
}

/// Shared state of the HTTP application (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The workers the API drives.
#[derive(Debug, Clone)]
pub struct Services {
    pub inventory: Arc<Inventory>,
    pub graph: GraphClient,
    pub checker: Checker,
    pub renewer: Renewer,
    pub clock: Arc<dyn Clock>,
    pub scheduler: Scheduler,
    /// The alert engine; `None` when alerts are disabled.
    pub alerts: Option<crate::alerting::AlertEngine>,
}

struct Inner {
    services: Services,
    metrics: Arc<crate::metrics::Metrics>,
    /// The Graph proxy, when this server runs one (weak: the proxy holds this state).
    proxy: std::sync::OnceLock<std::sync::Weak<crate::proxy::Proxy>>,
    config: ServerConfig,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Browser logins in progress, by their `state`.
    logins: Mutex<HashMap<String, PendingLogin>>,
}

/// A browser login between `/oauth/start` and `/oauth/callback`.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub app_id: graphwarden_core::AppId,
    pub alias: Option<graphwarden_core::TokenAlias>,
    pub redirect_uri: String,
    pub started: jiff::Timestamp,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(services: Services, config: ServerConfig) -> Self {
        let per_minute =
            NonZeroU32::new(config.rate_limit_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute));
        Self(Arc::new(Inner {
            services,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            proxy: std::sync::OnceLock::new(),
            config,
            limiter,
            logins: Mutex::new(HashMap::new()),
        }))
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.0.services.inventory
    }

    pub fn graph(&self) -> &GraphClient {
        &self.0.services.graph
    }

    pub fn checker(&self) -> &Checker {
        &self.0.services.checker
    }

    pub fn renewer(&self) -> &Renewer {
        &self.0.services.renewer
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.services.clock
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.0.services.scheduler
    }

    pub fn alerts(&self) -> Option<&crate::alerting::AlertEngine> {
        self.0.services.alerts.as_ref()
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.0.metrics
    }

    /// The Graph proxy running beside this API, if any.
    pub fn proxy(&self) -> Option<Arc<crate::proxy::Proxy>> {
        self.0.proxy.get().and_then(std::sync::Weak::upgrade)
    }

    pub(crate) fn set_proxy(&self, proxy: &Arc<crate::proxy::Proxy>) {
        let _ = self.0.proxy.set(Arc::downgrade(proxy));
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// Something a request did may change which alerts fire (a check, a renewal, a callback):
    /// have the alert engine look again now rather than at its next period.
    pub fn tokens_changed(&self) {
        self.0.services.scheduler.finished_signal().notify_one();
    }

    /// Remember a browser login under `state`, forgetting those older than an hour.
    pub(crate) fn start_login(&self, state: String, login: PendingLogin) {
        if let Ok(mut logins) = self.0.logins.lock() {
            let cutoff = login.started - jiff::SignedDuration::from_hours(1);
            logins.retain(|_, l| l.started > cutoff);
            logins.insert(state, login);
        }
    }

    /// Take the login started under `state` (each state works once).
    pub(crate) fn take_login(&self, state: &str) -> Option<PendingLogin> {
        self.0.logins.lock().ok()?.remove(state)
    }

    /// Whether the key may make another request now.
    pub(crate) fn within_rate_limit(&self, key_id: &str) -> bool {
        self.0.limiter.check_key(&key_id.to_owned()).is_ok()
    }
}
