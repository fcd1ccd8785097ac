//! What every request handler shares: the inventory, the lifecycle workers, the scheduler, and
//! the limits of the API.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use graphwarden_core::Clock;
use graphwarden_lifecycle::{Checker, Renewer};
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(300),
            rate_limit_per_minute: 600,
        }
    }
}

/// Shared state of the HTTP application (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    inventory: Arc<Inventory>,
    checker: Checker,
    renewer: Renewer,
    clock: Arc<dyn Clock>,
    scheduler: Scheduler,
    config: ServerConfig,
    limiter: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.0.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        inventory: Arc<Inventory>,
        checker: Checker,
        renewer: Renewer,
        clock: Arc<dyn Clock>,
        scheduler: Scheduler,
        config: ServerConfig,
    ) -> Self {
        let per_minute =
            NonZeroU32::new(config.rate_limit_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let limiter = RateLimiter::keyed(Quota::per_minute(per_minute));
        Self(Arc::new(Inner {
            inventory,
            checker,
            renewer,
            clock,
            scheduler,
            config,
            limiter,
        }))
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.0.inventory
    }

    pub fn checker(&self) -> &Checker {
        &self.0.checker
    }

    pub fn renewer(&self) -> &Renewer {
        &self.0.renewer
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.0.scheduler
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// Whether the key may make another request now.
    pub(crate) fn within_rate_limit(&self, key_id: &str) -> bool {
        self.0.limiter.check_key(&key_id.to_owned()).is_ok()
    }
}
