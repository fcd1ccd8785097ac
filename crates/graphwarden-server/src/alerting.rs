//! The alert engine as the daemon runs it: evaluate the rules ([`rule`]) over the inventory
//! and the proxy's call rollups ([`traffic`]),
//! hand the result to the core [`Dispatcher`], and store its new state together with the
//! notifications it says are due (an outbox), in one transaction; a sender drains the outbox
//! with `graphwarden-notify`, retrying with backoff.
//!
//! Which alerts fire is kept in the dispatcher's state, stored after every pass, so a restart
//! neither re-sends what was sent nor loses what was due (a delivery left pending is tried
//! again). What does not live here: matching, grouping, inhibition and silencing (core), the
//! wire formats of receivers (`graphwarden-notify`), SQL (store).

pub mod rule;
pub mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::Clock;
use graphwarden_core::alert::{
    Alert, AlertStatus, AlertView, DispatchConfig, DispatchState, Dispatcher, Route, RouteTree,
    Silence,
};
use graphwarden_notify::{Deliverer, Delivery, ReceiverConfig};
use graphwarden_store::{AlertDelivery, Inventory, NewDelivery, StoreError, TokenFilter};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Mutex, Notify};

pub use rule::RuleConfig;

/// The row in the jobs table whose lease says which instance runs the engine.
pub const LEASE: &str = "alert-engine";

/// The receiver every alert goes to when no route is configured: notifications to it are
/// written to the log and not delivered anywhere.
pub const LOG_RECEIVER: &str = "log";

/// How the alert engine runs.
#[derive(Debug, Clone)]
pub struct AlertingConfig {
    /// How often the rules are evaluated (also after each scheduler job).
    pub evaluate_every: Duration,
    pub rules: RuleConfig,
    pub dispatch: DispatchConfig,
    /// Receivers by name; [`LOG_RECEIVER`] needs no entry.
    pub receivers: BTreeMap<String, ReceiverConfig>,
    /// graphwarden's public base URL, for re-login links in alerts.
    pub base_url: String,
    /// How long a re-login link in an alert stays valid.
    pub link_ttl: SignedDuration,
    /// Attempts at one delivery before it is marked `failed`.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub first_backoff: SignedDuration,
    pub max_backoff: SignedDuration,
    /// This instance's name in the engine's lease: with several instances on one database,
    /// only the holder evaluates and delivers.
    pub owner: String,
}

impl AlertingConfig {
    /// Everything to [`LOG_RECEIVER`], default rules and timings.
    pub fn new(base_url: &str) -> Result<Self, AlertConfigError> {
        let tree =
            RouteTree::new(Route::to(LOG_RECEIVER)).map_err(|e| AlertConfigError(e.to_string()))?;
        Ok(Self {
            evaluate_every: Duration::from_secs(60),
            rules: RuleConfig::default(),
            dispatch: DispatchConfig::new(tree),
            receivers: BTreeMap::new(),
            base_url: base_url.to_owned(),
            link_ttl: SignedDuration::from_hours(24 * 7),
            max_attempts: 10,
            first_backoff: SignedDuration::from_secs(10),
            max_backoff: SignedDuration::from_hours(1),
            owner: "graphwarden".to_owned(),
        })
    }

    /// What serde cannot check: each receiver's settings, the inhibition rules, and that every
    /// receiver a route names exists.
    pub fn validate(&self) -> Result<(), AlertConfigError> {
        for (name, receiver) in &self.receivers {
            receiver
                .validate()
                .map_err(|e| AlertConfigError(format!("receiver `{name}`: {e}")))?;
        }
        self.dispatch
            .validate()
            .map_err(|e| AlertConfigError(e.to_string()))?;
        for name in self.dispatch.route.receivers() {
            if name != LOG_RECEIVER && !self.receivers.contains_key(name) {
                return Err(AlertConfigError(format!(
                    "the alert route names receiver `{name}`, which is not configured under \
                     `[alerts.receivers.{name}]`"
                )));
            }
        }
        Ok(())
    }

    fn resend_horizon(&self) -> SignedDuration {
        self.dispatch
            .route
            .routes()
            .iter()
            .map(|r| r.repeat_interval)
            .max()
            .unwrap_or(SignedDuration::from_hours(4))
            .checked_mul(3)
            .unwrap_or(SignedDuration::MAX)
    }
}

/// An alert configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlertConfigError(pub String);

/// What went wrong in one pass of the engine.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored alert state cannot be read: {0}")]
    State(serde_json::Error),
    #[error("cannot set up delivery: {0}")]
    Setup(String),
}

/// The alert engine (cheap to clone).
#[derive(Clone)]
pub struct AlertEngine(Arc<Inner>);

struct Inner {
    inventory: Arc<Inventory>,
    clock: Arc<dyn Clock>,
    config: AlertingConfig,
    dispatcher: Mutex<Dispatcher>,
    deliverer: Deliverer,
    /// Told when the outbox has something new.
    outbox: Notify,
}

impl std::fmt::Debug for AlertEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertEngine")
            .field(
                "receivers",
                &self.0.config.receivers.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Alerts firing after it.
    pub firing: usize,
    /// Notifications put in the outbox.
    pub queued: usize,
    /// Notifications to the log receiver.
    pub logged: usize,
}

impl AlertEngine {
    /// The engine, picking up the dispatcher state stored by the last run.
    pub async fn start(
        inventory: Arc<Inventory>,
        clock: Arc<dyn Clock>,
        config: AlertingConfig,
    ) -> Result<Self, AlertError> {
        let deliverer = Deliverer::new().map_err(|e| AlertError::Setup(e.to_string()))?;
        let now = clock.now();
        let dispatcher = match inventory.store().alert_state().await? {
            Some(json) => {
                let state: DispatchState =
                    serde_json::from_str(&json).map_err(AlertError::State)?;
                Dispatcher::restore(config.dispatch.clone(), state, now)
            }
            None => Dispatcher::new(config.dispatch.clone()),
        };
        Ok(Self(Arc::new(Inner {
            inventory,
            clock,
            config,
            dispatcher: Mutex::new(dispatcher),
            deliverer,
            outbox: Notify::new(),
        })))
    }

    pub fn config(&self) -> &AlertingConfig {
        &self.0.config
    }

    /// Evaluate the rules now, update the dispatcher, and store its state with the due
    /// notifications. On a store failure the dispatcher is left as it was, so nothing is
    /// recorded as sent that was not queued.
    pub async fn evaluate(&self) -> Result<Evaluation, AlertError> {
        let inner = &self.0;
        let now = inner.clock.now();
        let store = inner.inventory.store();
        let tokens = inner.inventory.tokens(&TokenFilter::default()).await?;
        let silences = store.live_silences(now.as_millisecond()).await?;
        let relogin = |t: &graphwarden_store::Token| {
            crate::handler::oauth::signed_relogin_link(
                &inner.inventory,
                now,
                inner.config.link_ttl,
                &inner.config.base_url,
                &t.app_id,
                &t.alias,
            )
            .map(|(url, _)| url)
            .ok()
        };
        let mut wanted = rule::evaluate(&tokens, now, &inner.config.rules, &relogin);
        if inner.config.rules.traffic.enabled {
            let since = now.as_millisecond() - 24 * 3600 * 1000;
            let rollups = store.rollups_since(since).await?;
            wanted.extend(traffic::evaluate(
                &rollups,
                now,
                &inner.config.rules.traffic,
            ));
        }
        let trends = store.quality_trends().await?;
        wanted.extend(traffic::quality(&trends, now, &inner.config.rules.quality));

        let mut dispatcher = inner.dispatcher.lock().await;
        let before = dispatcher.clone();
        let mut firing = BTreeSet::new();
        for mut alert in wanted {
            let fp = alert.fingerprint();
            if let Some(known) = dispatcher.alert(&fp)
                && known.status() == AlertStatus::Firing
            {
                alert.starts_at = known.starts_at;
            }
            firing.insert(fp);
            dispatcher.upsert(alert, now);
        }
        let stopped: Vec<Alert> = dispatcher
            .alerts()
            .filter(|a| a.status() == AlertStatus::Firing && !firing.contains(&a.fingerprint()))
            .cloned()
            .collect();
        for mut alert in stopped {
            alert.ends_at = Some(now);
            dispatcher.upsert(alert, now);
        }
        let notifications = dispatcher.flush(now, &silences);
        let mut report = Evaluation {
            firing: firing.len(),
            ..Evaluation::default()
        };
        let mut deliveries = Vec::new();
        for mut n in notifications {
            n.external_url.clone_from(&inner.config.base_url);
            if n.receiver == LOG_RECEIVER && !inner.config.receivers.contains_key(LOG_RECEIVER) {
                report.logged += 1;
                tracing::info!(
                    group_key = %n.group_key,
                    status = n.status.as_str(),
                    alerts = n.alerts.len(),
                    "Alert group `{}` is {} ({} alerts); no receiver is configured, so it is only logged.",
                    n.group_key,
                    n.status.as_str(),
                    n.alerts.len()
                );
                continue;
            }
            deliveries.push(NewDelivery {
                receiver: n.receiver.clone(),
                notification: n,
            });
        }
        report.queued = deliveries.len();
        let state = match serde_json::to_string(dispatcher.state()) {
            Ok(s) => s,
            Err(e) => {
                *dispatcher = before;
                return Err(AlertError::State(e));
            }
        };
        if let Err(e) = store
            .save_alert_state(&state, &deliveries, now.as_millisecond())
            .await
        {
            *dispatcher = before;
            return Err(e.into());
        }
        drop(dispatcher);
        if report.queued > 0 {
            inner.outbox.notify_one();
        }
        Ok(report)
    }

    /// Try every delivery due now once; returns how many were delivered.
    pub async fn deliver_due(&self) -> Result<usize, AlertError> {
        let inner = &self.0;
        let now = inner.clock.now();
        let store = inner.inventory.store();
        let due = store.due_deliveries(now.as_millisecond(), 100).await?;
        let mut delivered = 0;
        for d in due {
            if self.deliver_one(&d, now).await? {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    async fn deliver_one(&self, d: &AlertDelivery, now: Timestamp) -> Result<bool, AlertError> {
        let inner = &self.0;
        let store = inner.inventory.store();
        let attempts = d.attempts + 1;
        let Some(receiver) = inner.config.receivers.get(&d.receiver) else {
            let error = format!("receiver `{}` is no longer configured", d.receiver);
            tracing::warn!(delivery = d.id, "Gave up delivery {}: {error}.", d.id);
            store
                .fail_delivery(d.id, attempts, &error, now.as_millisecond())
                .await?;
            return Ok(false);
        };
        let id = delivery_id(d.id);
        let delivery = Delivery::new(&id, now).with_resend_horizon(inner.config.resend_horizon());
        match inner
            .deliverer
            .deliver(receiver, &d.notification, &delivery)
            .await
        {
            Ok(()) => {
                store
                    .mark_delivered(d.id, attempts, now.as_millisecond())
                    .await?;
                Ok(true)
            }
            Err(e) => {
                let error = e.to_string();
                let give_up = !e.is_retryable() || attempts >= i64::from(inner.config.max_attempts);
                if give_up {
                    tracing::error!(
                        receiver = %d.receiver, delivery = d.id, attempts,
                        "Gave up delivering an alert notification to `{}`: {error}", d.receiver
                    );
                    store
                        .fail_delivery(d.id, attempts, &error, now.as_millisecond())
                        .await?;
                } else {
                    let wait = backoff(&inner.config, attempts, e.retry_after());
                    let next = now.checked_add(wait).unwrap_or(Timestamp::MAX);
                    tracing::warn!(
                        receiver = %d.receiver, delivery = d.id, attempts,
                        "Could not deliver an alert notification to `{}`; trying again at {next}: {error}",
                        d.receiver
                    );
                    store
                        .retry_delivery(d.id, attempts, next.as_millisecond(), &error)
                        .await?;
                }
                Ok(false)
            }
        }
    }

    /// Every alert the engine holds, with what mutes it now. Read from the stored state, so
    /// every instance answers alike, whichever runs the engine.
    pub async fn alerts(&self) -> Result<Vec<AlertView>, AlertError> {
        let now = self.0.clock.now();
        let store = self.0.inventory.store();
        let silences = store.live_silences(now.as_millisecond()).await?;
        let Some(json) = store.alert_state().await? else {
            return Ok(Vec::new());
        };
        let state: DispatchState = serde_json::from_str(&json).map_err(AlertError::State)?;
        Ok(
            Dispatcher::restore(self.0.config.dispatch.clone(), state, now)
                .alert_views(now, &silences),
        )
    }

    /// Take or keep the engine's lease; `true` while this instance holds it. On taking it, the
    /// dispatcher picks up the state the previous holder stored.
    async fn lead(&self, leading: bool, lease: Duration) -> bool {
        let inner = &self.0;
        let store = inner.inventory.store();
        let now = inner.clock.now().as_millisecond();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let claim = graphwarden_store::JobClaim {
            name: LEASE,
            owner: &inner.config.owner,
            now_ms: now,
            lease_until_ms: until,
            expected_next_ms: None,
            new_next_ms: None,
        };
        let held = match store.claim_job(&claim).await {
            Ok(held) => held,
            Err(e) => {
                tracing::error!("The alert engine could not take its lease: {e}");
                false
            }
        };
        if held && !leading {
            tracing::info!(owner = %inner.config.owner, "This instance now runs the alert engine.");
            if let Err(e) = self.reload().await {
                tracing::error!("The alert engine could not load its stored state: {e}");
                return false;
            }
        }
        held
    }

    /// Replace the dispatcher's state with the stored one.
    async fn reload(&self) -> Result<(), AlertError> {
        let inner = &self.0;
        if let Some(json) = inner.inventory.store().alert_state().await? {
            let state: DispatchState = serde_json::from_str(&json).map_err(AlertError::State)?;
            let now = inner.clock.now();
            *inner.dispatcher.lock().await =
                Dispatcher::restore(inner.config.dispatch.clone(), state, now);
        }
        Ok(())
    }

    /// When the engine next has work: the dispatcher's next flush or the next due delivery.
    async fn next_wakeup(&self) -> Option<Timestamp> {
        let flush = self.0.dispatcher.lock().await.next_wakeup();
        let delivery = self
            .0
            .inventory
            .store()
            .next_delivery_at()
            .await
            .ok()
            .flatten();
        [flush, delivery].into_iter().flatten().min()
    }

    /// Evaluate every `evaluate_every`, after each job `job_finished` signals, and when the
    /// dispatcher or a delivery is due; deliver what is due; until `shutdown`. With several
    /// instances on one database, only the one holding the engine's lease does this.
    pub async fn run(
        &self,
        job_finished: Arc<Notify>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        let every = self.0.config.evaluate_every.max(Duration::from_secs(1));
        let mut last_eval: Option<Timestamp> = None;
        let lease = every * 2 + Duration::from_secs(30);
        let store = self.0.inventory.store();
        let now_ms = self.0.clock.now().as_millisecond();
        if let Err(e) = store.upsert_job(LEASE, "lease", None, now_ms).await {
            tracing::error!("The alert engine could not register its lease: {e}");
        }
        let mut leading = false;
        loop {
            leading = self.lead(leading, lease).await;
            if !leading {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(every) => {}
                }
                continue;
            }
            let now = self.0.clock.now();
            let eval_due = last_eval.is_none_or(|t| {
                now.duration_since(t) >= SignedDuration::try_from(every).unwrap_or_default()
            });
            let flush_due = self.next_wakeup().await.is_some_and(|t| t <= now);
            let mut failed = false;
            if eval_due || flush_due {
                if let Err(e) = self.evaluate().await {
                    tracing::error!("The alert engine could not evaluate: {e}");
                    failed = true;
                }
                // After a failure too: the next try waits a whole period, not a busy loop.
                last_eval = Some(now);
            }
            if let Err(e) = self.deliver_due().await {
                tracing::error!("The alert engine could not deliver notifications: {e}");
                failed = true;
            }
            let now = self.0.clock.now();
            let sleep = if failed {
                every
            } else {
                self.next_wakeup()
                    .await
                    .map_or(every, |t| {
                        Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
                    })
                    .clamp(Duration::from_millis(200), every)
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(sleep) => {}
                () = job_finished.notified() => { last_eval = None; }
                () = self.0.outbox.notified() => {}
            }
        }
        if leading && let Err(e) = store.release_job(LEASE, &self.0.config.owner).await {
            tracing::warn!("The alert engine could not release its lease: {e}");
        }
        tracing::info!("The alert engine is stopping.");
    }
}

/// The id receivers see for outbox row `id`, the same on every attempt.
pub fn delivery_id(id: i64) -> String {
    format!("gwd_{id}")
}

/// The wait before attempt `attempts + 1`: doubling from `first_backoff`, capped, and never
/// shorter than the receiver asked for.
fn backoff(
    config: &AlertingConfig,
    attempts: i64,
    retry_after: Option<Duration>,
) -> SignedDuration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let doubled = config
        .first_backoff
        .checked_mul(1_i32 << exp.min(30))
        .unwrap_or(config.max_backoff)
        .min(config.max_backoff);
    let asked = retry_after
        .and_then(|d| SignedDuration::try_from(d).ok())
        .unwrap_or(SignedDuration::ZERO);
    doubled.max(asked)
}

/// Silences as the API and CLI make them, checked.
pub fn new_silence(
    matchers: &[String],
    starts_at: Timestamp,
    ends_at: Timestamp,
    created_by: &str,
    comment: &str,
) -> Result<Silence, graphwarden_core::InvalidInput> {
    let mut parsed = graphwarden_core::alert::Matchers::default();
    for m in matchers {
        for one in graphwarden_core::alert::Matchers::parse(m)?.into_vec() {
            parsed.push(one);
        }
    }
    let silence = Silence {
        id: graphwarden_store::new_silence_id(),
        matchers: parsed,
        starts_at,
        ends_at,
        created_by: created_by.to_owned(),
        comment: comment.to_owned(),
    };
    silence.validate()?;
    Ok(silence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let c = AlertingConfig::new("http://x").unwrap();
        assert_eq!(backoff(&c, 1, None), SignedDuration::from_secs(10));
        assert_eq!(backoff(&c, 2, None), SignedDuration::from_secs(20));
        assert_eq!(backoff(&c, 4, None), SignedDuration::from_secs(80));
        assert_eq!(backoff(&c, 40, None), SignedDuration::from_hours(1));
        assert_eq!(
            backoff(&c, 1, Some(Duration::from_secs(120))),
            SignedDuration::from_secs(120)
        );
    }

    #[test]
    fn a_route_to_an_unknown_receiver_is_refused() {
        let mut c = AlertingConfig::new("http://x").unwrap();
        c.validate().unwrap();
        c.dispatch = DispatchConfig::new(RouteTree::new(Route::to("pager")).unwrap());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("`pager`"), "{err}");
    }

    #[test]
    fn silences_need_matchers_and_a_comment() {
        let t = Timestamp::from_second(1_000).unwrap();
        let end = Timestamp::from_second(2_000).unwrap();
        let s = new_silence(&[r#"token="ana""#.to_owned()], t, end, "ops", "deploy").unwrap();
        assert_eq!(s.matchers.to_string(), r#"{token="ana"}"#);
        assert!(new_silence(&[], t, end, "ops", "deploy").is_err());
        assert!(new_silence(&["token=~\".*\"".to_owned()], t, end, "ops", "x").is_err());
    }
}
