//! What graphwarden watches of Graph traffic: the proxy's call records and their per-minute
//! rollups, and datasets' Event Match Quality over time — [`CallStore`], implemented once per
//! backend from the SQL in `sql_call.rs`. Records arrive in batches from one writer task; the
//! rollups are added to in the same transaction, so the two always agree.

use async_trait::async_trait;
use graphwarden_core::call::CallRecord;
use graphwarden_core::pacing::SharedKey;
use serde::Serialize;

use crate::error::Result;

/// What one minute of calls adds to a rollup row. Key columns are empty strings when unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollup {
    /// The minute's start, epoch milliseconds.
    pub minute_ms: i64,
    pub token_alias: String,
    pub app_id: String,
    /// The ad account (`act_…`) or other object the calls were about.
    pub account: String,
    pub path: String,
    /// Empty on success.
    pub error_class: String,
    /// 0 on success.
    pub error_code: i64,
    pub calls: i64,
    /// Calls graphwarden answered itself, holding them back from Meta.
    pub refused: i64,
    pub duration_us: i64,
    pub max_usage_pct: f64,
}

/// Whether two texts are equal, by where they are first: records share their text
/// (`Arc<str>`), so the same place is the same text without comparing its bytes.
fn same(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

type RollupKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str, i64);

fn same_key(a: &RollupKey<'_>, b: &RollupKey<'_>) -> bool {
    a.0 == b.0
        && a.6 == b.6
        && same(a.1, b.1)
        && same(a.2, b.2)
        && same(a.3, b.3)
        && same(a.4, b.4)
        && same(a.5, b.5)
}

impl Rollup {
    /// The row one call adds to.
    pub fn of(call: &CallRecord) -> Self {
        Self {
            minute_ms: call.at_ms - call.at_ms.rem_euclid(60_000),
            token_alias: call.token_alias.as_deref().unwrap_or_default().to_owned(),
            app_id: call.app_id.as_deref().unwrap_or_default().to_owned(),
            account: call.object_id.as_deref().unwrap_or_default().to_owned(),
            path: call.path.to_string(),
            error_class: call.error_class.clone().unwrap_or_default(),
            error_code: call.error_code.unwrap_or(0),
            calls: 1,
            refused: i64::from(call.outcome == "refused"),
            duration_us: call.duration_us,
            max_usage_pct: call.usage_pct.unwrap_or(0.0),
        }
    }

    /// Fold `calls` into as few rows as they make.
    pub fn fold(calls: &[CallRecord]) -> Vec<Self> {
        // Keyed by borrowed fields: a call adding to a row seen already allocates nothing.
        let mut index: std::collections::HashMap<RollupKey<'_>, usize> =
            std::collections::HashMap::new();
        let mut out: Vec<Self> = Vec::new();
        // Calls in a row usually add to the same rollup: the previous call's is tried first,
        // without hashing the key, and its texts by their places before their bytes.
        let mut last: Option<(RollupKey<'_>, usize)> = None;
        for call in calls {
            let key = (
                call.at_ms - call.at_ms.rem_euclid(60_000),
                call.token_alias.as_deref().unwrap_or_default(),
                call.app_id.as_deref().unwrap_or_default(),
                call.object_id.as_deref().unwrap_or_default(),
                &*call.path,
                call.error_class.as_deref().unwrap_or_default(),
                call.error_code.unwrap_or(0),
            );
            let found = match last {
                Some((k, i)) if same_key(&k, &key) => Some(i),
                _ => index.get(&key).copied(),
            };
            match found {
                Some(i) => {
                    let row = &mut out[i];
                    row.calls += 1;
                    row.refused += i64::from(call.outcome == "refused");
                    row.duration_us += call.duration_us;
                    row.max_usage_pct = row.max_usage_pct.max(call.usage_pct.unwrap_or(0.0));
                    last = Some((key, i));
                }
                None => {
                    let r = Self::of(call);
                    debug_assert_eq!(r.minute_ms, key.0);
                    out.push(r);
                    index.insert(key, out.len() - 1);
                    last = Some((key, out.len() - 1));
                }
            }
        }
        out.sort_by(|a, b| {
            (
                a.minute_ms,
                &a.token_alias,
                &a.path,
                &a.error_class,
                a.error_code,
            )
                .cmp(&(
                    b.minute_ms,
                    &b.token_alias,
                    &b.path,
                    &b.error_class,
                    b.error_code,
                ))
        });
        out
    }
}

/// One event's Event Match Quality at one pull.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityScore {
    pub dataset_id: String,
    pub event_name: String,
    /// Out of 10.
    pub score: f64,
    pub checked_at_ms: i64,
}

/// The latest score of a dataset's event, and the one before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityTrend {
    pub latest: QualityScore,
    pub previous: Option<f64>,
}

#[async_trait]
pub trait CallStore: Send + Sync {
    /// Write call records and what they add to the rollups, in one transaction.
    async fn insert_calls(&self, calls: &[CallRecord], rollups: &[Rollup]) -> Result<()>;
    /// The latest calls, newest first, of one token or all.
    async fn recent_calls(&self, token_alias: Option<&str>, limit: i64) -> Result<Vec<CallRecord>>;
    /// How many call records there are (for tests and `graphwarden usage`).
    async fn call_count(&self) -> Result<i64>;
    /// Rollup rows of minutes at or after `since_ms`, oldest first.
    async fn rollups_since(&self, since_ms: i64) -> Result<Vec<Rollup>>;
    /// Record one pull of Event Match Quality scores.
    async fn insert_quality(&self, scores: &[QualityScore]) -> Result<()>;
    /// For every dataset and event: its latest score and the one before.
    async fn quality_trends(&self) -> Result<Vec<QualityTrend>>;
    /// Delete call records before `calls_before_ms` and rollups before `rollups_before_ms`;
    /// returns how many of each.
    async fn prune_calls(&self, calls_before_ms: i64, rollups_before_ms: i64)
    -> Result<(u64, u64)>;
    /// Write the pacing keys this proxy instance changed (its own rows, replaced), at
    /// `now_ms`, and delete every instance's rows not updated since `forget_before_ms`.
    async fn share_pacing(
        &self,
        instance: &str,
        keys: &[SharedKey],
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<()>;
    /// The pacing rows other instances wrote at or after `since_ms`.
    async fn shared_pacing(&self, instance: &str, since_ms: i64) -> Result<Vec<SharedKey>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::call::ChangeType;

    fn call(at_ms: i64, alias: &str, code: Option<i64>) -> CallRecord {
        CallRecord {
            at_ms,
            token_alias: Some(alias.into()),
            token_fingerprint: None,
            app_id: Some("1".into()),
            method: "GET".into(),
            path: "/{version}/me".into(),
            object_id: Some("me".into()),
            change: ChangeType::Read,
            http_status: if code.is_some() { 400 } else { 200 },
            error_code: code,
            error_subcode: None,
            error_class: code.map(|_| "throttled".to_owned()),
            duration_us: 10,
            usage_pct: Some(at_ms as f64 / 1000.0),
            usage: None,
            batch_index: None,
            outcome: "forwarded".into(),
        }
    }

    #[test]
    fn calls_fold_per_minute_token_path_and_error() {
        let rows = Rollup::fold(&[
            call(60_000, "a", None),
            call(61_000, "a", None),
            call(119_999, "a", Some(4)),
            call(120_000, "a", None),
            call(61_000, "b", None),
        ]);
        assert_eq!(rows.len(), 4);
        let first = rows
            .iter()
            .find(|r| r.minute_ms == 60_000 && r.token_alias == "a" && r.error_code == 0)
            .unwrap();
        assert_eq!(
            (first.minute_ms, first.calls, first.duration_us),
            (60_000, 2, 20)
        );
        assert_eq!(first.max_usage_pct, 61.0);
        assert!(
            rows.iter()
                .any(|r| r.error_code == 4 && r.minute_ms == 60_000)
        );
    }

    #[test]
    fn shared_and_copied_text_fold_alike() {
        // The proxy's records share their text; the same text from elsewhere is the same key.
        let shared = call(60_000, "a", None);
        let copy = call(60_500, "a", None);
        let other = CallRecord {
            path: "/{version}/me/adaccounts".into(),
            ..call(61_000, "a", None)
        };
        let rows = Rollup::fold(&[shared.clone(), shared.clone(), copy, other, shared]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows.iter()
                .find(|r| r.path == "/{version}/me")
                .unwrap()
                .calls,
            4
        );
        // The same start is not the same text when the lengths differ.
        let text = "/{version}/me/adaccounts";
        assert!(!same(&text[..13], text));
        assert!(same(&text[..13], "/{version}/me"));
    }
}
