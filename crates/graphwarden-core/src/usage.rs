//! Parsing Meta's rate-limit usage headers (`meta-graph-reference.md` §8): JSON inside HTTP
//! headers, percentages as `f64` that may be fractional or above 100, never clamped; a business
//! use case header mapping object ids to lists of entries, every entry read.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// Usage read from one response's headers. Absent headers mean nothing (§8).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// `X-App-Usage` (§8.1).
    pub app: Option<Percentages>,
    /// `X-Page-Usage` (§8.6), read like `X-App-Usage`.
    pub page: Option<Percentages>,
    /// `X-Ad-Account-Usage` (§8.2).
    pub ad_account: Option<AdAccountUsage>,
    /// `X-Business-Use-Case-Usage` (§8.3): every entry of every object.
    pub business_use_case: Vec<BucEntry>,
    /// `X-FB-Ads-Insights-Throttle` (§8.5).
    pub insights: Option<InsightsThrottle>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentages {
    pub call_count: f64,
    pub total_cputime: f64,
    pub total_time: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AdAccountUsage {
    pub acc_id_util_pct: f64,
    /// Seconds until the score resets.
    pub reset_time_duration: f64,
    pub ads_api_access_tier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BucEntry {
    /// The business object (ad account, Page…) the entry is about.
    pub object_id: String,
    pub kind: String,
    pub call_count: f64,
    pub total_cputime: f64,
    pub total_time: f64,
    /// Minutes until calls stop being throttled.
    pub estimated_time_to_regain_access: f64,
    pub ads_api_access_tier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InsightsThrottle {
    pub app_id_util_pct: f64,
    pub acc_id_util_pct: f64,
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn percentages(v: &Value) -> Percentages {
    Percentages {
        call_count: number(&v["call_count"]),
        total_cputime: number(&v["total_cputime"]),
        total_time: number(&v["total_time"]),
    }
}

/// The headers Meta reports usage in (§8), lower case.
pub const USAGE_HEADERS: [&str; 5] = [
    "x-app-usage",
    "x-page-usage",
    "x-ad-account-usage",
    "x-business-use-case-usage",
    "x-fb-ads-insights-throttle",
];

/// The doc sample quotes the tier with single quotes; accept that too.
fn parse_json(raw: &str) -> Option<Value> {
    serde_json::from_str(raw)
        .ok()
        .or_else(|| serde_json::from_str(&raw.replace('\'', "\"")).ok())
}

impl Usage {
    /// Read usage from `(name, value)` header pairs, names in any case. Malformed values are
    /// skipped, never fatal.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut usage = Usage::default();
        for (name, value) in headers {
            // The name first: most headers are not usage, and parsing them as JSON is waste.
            let Some(name) = USAGE_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)) else {
                continue;
            };
            let Some(json) = parse_json(value) else {
                continue;
            };
            match *name {
                "x-app-usage" => usage.app = Some(percentages(&json)),
                "x-page-usage" => usage.page = Some(percentages(&json)),
                "x-ad-account-usage" => {
                    usage.ad_account = Some(AdAccountUsage {
                        acc_id_util_pct: number(&json["acc_id_util_pct"]),
                        reset_time_duration: number(&json["reset_time_duration"]),
                        ads_api_access_tier: text(&json["ads_api_access_tier"]),
                    });
                }
                "x-business-use-case-usage" => {
                    if let Value::Object(map) = &json {
                        for (object_id, entries) in map {
                            let entries: Vec<&Value> = match entries {
                                Value::Array(list) => list.iter().collect(),
                                single @ Value::Object(_) => vec![single],
                                _ => continue,
                            };
                            for e in entries {
                                usage.business_use_case.push(BucEntry {
                                    object_id: object_id.clone(),
                                    kind: text(&e["type"]).unwrap_or_default(),
                                    call_count: number(&e["call_count"]),
                                    total_cputime: number(&e["total_cputime"]),
                                    total_time: number(&e["total_time"]),
                                    estimated_time_to_regain_access: number(
                                        &e["estimated_time_to_regain_access"],
                                    ),
                                    ads_api_access_tier: text(&e["ads_api_access_tier"]),
                                });
                            }
                        }
                    }
                }
                "x-fb-ads-insights-throttle" => {
                    usage.insights = Some(InsightsThrottle {
                        app_id_util_pct: number(&json["app_id_util_pct"]),
                        acc_id_util_pct: number(&json["acc_id_util_pct"]),
                    });
                }
                _ => {}
            }
        }
        usage
    }

    /// The highest percentage any header reports.
    pub fn max_pct(&self) -> f64 {
        let mut max: f64 = 0.0;
        for p in self.app.iter().chain(self.page.iter()) {
            max = max.max(p.call_count).max(p.total_cputime).max(p.total_time);
        }
        if let Some(a) = &self.ad_account {
            max = max.max(a.acc_id_util_pct);
        }
        for e in &self.business_use_case {
            max = max.max(e.call_count).max(e.total_cputime).max(e.total_time);
        }
        if let Some(i) = &self.insights {
            max = max.max(i.app_id_util_pct.min(i.acc_id_util_pct));
        }
        max
    }

    /// How long Meta says to wait: the longest regain time (minutes) or score reset (seconds,
    /// only while the score is at or over its limit).
    pub fn regain_wait(&self) -> Option<Duration> {
        let buc = self
            .business_use_case
            .iter()
            .map(|e| e.estimated_time_to_regain_access)
            .fold(0.0_f64, f64::max);
        let score = self
            .ad_account
            .as_ref()
            .filter(|a| a.acc_id_util_pct >= 100.0)
            .map_or(0.0, |a| a.reset_time_duration);
        let secs = (buc * 60.0).max(score);
        (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(24.0 * 3600.0)))
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_every_header_of_the_reference() {
        let usage = Usage::from_headers([
            (
                "X-App-Usage",
                r#"{"call_count":241,"total_cputime":67,"total_time":85}"#,
            ),
            (
                "x-ad-account-usage",
                r#"{"acc_id_util_pct":9.67,"reset_time_duration":100,"ads_api_access_tier":'standard_access'}"#,
            ),
            (
                "x-business-use-case-usage",
                r#"{"66782684":[{"type":"ads_management","call_count":95,"total_cputime":20,"total_time":20,"estimated_time_to_regain_access":0,"ads_api_access_tier":"development_access"},{"type":"ads_insights","call_count":3,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":7}],"10153848260347724":[{"type":"pages","call_count":"12","total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#,
            ),
            (
                "x-fb-ads-insights-throttle",
                r#"{"app_id_util_pct":100,"acc_id_util_pct":10}"#,
            ),
        ]);
        assert_eq!(usage.app.as_ref().unwrap().call_count, 241.0, "not clamped");
        assert_eq!(usage.ad_account.as_ref().unwrap().acc_id_util_pct, 9.67);
        assert_eq!(
            usage
                .ad_account
                .as_ref()
                .unwrap()
                .ads_api_access_tier
                .as_deref(),
            Some("standard_access")
        );
        assert_eq!(
            usage.business_use_case.len(),
            3,
            "every entry of every object"
        );
        assert_eq!(usage.max_pct(), 241.0);
        assert_eq!(usage.regain_wait(), Some(Duration::from_secs(7 * 60)));
        assert_eq!(usage.insights.as_ref().unwrap().app_id_util_pct, 100.0);
    }

    #[test]
    fn duplicate_keys_and_garbage_are_tolerated() {
        let usage = Usage::from_headers([
            (
                "x-business-use-case-usage",
                r#"{"1":[{"type":"a","call_count":1}],"1":[{"type":"b","call_count":2}]}"#,
            ),
            ("x-app-usage", "not json"),
        ]);
        assert_eq!(usage.business_use_case.len(), 1);
        assert!(usage.app.is_none());
    }

    proptest! {
        #[test]
        fn never_panics(name in "[a-zA-Z-]{0,30}", value in "\\PC{0,200}") {
            let usage = Usage::from_headers([(name.as_str(), value.as_str())]);
            let _ = usage.max_pct();
            let _ = usage.regain_wait();
        }
    }
}
