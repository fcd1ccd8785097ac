//! Prometheus metrics at `/metrics`, in the OpenMetrics text format Prometheus scrapes.
//!
//! Two kinds: what the proxy counts as calls pass (calls and errors by app, token, outcome,
//! class and code; its latency; the raw usage header values per app, ad account, business and
//! type), kept in a registry that lives as long as the server; and what is read at scrape time
//! from the inventory, the pacer, the scheduler and the alert engine (token status and seconds
//! to expiry, throttle holds, job outcomes, alert counts), built fresh each scrape so a token
//! that is gone leaves no stale series behind.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub app: String,
    pub token: String,
    pub method: String,
    /// `forwarded`, `delayed`, `refused`, `failed`, `aborted`.
    pub outcome: String,
    /// `ok`, or graphwarden's error class (`throttled`, `token_dead`…).
    pub class: String,
    /// Meta's error code, `0` on success.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UsageLabels {
    /// `app`, `ad_account`, `business_use_case`, `insights`, `page`.
    pub scope: String,
    /// The app, ad account or business object id.
    pub id: String,
    /// The business use case type (`ads_management`…), empty for the other scopes.
    pub r#type: String,
    /// `call_count`, `total_cputime`, `total_time`, `acc_id_util_pct`, `app_id_util_pct`,
    /// `estimated_time_to_regain_access` (minutes), `reset_time_duration` (seconds).
    pub metric: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

/// The metrics the proxy updates as calls pass.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    latency: Family<OutcomeLabels, Histogram>,
    pub usage: Family<UsageLabels, Gauge<f64, AtomicU64>>,
    pub inspections_triggered: Counter,
    /// The usage last written per (app, ad account, object): the same values again (the
    /// common case, as Meta's figures move slowly) skip the gauges and their label strings.
    last_usage: Mutex<HashMap<u64, Vec<(UsageSubject, graphwarden_core::usage::Usage)>>>,
    /// `calls` counters already looked up, by a hash of their labels: a call increments its
    /// counter (which shares its value with the family's) without building label strings.
    call_counters: Mutex<HashMap<u64, Vec<(CallLabels, Counter)>>>,
    /// `latency` histograms already looked up, by outcome.
    latencies: Mutex<Vec<(String, Histogram)>>,
    hasher: std::hash::RandomState,
}

type UsageSubject = (Option<String>, Option<String>, Option<String>);

/// Entries per lookup cache before it is emptied (a bound against endless distinct labels).
const MAX_CACHED: usize = 10_000;

/// One call's labels, borrowed (see [`Metrics::count_call`]).
#[derive(Debug, Clone, Copy, Hash)]
pub struct CallLabelsRef<'a> {
    pub app: &'a str,
    pub token: &'a str,
    pub method: &'a str,
    pub outcome: &'a str,
    pub class: &'a str,
    pub code: i64,
}

impl CallLabelsRef<'_> {
    fn matches(&self, l: &CallLabels) -> bool {
        l.app == self.app
            && l.token == self.token
            && l.method == self.method
            && l.outcome == self.outcome
            && l.class == self.class
            && l.code.parse::<i64>() == Ok(self.code)
    }

    fn owned(&self) -> CallLabels {
        CallLabels {
            app: self.app.to_owned(),
            token: self.token.to_owned(),
            method: self.method.to_owned(),
            outcome: self.outcome.to_owned(),
            class: self.class.to_owned(),
            code: self.code.to_string(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("graphwarden");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "proxy_calls",
            "Graph calls through the proxy (batch items count one each), by app, token, outcome, error class and Meta code",
            calls.clone(),
        );
        let latency = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 18))
        });
        registry.register(
            "proxy_request_duration_seconds",
            "Time from a request's arrival at the proxy to the end of its answer",
            latency.clone(),
        );
        let usage = Family::<UsageLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "meta_usage",
            "The raw values of Meta's usage headers, as last seen (percentages; regain time in minutes, reset time in seconds)",
            usage.clone(),
        );
        let inspections_triggered = Counter::default();
        registry.register(
            "proxy_inspections_triggered",
            "Inspections started because a proxied call failed with error 190",
            inspections_triggered.clone(),
        );
        Self {
            registry,
            calls,
            latency,
            usage,
            inspections_triggered,
            last_usage: Mutex::new(HashMap::new()),
            call_counters: Mutex::new(HashMap::new()),
            latencies: Mutex::new(Vec::new()),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// Count one call in `calls`.
    pub fn count_call(&self, labels: CallLabelsRef<'_>) {
        let hash = self.hasher.hash_one(labels);
        let Ok(mut cache) = self.call_counters.lock() else {
            self.calls.get_or_create(&labels.owned()).inc();
            return;
        };
        if let Some((_, counter)) = cache
            .get(&hash)
            .and_then(|v| v.iter().find(|(l, _)| labels.matches(l)))
        {
            counter.inc();
            return;
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let owned = labels.owned();
        let counter = self.calls.get_or_create(&owned).clone();
        counter.inc();
        cache.entry(hash).or_default().push((owned, counter));
    }

    pub fn observe_latency(&self, outcome: &str, seconds: f64) {
        let Ok(mut cache) = self.latencies.lock() else {
            return;
        };
        if let Some((_, h)) = cache.iter().find(|(o, _)| o == outcome) {
            h.observe(seconds);
            return;
        }
        let h = self
            .latency
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .clone();
        h.observe(seconds);
        if cache.len() < 64 {
            cache.push((outcome.to_owned(), h));
        }
    }

    /// Record the raw values of one response's usage headers.
    pub fn set_usage(
        &self,
        usage: &graphwarden_core::usage::Usage,
        app_id: Option<&str>,
        ad_account: Option<&str>,
        object_id: Option<&str>,
    ) {
        if usage.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one((app_id, ad_account, object_id));
        let same_subject = |s: &UsageSubject| {
            s.0.as_deref() == app_id && s.1.as_deref() == ad_account && s.2.as_deref() == object_id
        };
        if let Ok(mut last) = self.last_usage.lock() {
            let entries = last.get(&hash);
            if entries
                .and_then(|v| v.iter().find(|(s, _)| same_subject(s)))
                .is_some_and(|(_, u)| u == usage)
            {
                return;
            }
            if last.len() >= MAX_CACHED {
                last.clear();
            }
            let entries = last.entry(hash).or_default();
            match entries.iter_mut().find(|(s, _)| same_subject(s)) {
                Some((_, u)) => u.clone_from(usage),
                None => entries.push((
                    (
                        app_id.map(str::to_owned),
                        ad_account.map(str::to_owned),
                        object_id.map(str::to_owned),
                    ),
                    usage.clone(),
                )),
            }
        }
        let set = |scope: &str, id: &str, kind: &str, metric: &str, value: f64| {
            self.usage
                .get_or_create(&UsageLabels {
                    scope: scope.to_owned(),
                    id: id.to_owned(),
                    r#type: kind.to_owned(),
                    metric: metric.to_owned(),
                })
                .set(value);
        };
        if let (Some(p), Some(app)) = (&usage.app, app_id) {
            set("app", app, "", "call_count", p.call_count);
            set("app", app, "", "total_cputime", p.total_cputime);
            set("app", app, "", "total_time", p.total_time);
        }
        if let (Some(p), Some(page)) = (&usage.page, object_id) {
            set("page", page, "", "call_count", p.call_count);
            set("page", page, "", "total_cputime", p.total_cputime);
            set("page", page, "", "total_time", p.total_time);
        }
        if let (Some(a), Some(account)) = (&usage.ad_account, ad_account) {
            set(
                "ad_account",
                account,
                "",
                "acc_id_util_pct",
                a.acc_id_util_pct,
            );
            set(
                "ad_account",
                account,
                "",
                "reset_time_duration",
                a.reset_time_duration,
            );
        }
        for e in &usage.business_use_case {
            let id = e.object_id.as_str();
            set("business_use_case", id, &e.kind, "call_count", e.call_count);
            set(
                "business_use_case",
                id,
                &e.kind,
                "total_cputime",
                e.total_cputime,
            );
            set("business_use_case", id, &e.kind, "total_time", e.total_time);
            set(
                "business_use_case",
                id,
                &e.kind,
                "estimated_time_to_regain_access",
                e.estimated_time_to_regain_access,
            );
        }
        if let (Some(i), Some(account)) = (&usage.insights, ad_account) {
            set(
                "insights",
                account,
                "",
                "app_id_util_pct",
                i.app_id_util_pct,
            );
            set(
                "insights",
                account,
                "",
                "acc_id_util_pct",
                i.acc_id_util_pct,
            );
        }
    }

    /// The text of a scrape: these metrics, then `scraped`'s (built by the caller from the
    /// state at scrape time).
    pub fn render(&self, scraped: &Registry) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        let mut rest = String::new();
        encode(&mut rest, scraped)?;
        // Each encoding ends with `# EOF`; the scrape must have one, at its end.
        let text = text.strip_suffix("# EOF\n").unwrap_or(&text).to_owned();
        Ok(text + &rest)
    }
}
