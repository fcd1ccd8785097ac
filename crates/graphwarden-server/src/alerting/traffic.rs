//! Alert rules over the proxy's per-minute call rollups: a token calling far more than its own
//! baseline, a burst of auth errors, a high error rate, usage near Meta's limits, and calls
//! being throttled; and over datasets' Event Match Quality: a score that dropped, or is low.
//! Pure: the engine hands in the rollups of the last day, the quality trends and the time.

use std::collections::BTreeMap;

use graphwarden_core::alert::{Alert, Labels, label};
use graphwarden_store::Rollup;
use jiff::{SignedDuration, Timestamp};

pub const CALL_VOLUME_SPIKE: &str = "call_volume_spike";
pub const AUTH_ERROR_BURST: &str = "auth_error_burst";
pub const ERROR_RATE_HIGH: &str = "error_rate_high";
pub const USAGE_HIGH: &str = "usage_high";
pub const THROTTLED: &str = "throttled";
pub const EMQ_DROPPED: &str = "event_match_quality_dropped";
pub const EMQ_LOW: &str = "event_match_quality_low";
/// Labels of the Event Match Quality alerts.
pub const DATASET_ID: &str = "dataset_id";
pub const EVENT: &str = "event";

/// When the Event Match Quality rules fire.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRules {
    /// A score this many points (out of 10) below the previous pull's has dropped.
    pub drop_points: f64,
    /// A score below this is low; `None`: no such alert.
    pub min_score: Option<f64>,
}

impl Default for QualityRules {
    fn default() -> Self {
        Self {
            drop_points: 1.0,
            min_score: None,
        }
    }
}

/// Event Match Quality alerts from the latest pulls.
pub fn quality(
    trends: &[graphwarden_store::QualityTrend],
    now: Timestamp,
    rules: &QualityRules,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for t in trends {
        let labels = [
            (DATASET_ID, t.latest.dataset_id.as_str()),
            (EVENT, t.latest.event_name.as_str()),
        ];
        let (dataset, event, score) = (&t.latest.dataset_id, &t.latest.event_name, t.latest.score);
        if let Some(prev) = t.previous
            && prev - score >= rules.drop_points
        {
            out.push(alert(
                EMQ_DROPPED,
                "warning",
                &labels,
                format!("Event Match Quality of `{event}` in dataset {dataset} dropped from {prev:.1} to {score:.1}."),
                format!("The score fell by {:.1} points (out of 10) since the previous reading.", prev - score),
                "Check the customer information parameters sent with this event (hashed email, phone…) in Events Manager's diagnostics.",
                now,
            ));
        }
        if let Some(min) = rules.min_score
            && score < min
        {
            out.push(alert(
                EMQ_LOW,
                "warning",
                &labels,
                format!("Event Match Quality of `{event}` in dataset {dataset} is {score:.1}, below {min:.1}."),
                "Low match quality means fewer conversions attributed and worse ad delivery.".to_owned(),
                "Send more customer information parameters with this event.",
                now,
            ));
        }
    }
    out
}

/// Label naming the object (ad account, Page…) a traffic alert is about.
pub const OBJECT: &str = "object";

/// When the traffic rules fire.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficRules {
    pub enabled: bool,
    /// The recent window the rules look at; the baseline is the day before it.
    pub window: SignedDuration,
    /// A token's calls in the window above this many times its baseline rate is a spike…
    pub spike_factor: f64,
    /// …when there are at least this many.
    pub spike_min_calls: i64,
    /// Auth errors (dead token, user action needed) in the window that make a burst.
    pub auth_error_burst: i64,
    /// An error rate (%) in the window over this is high…
    pub error_rate_percent: f64,
    /// …when there are at least this many calls.
    pub error_rate_min_calls: i64,
    /// Usage Meta reported (%) at or over this is high.
    pub usage_percent: f64,
}

impl Default for TrafficRules {
    fn default() -> Self {
        Self {
            enabled: true,
            window: SignedDuration::from_mins(10),
            spike_factor: 5.0,
            spike_min_calls: 100,
            auth_error_burst: 5,
            error_rate_percent: 20.0,
            error_rate_min_calls: 20,
            usage_percent: 80.0,
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    app_id: String,
    recent: i64,
    recent_errors: i64,
    recent_auth: i64,
    recent_throttled: i64,
    before: i64,
    /// The token's first minute in the day: its baseline is measured from there.
    first_ms: Option<i64>,
    max_usage: f64,
}

fn alert(
    name: &str,
    severity: &str,
    labels: &[(&str, &str)],
    summary: String,
    description: String,
    action: &str,
    now: Timestamp,
) -> Alert {
    let mut l = Labels::new();
    l.insert(label::ALERTNAME.to_owned(), name.to_owned());
    l.insert(label::SEVERITY.to_owned(), severity.to_owned());
    for (k, v) in labels {
        if !v.is_empty() {
            l.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    let mut annotations = Labels::new();
    annotations.insert(label::SUMMARY.to_owned(), summary);
    annotations.insert(label::DESCRIPTION.to_owned(), description);
    annotations.insert(label::ACTION.to_owned(), action.to_owned());
    Alert {
        labels: l,
        annotations,
        starts_at: now,
        ends_at: None,
    }
}

/// Every traffic alert that should fire at `now`, from the rollups of the day before.
pub fn evaluate(rollups: &[Rollup], now: Timestamp, rules: &TrafficRules) -> Vec<Alert> {
    if !rules.enabled {
        return Vec::new();
    }
    let now_ms = now.as_millisecond();
    let window_ms = i64::try_from(rules.window.as_millis())
        .unwrap_or(600_000)
        .max(60_000);
    let recent_from = now_ms - window_ms;
    let day_from = now_ms - 24 * 3600 * 1000;
    let mut tokens: BTreeMap<&str, Tally> = BTreeMap::new();
    // (app, object) → (max usage, throttled calls) in the window.
    let mut objects: BTreeMap<(&str, &str), (f64, i64)> = BTreeMap::new();
    for r in rollups.iter().filter(|r| r.minute_ms + 60_000 > day_from) {
        let recent = r.minute_ms + 60_000 > recent_from;
        let throttled = r.error_class == "throttled";
        let auth = matches!(r.error_class.as_str(), "token_dead" | "needs_user_action");
        if !r.token_alias.is_empty() {
            let t = tokens.entry(&r.token_alias).or_default();
            t.app_id.clone_from(&r.app_id);
            t.first_ms = Some(t.first_ms.map_or(r.minute_ms, |f| f.min(r.minute_ms)));
            if recent {
                t.recent += r.calls;
                t.recent_errors += if r.error_class.is_empty() { 0 } else { r.calls };
                t.recent_auth += if auth { r.calls } else { 0 };
                t.recent_throttled += if throttled { r.calls } else { 0 };
                t.max_usage = t.max_usage.max(r.max_usage_pct);
            } else {
                t.before += r.calls;
            }
        }
        if recent {
            let o = objects.entry((&r.app_id, &r.account)).or_default();
            o.0 = o.0.max(r.max_usage_pct);
            o.1 += if throttled { r.calls } else { 0 };
        }
    }
    let minutes = |ms: i64| (ms as f64 / 60_000.0).max(1.0);
    let window_min = minutes(window_ms);
    let mut out = Vec::new();
    for (token, t) in &tokens {
        let labels = [(label::TOKEN, *token), (label::APP_ID, t.app_id.as_str())];
        let start = t.first_ms.unwrap_or(day_from).max(day_from);
        let baseline = t.before as f64 / minutes(recent_from - start) * window_min;
        // A spike needs a baseline: at least one window of history before the recent one.
        let has_history = start <= recent_from - window_ms;
        if has_history
            && t.recent >= rules.spike_min_calls
            && t.recent as f64 > rules.spike_factor * baseline.max(1.0)
        {
            out.push(alert(
                CALL_VOLUME_SPIKE,
                "warning",
                &labels,
                format!("Token `{token}` made {} calls in the last {}.", t.recent, rules.window),
                format!(
                    "That is more than {}× its usual rate over the last day (about {baseline:.0} in as long).",
                    rules.spike_factor
                ),
                "Check what is calling with this token: a loop, a new job, or a leaked token.",
                now,
            ));
        }
        if t.recent_auth >= rules.auth_error_burst {
            out.push(alert(
                AUTH_ERROR_BURST,
                "critical",
                &labels,
                format!("Meta refused token `{token}` {} times in the last {}.", t.recent_auth, rules.window),
                "Calls with this token fail with error 190 (or another auth error): the token no longer works for them.".to_owned(),
                "See `graphwarden token show` for its status and renew it or log in again; stop the callers until then.",
                now,
            ));
        }
        if t.recent >= rules.error_rate_min_calls {
            let rate = t.recent_errors as f64 * 100.0 / t.recent as f64;
            if rate >= rules.error_rate_percent {
                out.push(alert(
                    ERROR_RATE_HIGH,
                    "warning",
                    &labels,
                    format!(
                        "{rate:.0} % of token `{token}`'s calls failed in the last {}.",
                        rules.window
                    ),
                    format!("{} of {} calls failed.", t.recent_errors, t.recent),
                    "See `graphwarden usage --by endpoint` and the error codes there.",
                    now,
                ));
            }
        }
    }
    for ((app, object), (usage, throttled)) in &objects {
        let labels = [(label::APP_ID, *app), (OBJECT, *object)];
        let what = if object.is_empty() {
            "the app".to_owned()
        } else {
            format!("`{object}`")
        };
        if *usage >= rules.usage_percent {
            out.push(alert(
                USAGE_HIGH,
                "warning",
                &labels,
                format!("Meta reports {usage:.0} % usage for calls about {what}."),
                "Near 100 % Meta throttles calls; graphwarden's proxy is already spacing them out."
                    .to_owned(),
                "Spread the work out, cut call volume, or move work to other ad accounts.",
                now,
            ));
        }
        if *throttled > 0 {
            out.push(alert(
                THROTTLED,
                "warning",
                &labels,
                format!("{throttled} calls about {what} were throttled in the last {}.", rules.window),
                "Meta refused them for rate limits, or graphwarden held them back so as not to prolong a block.".to_owned(),
                "Wait for the block to end (see `Retry-After`), then spread the calls out.",
                now,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(minutes_ago: i64, token: &str, calls: i64, class: &str, usage: f64) -> Rollup {
        let now = 1_800_000_000_000;
        let minute = now - minutes_ago * 60_000;
        Rollup {
            minute_ms: minute - minute.rem_euclid(60_000),
            token_alias: token.into(),
            app_id: "1".into(),
            account: "act_9".into(),
            path: "/{version}/me".into(),
            error_class: class.into(),
            error_code: if class.is_empty() { 0 } else { 190 },
            calls,
            refused: 0,
            duration_us: 1,
            max_usage_pct: usage,
        }
    }

    fn names(alerts: &[Alert]) -> Vec<String> {
        let mut n: Vec<String> = alerts.iter().map(|a| a.name().to_owned()).collect();
        n.sort();
        n
    }

    fn now() -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000).unwrap()
    }

    #[test]
    fn quality_drops_and_low_scores() {
        use graphwarden_store::{QualityScore, QualityTrend};
        let trend = |score: f64, previous: Option<f64>| QualityTrend {
            latest: QualityScore {
                dataset_id: "6".into(),
                event_name: "Purchase".into(),
                score,
                checked_at_ms: 0,
            },
            previous,
        };
        let rules = QualityRules {
            drop_points: 1.0,
            min_score: Some(6.0),
        };
        let alerts = quality(&[trend(6.5, Some(8.3))], now(), &rules);
        assert_eq!(names(&alerts), [EMQ_DROPPED]);
        assert_eq!(alerts[0].labels[EVENT], "Purchase");
        assert!(quality(&[trend(8.0, Some(8.3)), trend(8.0, None)], now(), &rules).is_empty());
        assert_eq!(
            names(&quality(&[trend(5.0, None)], now(), &rules)),
            [EMQ_LOW]
        );
    }

    #[test]
    fn quiet_traffic_fires_nothing() {
        let rows: Vec<Rollup> = (0..300).map(|m| row(m, "ana", 10, "", 20.0)).collect();
        assert!(evaluate(&rows, now(), &TrafficRules::default()).is_empty());
    }

    #[test]
    fn a_spike_against_the_tokens_own_baseline() {
        let mut rows: Vec<Rollup> = (11..600).map(|m| row(m, "ana", 2, "", 1.0)).collect();
        rows.extend((0..5).map(|m| row(m, "ana", 100, "", 1.0)));
        let alerts = evaluate(&rows, now(), &TrafficRules::default());
        assert_eq!(names(&alerts), [CALL_VOLUME_SPIKE]);
        assert_eq!(alerts[0].labels[label::TOKEN], "ana");
        // A steady heavy user is no spike.
        let rows: Vec<Rollup> = (0..600).map(|m| row(m, "bot", 100, "", 1.0)).collect();
        assert!(evaluate(&rows, now(), &TrafficRules::default()).is_empty());
    }

    #[test]
    fn auth_bursts_error_rates_usage_and_throttles() {
        let rows = vec![
            row(1, "ana", 50, "", 85.0),
            row(2, "ana", 6, "token_dead", 0.0),
            row(3, "ana", 10, "throttled", 0.0),
        ];
        let alerts = evaluate(&rows, now(), &TrafficRules::default());
        assert_eq!(
            names(&alerts),
            [AUTH_ERROR_BURST, ERROR_RATE_HIGH, THROTTLED, USAGE_HIGH]
        );
        let usage = alerts.iter().find(|a| a.name() == USAGE_HIGH).unwrap();
        assert_eq!(usage.labels[OBJECT], "act_9");
        // Old errors are out of the window.
        let old = vec![row(30, "ana", 50, "token_dead", 99.0)];
        assert!(evaluate(&old, now(), &TrafficRules::default()).is_empty());
        let off = TrafficRules {
            enabled: false,
            ..TrafficRules::default()
        };
        assert!(evaluate(&rows, now(), &off).is_empty());
    }
}
