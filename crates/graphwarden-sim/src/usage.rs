//! Rate limits, computed from the calls actually made (`meta-graph-reference.md` §8), not canned.
//!
//! - App (§8.1): a rolling hour of calls per app against 200 × daily active users; `X-App-Usage`.
//!   Past 100 %: code 4.
//! - Business use case (§8.3): a rolling hour per ad account and type against the tier formulas;
//!   `X-Business-Use-Case-Usage` with `estimated_time_to_regain_access` in minutes. Past 100 %:
//!   80004 (ads_management) or 80000 (ads_insights), subcode 2446079.
//! - Ad-account score (§8.2, §8.4): reads cost 1 point, writes 3, decaying over 300 s, against 60
//!   (development) or 9000 (standard) points; `X-Ad-Account-Usage`. Past the maximum the account
//!   is blocked for 300 s (60 s standard): code 17, subcode 2446079.
//! - Insights (§8.5): `X-FB-Ads-Insights-Throttle` on insights calls.
//!
//! Calls made while blocked still count and push the block out, as Meta's do. Windows are kept in
//! one-minute buckets (or a bounded list for the five-minute score), so memory stays flat under
//! any load.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::json;

use crate::error::GraphError;

const MINUTE_MS: i64 = 60_000;
const HOUR_MINUTES: i64 = 60;
const SCORE_DECAY_MS: i64 = 300_000;
const SCORE_MAX_ENTRIES: usize = 20_000;
/// Capacity of the app-level insights platform per hour (not published by Meta; see
/// docs/simulator.md).
pub const INSIGHTS_APP_CAPACITY: f64 = 5_000.0;

/// A rolling one-hour count in one-minute buckets.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    buckets: VecDeque<(i64, f64)>,
}

impl Window {
    fn prune(&mut self, now_ms: i64) {
        let now_min = now_ms.div_euclid(MINUTE_MS);
        while self
            .buckets
            .front()
            .is_some_and(|(m, _)| *m <= now_min - HOUR_MINUTES)
        {
            self.buckets.pop_front();
        }
    }

    pub fn add(&mut self, now_ms: i64, weight: f64) {
        self.prune(now_ms);
        let now_min = now_ms.div_euclid(MINUTE_MS);
        match self.buckets.back_mut() {
            Some((m, count)) if *m == now_min => *count += weight,
            _ => self.buckets.push_back((now_min, weight)),
        }
    }

    pub fn total(&mut self, now_ms: i64) -> f64 {
        self.prune(now_ms);
        self.buckets.iter().map(|(_, c)| c).sum()
    }

    /// Whole minutes until the total falls below `limit` as old buckets leave the window.
    pub fn minutes_until_below(&mut self, now_ms: i64, limit: f64) -> i64 {
        let mut total = self.total(now_ms);
        if total < limit {
            return 0;
        }
        let now_min = now_ms.div_euclid(MINUTE_MS);
        for (minute, count) in &self.buckets {
            total -= count;
            if total < limit {
                return (minute + HOUR_MINUTES - now_min).max(1);
            }
        }
        HOUR_MINUTES
    }
}

/// The ad-account score: points over the last 300 s.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    points: VecDeque<(i64, f64)>,
    blocked_until_ms: i64,
}

impl Score {
    fn prune(&mut self, now_ms: i64) {
        while self
            .points
            .front()
            .is_some_and(|(t, _)| *t <= now_ms - SCORE_DECAY_MS)
        {
            self.points.pop_front();
        }
    }

    fn add(&mut self, now_ms: i64, points: f64) {
        self.prune(now_ms);
        if self.points.len() >= SCORE_MAX_ENTRIES {
            // Fold the oldest entry into the next: the sum is what matters.
            if let Some((_, p)) = self.points.pop_front()
                && let Some(front) = self.points.front_mut()
            {
                front.1 += p;
            }
        }
        self.points.push_back((now_ms, points));
    }

    fn total(&mut self, now_ms: i64) -> f64 {
        self.prune(now_ms);
        self.points.iter().map(|(_, p)| p).sum()
    }

    fn seconds_until_reset(&self, now_ms: i64) -> i64 {
        self.points
            .back()
            .map_or(0, |(t, _)| {
                ((t + SCORE_DECAY_MS - now_ms) as f64 / 1000.0).ceil() as i64
            })
            .max(0)
    }
}

/// A business-use-case type (§8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BucType {
    AdsManagement,
    AdsInsights,
    Pages,
}

impl BucType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdsManagement => "ads_management",
            Self::AdsInsights => "ads_insights",
            Self::Pages => "pages",
        }
    }

    fn throttle_code(self) -> i64 {
        match self {
            Self::AdsManagement => 80004,
            Self::AdsInsights => 80000,
            Self::Pages => 80001,
        }
    }

    /// The hourly quota of the tier formulas (§8.3).
    pub fn quota(self, standard: bool, active_ads: i64) -> f64 {
        let ads = active_ads.max(0) as f64;
        match (self, standard) {
            (Self::AdsManagement, false) => 300.0 + 40.0 * ads,
            (Self::AdsManagement, true) => 100_000.0 + 40.0 * ads,
            (Self::AdsInsights, false) => 600.0 + 400.0 * ads,
            (Self::AdsInsights, true) => 190_000.0 + 400.0 * ads,
            // For pages `active_ads` carries the Page's engaged users (§8.3: 4800 × engaged
            // users; the simulator takes the one-hour window of the English doc).
            (Self::Pages, _) => 4_800.0 * ads,
        }
    }
}

/// What an ad-account call is charged against.
#[derive(Debug, Clone)]
pub struct AccountCharge<'a> {
    pub account_id: &'a str,
    pub app_id: &'a str,
    pub buc: BucType,
    pub standard_tier: bool,
    pub active_ads: i64,
    pub write: bool,
}

/// All usage state of the simulator.
#[derive(Debug, Default, Serialize)]
pub struct Usage {
    apps: HashMap<String, Window>,
    buc: HashMap<(String, BucType), Window>,
    scores: HashMap<String, Score>,
    insights_apps: HashMap<String, Window>,
}

fn pct(count: f64, limit: f64) -> f64 {
    if limit <= 0.0 {
        return 0.0;
    }
    // Two decimals: fractional, and free to pass 100 (§8: do not clamp).
    ((count / limit) * 10_000.0).round() / 100.0
}

/// One entry of `X-Business-Use-Case-Usage` (§8.3); the tier only for the ads types.
fn buc_entry(
    buc: BucType,
    pct_used: f64,
    regain_minutes: i64,
    tier: Option<&str>,
) -> serde_json::Value {
    let mut entry = json!({
        "type": buc.as_str(),
        "call_count": pct_used,
        "total_cputime": ((pct_used * 0.6) * 100.0).round() / 100.0,
        "total_time": ((pct_used * 0.8) * 100.0).round() / 100.0,
        "estimated_time_to_regain_access": regain_minutes,
    });
    if let Some(tier) = tier {
        entry["ads_api_access_tier"] = json!(tier);
    }
    entry
}

fn tier_name(standard: bool) -> &'static str {
    if standard {
        "standard_access"
    } else {
        "development_access"
    }
}

impl Usage {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Charge one call to an app's platform window. `Ok` carries the `X-App-Usage` header;
    /// `Err` is the code-4 throttle, headers included.
    pub fn charge_app(
        &mut self,
        app_id: &str,
        daily_active_users: i64,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>, GraphError> {
        let limit = 200.0 * daily_active_users.max(1) as f64;
        let window = self.apps.entry(app_id.to_owned()).or_default();
        let before = window.total(now_ms);
        window.add(now_ms, 1.0);
        let count = window.total(now_ms);
        let header = app_usage_header(count, limit);
        if before >= limit {
            let mut err = GraphError::new(
                400,
                4,
                "OAuthException",
                "(#4) Application request limit reached",
            );
            err.headers = vec![header];
            return Err(err);
        }
        Ok(vec![header])
    }

    /// The code-4 throttle, with its header, when `app_id` is over its allowance right now;
    /// nothing is charged (the outer call of a batch, §9).
    pub fn app_throttled(
        &mut self,
        app_id: &str,
        daily_active_users: i64,
        now_ms: i64,
    ) -> Option<GraphError> {
        let limit = 200.0 * daily_active_users.max(1) as f64;
        let window = self.apps.get_mut(app_id)?;
        let count = window.total(now_ms);
        if count < limit {
            return None;
        }
        let mut err = GraphError::new(
            400,
            4,
            "OAuthException",
            "(#4) Application request limit reached",
        );
        err.headers = vec![app_usage_header(count, limit)];
        Some(err)
    }

    /// Charge one call made with a Page token to the Page's business-use-case window (§8.3,
    /// type `pages`). Past the quota: code 80001.
    pub fn charge_page(
        &mut self,
        page_id: &str,
        engaged_users: i64,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>, GraphError> {
        let quota = BucType::Pages.quota(false, engaged_users);
        let window = self
            .buc
            .entry((page_id.to_owned(), BucType::Pages))
            .or_default();
        let before = window.total(now_ms);
        window.add(now_ms, 1.0);
        let p = pct(window.total(now_ms), quota);
        let regain = window.minutes_until_below(now_ms, quota);
        let header = (
            "x-business-use-case-usage".to_owned(),
            json!({ page_id: [buc_entry(BucType::Pages, p, regain, None)] }).to_string(),
        );
        if before >= quota {
            let mut err = GraphError::new(
                400,
                80_001,
                "OAuthException",
                "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
            );
            err.headers = vec![header];
            return Err(err);
        }
        Ok(vec![header])
    }

    /// Charge one ad-account call: business use case, score, and (for insights) the insights
    /// throttle.
    pub fn charge_account(
        &mut self,
        charge: &AccountCharge<'_>,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>, GraphError> {
        let quota = charge.buc.quota(charge.standard_tier, charge.active_ads);
        let key = (charge.account_id.to_owned(), charge.buc);
        let window = self.buc.entry(key).or_default();
        let before = window.total(now_ms);
        window.add(now_ms, 1.0);

        let score = self.scores.entry(charge.account_id.to_owned()).or_default();
        let (max, block_ms) = if charge.standard_tier {
            (9_000.0, 60_000)
        } else {
            (60.0, 300_000)
        };
        let was_blocked = score.blocked_until_ms > now_ms;
        score.add(now_ms, if charge.write { 3.0 } else { 1.0 });
        let points = score.total(now_ms);
        let score_exceeded = points > max;
        if was_blocked || score_exceeded {
            // Calls during a block push it out.
            score.blocked_until_ms = now_ms + block_ms;
        }

        let mut headers = vec![
            self.buc_header(charge.account_id, now_ms, charge),
            self.account_header(charge.account_id, now_ms, max, charge.standard_tier),
        ];
        if charge.buc == BucType::AdsInsights {
            let app_window = self
                .insights_apps
                .entry(charge.app_id.to_owned())
                .or_default();
            app_window.add(now_ms, 1.0);
            let app_pct = pct(app_window.total(now_ms), INSIGHTS_APP_CAPACITY);
            let acc_pct = self
                .buc
                .get_mut(&(charge.account_id.to_owned(), BucType::AdsInsights))
                .map_or(0.0, |w| pct(w.total(now_ms), quota));
            headers.push((
                "x-fb-ads-insights-throttle".to_owned(),
                json!({
                    "app_id_util_pct": app_pct,
                    "acc_id_util_pct": acc_pct,
                    "ads_api_access_tier": tier_name(charge.standard_tier),
                })
                .to_string(),
            ));
            if app_pct > 100.0 {
                let mut err = GraphError::new(
                    400,
                    4,
                    "OAuthException",
                    "(#4) There have been too many calls from this application for insights. Wait a bit and try again.",
                )
                .with_subcode(1_504_022);
                err.headers = headers;
                return Err(err);
            }
        }
        if before >= quota {
            let code = charge.buc.throttle_code();
            let mut err = GraphError::new(
                400,
                code,
                "OAuthException",
                format!(
                    "(#{code}) There have been too many calls to this ad-account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting#{}.",
                    charge.buc.as_str().replace('_', "-")
                ),
            )
            .with_subcode(2_446_079);
            err.headers = headers;
            return Err(err);
        }
        if was_blocked || score_exceeded {
            let mut err = GraphError::new(
                400,
                17,
                "OAuthException",
                "(#17) User request limit reached",
            )
            .with_subcode(2_446_079);
            err.headers = headers;
            return Err(err);
        }
        Ok(headers)
    }

    fn buc_header(
        &mut self,
        account_id: &str,
        now_ms: i64,
        charge: &AccountCharge<'_>,
    ) -> (String, String) {
        let mut entries = Vec::new();
        for buc in [BucType::AdsManagement, BucType::AdsInsights] {
            let quota = buc.quota(charge.standard_tier, charge.active_ads);
            let Some(window) = self.buc.get_mut(&(account_id.to_owned(), buc)) else {
                continue;
            };
            let count = window.total(now_ms);
            let p = pct(count, quota);
            let regain = window.minutes_until_below(now_ms, quota);
            entries.push(buc_entry(
                buc,
                p,
                regain,
                Some(tier_name(charge.standard_tier)),
            ));
        }
        (
            "x-business-use-case-usage".to_owned(),
            json!({ account_id: entries }).to_string(),
        )
    }

    fn account_header(
        &mut self,
        account_id: &str,
        now_ms: i64,
        max: f64,
        standard: bool,
    ) -> (String, String) {
        let (util, reset) = match self.scores.get_mut(account_id) {
            Some(score) => {
                let total = score.total(now_ms);
                let blocked_for =
                    ((score.blocked_until_ms - now_ms).max(0) as f64 / 1000.0).ceil() as i64;
                (
                    pct(total, max),
                    score.seconds_until_reset(now_ms).max(blocked_for),
                )
            }
            None => (0.0, 0),
        };
        (
            "x-ad-account-usage".to_owned(),
            json!({
                "acc_id_util_pct": util,
                "reset_time_duration": reset,
                "ads_api_access_tier": tier_name(standard),
            })
            .to_string(),
        )
    }

    /// Usage per key, for the control API.
    pub fn snapshot(&mut self, now_ms: i64) -> serde_json::Value {
        let apps: serde_json::Map<String, serde_json::Value> = self
            .apps
            .iter_mut()
            .map(|(k, w)| (k.clone(), json!({ "calls_last_hour": w.total(now_ms) })))
            .collect();
        let buc: Vec<serde_json::Value> = self
            .buc
            .iter_mut()
            .map(|((object, t), w)| json!({ "object_id": object, "type": t.as_str(), "calls_last_hour": w.total(now_ms) }))
            .collect();
        let scores: serde_json::Map<String, serde_json::Value> = self
            .scores
            .iter_mut()
            .map(|(k, s)| {
                (k.clone(), json!({ "points": s.total(now_ms), "blocked_for_ms": (s.blocked_until_ms - now_ms).max(0) }))
            })
            .collect();
        json!({ "apps": apps, "business_use_case": buc, "ad_account_scores": scores })
    }
}

fn app_usage_header(count: f64, limit: f64) -> (String, String) {
    let p = pct(count, limit);
    (
        "x-app-usage".to_owned(),
        json!({
            "call_count": p,
            "total_cputime": ((p * 0.6) * 100.0).round() / 100.0,
            "total_time": ((p * 0.8) * 100.0).round() / 100.0,
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_window_throttles_past_the_allowance_and_recovers_after_an_hour() {
        let mut usage = Usage::default();
        let t0 = 1_000_000_000_000;
        for i in 0..200 {
            usage.charge_app("1", 1, t0 + i).unwrap();
        }
        let err = usage.charge_app("1", 1, t0 + 300).unwrap_err();
        assert_eq!(err.code, 4);
        let header: serde_json::Value = serde_json::from_str(&err.headers[0].1).unwrap();
        assert!(header["call_count"].as_f64().unwrap() > 100.0, "{header}");
        // Still blocked 59 minutes on; free an hour on.
        assert!(usage.charge_app("1", 1, t0 + 59 * MINUTE_MS).is_err());
        assert!(usage.charge_app("1", 1, t0 + 61 * MINUTE_MS).is_ok());
    }

    #[test]
    fn fractional_percentages() {
        let mut usage = Usage::default();
        let headers = usage.charge_app("1", 3, 0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&headers[0].1).unwrap();
        assert_eq!(v["call_count"].as_f64().unwrap(), 0.17);
    }

    #[test]
    fn score_blocks_and_calls_while_blocked_extend_the_block() {
        let mut usage = Usage::default();
        let charge = AccountCharge {
            account_id: "5",
            app_id: "1",
            buc: BucType::AdsManagement,
            standard_tier: false,
            active_ads: 10,
            write: true,
        };
        let t0 = 1_000_000_000_000;
        for i in 0..20 {
            usage.charge_account(&charge, t0 + i).unwrap();
        }
        let err = usage.charge_account(&charge, t0 + 100).unwrap_err();
        assert_eq!((err.code, err.subcode), (17, Some(2_446_079)));
        // 299 s on, a call is still refused and moves the end of the block.
        assert!(usage.charge_account(&charge, t0 + 299_000).is_err());
        assert!(
            usage.charge_account(&charge, t0 + 400_000).is_err(),
            "extended by the call at 299 s"
        );
        let ok = usage.charge_account(&charge, t0 + 299_000 + 300_000 + 300_001);
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn page_calls_throttle_with_80001_past_4800_per_engaged_user() {
        let mut usage = Usage::default();
        for i in 0..4_800 {
            usage.charge_page("9", 1, i).unwrap();
        }
        let err = usage.charge_page("9", 1, 5_000).unwrap_err();
        assert_eq!((err.code, err.subcode), (80_001, None));
        let header: serde_json::Value = serde_json::from_str(&err.headers[0].1).unwrap();
        assert_eq!(header["9"][0]["type"], "pages");
        assert!(
            header["9"][0]["estimated_time_to_regain_access"]
                .as_i64()
                .unwrap()
                >= 1
        );
    }

    #[test]
    fn buc_regain_time_counts_down_in_minutes() {
        let mut window = Window::default();
        let t0 = 0;
        window.add(t0, 700.0);
        assert_eq!(window.minutes_until_below(t0, 700.0), 60);
        assert_eq!(window.minutes_until_below(t0 + 30 * MINUTE_MS, 700.0), 30);
        assert_eq!(window.minutes_until_below(t0 + 60 * MINUTE_MS, 700.0), 0);
    }
}
