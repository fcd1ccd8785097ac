//! Prometheus metrics at `/metrics`, in the OpenMetrics text format Prometheus scrapes.
//!
//! Two kinds: what the proxy counts as calls pass (calls and errors by app, token, outcome,
//! class and code; its latency; the raw usage header values per app, ad account, business and
//! type), kept in a registry that lives as long as the server; and what is read at scrape time
//! from the inventory, the pacer, the scheduler and the alert engine (token status and seconds
//! to expiry, throttle holds, job outcomes, alert counts), built fresh each scrape so a token
//! that is gone leaves no stale series behind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

mod sharded;
pub use sharded::{LocalCounter, LocalHistogram, ShardedCounter, ShardedHistogram};

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
    /// Per-thread shards (see [`sharded`]): both proxy workers count every call.
    pub calls: Family<CallLabels, ShardedCounter>,
    latency: Family<OutcomeLabels, ShardedHistogram>,
    pub usage: Family<UsageLabels, Gauge<f64, AtomicU64>>,
    pub inspections_triggered: Counter,
    /// The usage last written per (app, ad account, object): the same values again (the
    /// common case, as Meta's figures move slowly) skip the gauges and their label strings.
    last_usage: Mutex<HashMap<u64, Vec<(UsageSubject, graphwarden_core::usage::Usage)>>>,
    /// `calls` counters already looked up, by a hash of their labels: a call increments its
    /// counter (which shares its value with the family's) without building label strings.
    call_counters: Mutex<HashMap<u64, Vec<(CallLabels, ShardedCounter)>>>,
    hasher: std::hash::RandomState,
    /// This registry among the others in the process (tests run several), for the
    /// per-thread caches.
    id: u64,
}

/// Counters and histograms a thread used last, per registry, newest first.
const RECENT_PER_THREAD: usize = 8;

/// A `calls` counter a thread used lately, and the latency histogram of its outcome once a
/// call with those labels was timed.
struct RecentCall {
    registry: u64,
    code: i64,
    /// The label texts, packed, and where each ends ([`CallLabelsRef::packed`]).
    text: Box<[u8]>,
    ends: [usize; 5],
    counter: LocalCounter,
    latency: Option<LocalHistogram>,
}

thread_local! {
    static RECENT_CALLS: RefCell<Vec<RecentCall>> = const { RefCell::new(Vec::new()) };
}

/// The next registry's id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
        self.same_text(l) && l.code.parse::<i64>() == Ok(self.code)
    }

    /// The same labels but (perhaps) the code.
    fn same_text(&self, l: &CallLabels) -> bool {
        l.app == self.app
            && l.token == self.token
            && l.method == self.method
            && l.outcome == self.outcome
            && l.class == self.class
    }

    /// The five texts, one after another, and where each ends: for [`RecentCall`], compared
    /// by their lengths first and then within one allocation instead of five.
    fn packed(&self) -> (Box<[u8]>, [usize; 5]) {
        let texts = self.texts();
        let mut ends = [0; 5];
        let mut text = Vec::with_capacity(texts.iter().map(|t| t.len()).sum());
        for (end, t) in ends.iter_mut().zip(texts) {
            text.extend_from_slice(t.as_bytes());
            *end = text.len();
        }
        (text.into_boxed_slice(), ends)
    }

    fn texts(&self) -> [&str; 5] {
        [self.app, self.token, self.method, self.outcome, self.class]
    }

    /// Whether `(text, ends)` (from [`CallLabelsRef::packed`]) holds these texts.
    fn same_packed(&self, text: &[u8], ends: &[usize; 5]) -> bool {
        let texts = self.texts();
        let mut end = 0;
        for (t, e) in texts.iter().zip(ends) {
            end += t.len();
            if end != *e {
                return false;
            }
        }
        let mut start = 0;
        texts.iter().zip(ends).all(|(t, &e)| {
            let same = text.get(start..e) == Some(t.as_bytes());
            start = e;
            same
        })
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
        let calls = Family::<CallLabels, ShardedCounter>::default();
        registry.register(
            "proxy_calls",
            "Graph calls through the proxy (batch items count one each), by app, token, outcome, error class and Meta code",
            calls.clone(),
        );
        let latency = Family::<OutcomeLabels, ShardedHistogram>::new_with_constructor(|| {
            ShardedHistogram::new(exponential_buckets(0.000_25, 2.0, 18))
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
            hasher: std::hash::RandomState::new(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Count one call in `calls` and, when `seconds` is given, time it in the latency
    /// histogram of its outcome. Each thread keeps the counters and histograms it used last,
    /// so the usual call (the same labels as a recent one on the same thread) takes no lock,
    /// builds no label strings and looks both up at once.
    pub fn count_call(&self, labels: CallLabelsRef<'_>, seconds: Option<f64>) {
        let hit = RECENT_CALLS.with(|recent| {
            let mut recent = recent.borrow_mut();
            let Some(e) = recent.iter_mut().find(|e| {
                e.registry == self.id
                    && e.code == labels.code
                    && labels.same_packed(&e.text, &e.ends)
            }) else {
                return false;
            };
            e.counter.inc();
            if let Some(seconds) = seconds {
                e.latency
                    .get_or_insert_with(|| self.latency_of(labels.outcome))
                    .observe(seconds);
            }
            true
        });
        if hit {
            return;
        }
        let counter = self.call_counter(labels).local();
        counter.inc();
        let latency = seconds.map(|seconds| {
            let h = self.latency_of(labels.outcome);
            h.observe(seconds);
            h
        });
        let (text, ends) = labels.packed();
        RECENT_CALLS.with(|recent| {
            let mut recent = recent.borrow_mut();
            if recent.len() >= RECENT_PER_THREAD {
                recent.pop();
            }
            recent.insert(
                0,
                RecentCall {
                    registry: self.id,
                    code: labels.code,
                    text,
                    ends,
                    counter,
                    latency,
                },
            );
        });
    }

    /// This thread's shard of the latency histogram for `outcome`.
    fn latency_of(&self, outcome: &str) -> LocalHistogram {
        self.latency
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .local()
    }

    /// The `calls` counter for `labels`, through the shared lookup cache.
    fn call_counter(&self, labels: CallLabelsRef<'_>) -> ShardedCounter {
        let hash = self.hasher.hash_one(labels);
        let Ok(mut cache) = self.call_counters.lock() else {
            return self.calls.get_or_create(&labels.owned()).clone();
        };
        if let Some((_, counter)) = cache
            .get(&hash)
            .and_then(|v| v.iter().find(|(l, _)| labels.matches(l)))
        {
            return counter.clone();
        }
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let owned = labels.owned();
        let counter = self.calls.get_or_create(&owned).clone();
        cache
            .entry(hash)
            .or_default()
            .push((owned, counter.clone()));
        counter
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(token: &'a str, outcome: &'a str, code: i64) -> CallLabelsRef<'a> {
        CallLabelsRef {
            app: "1",
            token,
            method: "GET",
            outcome,
            class: if code == 0 { "ok" } else { "throttled" },
            code,
        }
    }

    fn line<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(start)).collect()
    }

    #[test]
    fn packed_labels_match_only_the_same_texts_in_the_same_places() {
        let long = "x".repeat(300);
        for labels in [call("t1", "forwarded", 0), call(&long, "forwarded", 0)] {
            let (text, ends) = labels.packed();
            assert!(labels.same_packed(&text, &ends));
            // The same bytes split differently, or one byte different, are other labels.
            let shifted = CallLabelsRef {
                app: "1t",
                token: &labels.token[1..],
                ..labels
            };
            assert!(!shifted.same_packed(&text, &ends));
            let other = CallLabelsRef {
                outcome: "forwardeD",
                ..labels
            };
            assert!(!other.same_packed(&text, &ends));
        }
    }

    #[test]
    fn calls_are_counted_per_registry_and_per_label_set_through_the_thread_caches() {
        let a = Metrics::new();
        let b = Metrics::new();
        // More distinct label sets than a thread keeps, so some lookups miss the thread cache.
        for round in 0..3 {
            for i in 0..(RECENT_PER_THREAD + 3) {
                let token = format!("t{i}");
                a.count_call(call(&token, "forwarded", 0), None);
                if round == 0 {
                    a.count_call(call(&token, "refused", 4), None);
                }
            }
            b.count_call(call("t0", "forwarded", 0), None);
        }
        // Timed: once through a counter the thread keeps, once through a new one.
        a.count_call(call("t0", "forwarded", 0), Some(0.001));
        a.count_call(call("t-timed", "forwarded", 0), Some(0.002));
        b.count_call(call("t9", "refused", 4), Some(0.5));
        let empty = Registry::default();
        let text_a = a.render(&empty).unwrap_or_default();
        let text_b = b.render(&empty).unwrap_or_default();
        let t0 = r#"graphwarden_proxy_calls_total{app="1",token="t0",method="GET",outcome="forwarded",class="ok",code="0"} 3"#;
        let t0_a = r#"graphwarden_proxy_calls_total{app="1",token="t0",method="GET",outcome="forwarded",class="ok",code="0"} 4"#;
        assert!(
            text_a.contains(t0_a),
            "a timed call is counted too: {text_a}"
        );
        let t10 = r#"graphwarden_proxy_calls_total{app="1",token="t10",method="GET",outcome="refused",class="throttled",code="4"} 1"#;
        assert!(text_a.contains(t10), "{text_a}");
        assert_eq!(
            line(&text_a, "graphwarden_proxy_calls_total{").len(),
            2 * (RECENT_PER_THREAD + 3) + 1
        );
        let t9 = r#"graphwarden_proxy_calls_total{app="1",token="t9",method="GET",outcome="refused",class="throttled",code="4"} 1"#;
        let mut lines_b = line(&text_b, "graphwarden_proxy_calls_total{");
        lines_b.sort_unstable(); // (a family renders in no set order)
        assert_eq!(lines_b, [t0, t9]);
        assert!(
            text_a.contains(
                r#"graphwarden_proxy_request_duration_seconds_count{outcome="forwarded"} 2"#
            ),
            "{text_a}"
        );
        assert!(!text_a.contains(r#"duration_seconds_count{outcome="refused"}"#));
        assert!(
            text_b.contains(
                r#"graphwarden_proxy_request_duration_seconds_count{outcome="refused"} 1"#
            ),
            "{text_b}"
        );
    }
}
