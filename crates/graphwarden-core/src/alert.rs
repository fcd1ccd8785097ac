//! The alert model, after Prometheus Alertmanager's (design.md §2): an alert is a set of labels
//! (its identity), annotations (what a person reads), a start and, once resolved, an end. Its
//! fingerprint is a hash of its labels, so the same condition raised twice is the same alert.
//!
//! The types here are shared by the alert engine (rules, grouping, inhibition, silences) and the
//! receivers (webhook, Slack, email, Alertmanager). [`Notification`] is what a receiver is handed:
//! one group of alerts, shaped like Alertmanager's own webhook payload (version 4), so anything
//! that reads Alertmanager's webhooks reads ours.
//!
//! The engine itself, pure and driven by the time it is handed, lives in the submodules:
//! [`matcher`] (label matchers), [`route`] (the routing tree), [`silence`], [`inhibit`]
//! (inhibition rules and graphwarden's defaults) and [`dispatch`] (grouping, timers, and which
//! notifications are due).

pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod route;
pub mod silence;

pub use dispatch::{AlertView, DispatchConfig, DispatchState, Dispatcher, GroupView};
pub use inhibit::{InhibitRule, Inhibitor};
pub use matcher::{MatchOp, Matcher, Matchers};
pub use route::{GroupBy, ResolvedRoute, Route, RouteTree};
pub use silence::{Silence, SilenceState};

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Label names and values, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// Well-known label and annotation names.
pub mod label {
    /// The rule that raised the alert (`token_expiring`, `token_dead`, …).
    pub const ALERTNAME: &str = "alertname";
    /// `critical`, `warning` or `info`.
    pub const SEVERITY: &str = "severity";
    /// The token's alias.
    pub const TOKEN: &str = "token";
    pub const APP_ID: &str = "app_id";
    pub const BUSINESS_ID: &str = "business_id";
    pub const AD_ACCOUNT_ID: &str = "ad_account_id";
    pub const KIND: &str = "kind";
    pub const STATUS: &str = "status";

    /// Annotations.
    pub const SUMMARY: &str = "summary";
    pub const DESCRIPTION: &str = "description";
    pub const ACTION: &str = "action";
    pub const RELOGIN_URL: &str = "relogin_url";
}

/// Whether an alert is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: Timestamp,
    /// `None` while firing; the time it stopped once resolved.
    #[serde(rename = "endsAt", default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
}

impl Alert {
    /// The alert's identity: a hash of its labels (names and values), independent of their
    /// order and of the annotations. 16 lower-case hex digits, as Alertmanager shows them.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }

    pub fn status(&self) -> AlertStatus {
        if self.ends_at.is_some() {
            AlertStatus::Resolved
        } else {
            AlertStatus::Firing
        }
    }

    pub fn name(&self) -> &str {
        self.labels.get(label::ALERTNAME).map_or("", String::as_str)
    }
}

/// FNV-1a (64 bit) over each label's name and value, each followed by a 0xff separator, in name
/// order: the same scheme as Prometheus' `labels.Hash`-style fingerprints, stable across
/// releases because it is written down here rather than taken from a hasher that may change.
pub fn fingerprint(labels: &Labels) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        feed(name.as_bytes());
        feed(&[0xff]);
        feed(value.as_bytes());
        feed(&[0xff]);
    }
    format!("{hash:016x}")
}

/// One alert as a receiver sees it inside a [`Notification`] (Alertmanager's webhook shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: Timestamp,
    /// Alertmanager sends `0001-01-01T00:00:00Z` for "not ended"; we omit the field instead.
    #[serde(rename = "endsAt", default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// A link to the alert's subject in graphwarden's dashboard, when the daemon knows its URL.
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    pub fingerprint: String,
}

impl From<&Alert> for NotifiedAlert {
    fn from(a: &Alert) -> Self {
        Self {
            status: a.status(),
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            generator_url: String::new(),
            fingerprint: a.fingerprint(),
        }
    }
}

/// One group of alerts sent to one receiver: Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Always `"4"`.
    pub version: String,
    /// The group's identity: the route and the values of its `group_by` labels.
    #[serde(rename = "groupKey")]
    pub group_key: String,
    /// `firing` when any alert in the group fires, else `resolved`.
    pub status: AlertStatus,
    /// The name of the receiver this goes to.
    pub receiver: String,
    #[serde(rename = "groupLabels")]
    pub group_labels: Labels,
    #[serde(rename = "commonLabels")]
    pub common_labels: Labels,
    #[serde(rename = "commonAnnotations")]
    pub common_annotations: Labels,
    /// graphwarden's base URL, when configured.
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    /// Alerts that stopped firing since the last notification are counted here by receivers
    /// that show them apart; they are also in `alerts` with status `resolved`.
    #[serde(rename = "truncatedAlerts", default)]
    pub truncated_alerts: u64,
    pub alerts: Vec<NotifiedAlert>,
}

impl Notification {
    /// A notification for `alerts` (at least one), with the common labels and annotations
    /// worked out.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: Labels,
        alerts: Vec<NotifiedAlert>,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Self {
            version: "4".to_owned(),
            group_key: group_key.to_owned(),
            status,
            receiver: receiver.to_owned(),
            group_labels,
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            external_url: String::new(),
            truncated_alerts: 0,
            alerts,
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &NotifiedAlert> {
        self.alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Resolved)
    }
}

/// The pairs every map has in common.
fn common<'a>(mut maps: impl Iterator<Item = &'a Labels>) -> Labels {
    let Some(first) = maps.next() else {
        return Labels::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fingerprint_depends_on_labels_only_and_is_stable() {
        let a = labels(&[("alertname", "token_dead"), ("token", "ana")]);
        let b = labels(&[("token", "ana"), ("alertname", "token_dead")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&a),
            fingerprint(&labels(&[("alertname", "token_dead"), ("token", "ben")]))
        );
        // Name/value boundaries matter: {ab: c} is not {a: bc}.
        assert_ne!(
            fingerprint(&labels(&[("ab", "c")])),
            fingerprint(&labels(&[("a", "bc")]))
        );
        assert_eq!(fingerprint(&a).len(), 16);
        // Pinned: a stored fingerprint must still match after an upgrade.
        assert_eq!(fingerprint(&Labels::new()), "cbf29ce484222325");
    }

    #[test]
    fn notification_has_the_common_labels_and_its_status() {
        let at = Timestamp::UNIX_EPOCH;
        let alert = |token: &str, ends: Option<Timestamp>| {
            NotifiedAlert::from(&Alert {
                labels: labels(&[
                    ("alertname", "token_dead"),
                    ("token", token),
                    ("app_id", "1"),
                ]),
                annotations: labels(&[("summary", "dead")]),
                starts_at: at,
                ends_at: ends,
            })
        };
        let n = Notification::new(
            "ops",
            "{}:{alertname=\"token_dead\"}",
            labels(&[("alertname", "token_dead")]),
            vec![alert("ana", None), alert("ben", Some(at))],
        );
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(
            n.common_labels,
            labels(&[("alertname", "token_dead"), ("app_id", "1")])
        );
        assert_eq!(n.firing().count(), 1);
        assert_eq!(n.resolved().count(), 1);
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["version"], "4");
        assert_eq!(json["alerts"][0]["status"], "firing");
        assert!(json["alerts"][0].get("endsAt").is_none());
        assert!(json["alerts"][1]["endsAt"].is_string());
        assert!(json["groupLabels"].is_object());
    }
}
