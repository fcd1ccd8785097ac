//! The Alertmanager receiver: graphwarden's alerts posted to a Prometheus Alertmanager through its
//! API (`POST {url}/api/v2/alerts`, a JSON array of postable alerts), so the routes, silences and
//! inhibitions people already run there apply to token alerts too.
//!
//! # `endsAt` of a firing alert
//!
//! Alertmanager treats an alert as firing until its `endsAt`. When a client leaves `endsAt` out,
//! Alertmanager sets it to *now + `resolve_timeout`* (5 minutes by default), so an alert not sent
//! again within that time resolves by itself. graphwarden sends a firing group again only every
//! repeat interval (hours), so leaving it out would make every alert flap to resolved a few minutes
//! after it fired. Instead, like Prometheus, graphwarden sets `endsAt` itself: *now +
//! [`Delivery::resend_horizon`]*, which the caller sets to a few repeat intervals (3 × is the
//! convention). The alert then stays firing while graphwarden keeps re-sending it, and still
//! resolves by itself if graphwarden stops (a crashed instance leaves no alert firing forever).
//!
//! A resolved alert is sent with its real `endsAt`, which is in the past, and Alertmanager
//! resolves it at once.
//!
//! What does not live here: Alertmanager's own notification settings, and retries.

use std::time::Duration;

use graphwarden_core::alert::{AlertStatus, Labels, Notification};
use jiff::Timestamp;
use reqwest::Url;
use serde::Serialize;

use crate::Delivery;
use crate::config::{AlertmanagerConfig, ReceiverKind, std_timeout};
use crate::error::DeliveryError;

const KIND: ReceiverKind = ReceiverKind::Alertmanager;

/// One alert as Alertmanager's API v2 takes it (`postableAlert`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostableAlert {
    pub labels: Labels,
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: Timestamp,
    #[serde(rename = "endsAt")]
    pub ends_at: Timestamp,
    /// Left out when empty: Alertmanager checks that it is a URI.
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

/// `{url}/api/v2/alerts` and the time-out.
pub(crate) fn endpoint(c: &AlertmanagerConfig) -> Result<(Url, Duration), DeliveryError> {
    let mut url = crate::http::parse_url(KIND, &c.url)?;
    // Keep a path prefix (an Alertmanager behind a proxy at `/alertmanager/`).
    let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok((url, std_timeout(KIND, c.timeout)?))
}

/// The alerts posted for `n`: firing ones end at the resend horizon, resolved ones when they
/// ended. Empty annotations are dropped, as Alertmanager does itself.
pub fn postable_alerts(n: &Notification, delivery: &Delivery<'_>) -> Vec<PostableAlert> {
    let horizon = delivery
        .now
        .checked_add(delivery.resend_horizon)
        .unwrap_or(Timestamp::MAX);
    n.alerts
        .iter()
        .map(|a| {
            let ends_at = match (a.status, a.ends_at) {
                (AlertStatus::Resolved, Some(end)) => end,
                // "Resolved" without an end cannot come from `graphwarden-core`; treat it as
                // ending now rather than keep it firing.
                (AlertStatus::Resolved, None) => delivery.now,
                (AlertStatus::Firing, _) => horizon,
            };
            PostableAlert {
                labels: a.labels.clone(),
                annotations: a
                    .annotations
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                starts_at: a.starts_at,
                // Alertmanager refuses an alert that ends before it starts.
                ends_at: ends_at.max(a.starts_at),
                generator_url: a.generator_url.clone(),
            }
        })
        .collect()
}

pub(crate) async fn send(
    http: &reqwest::Client,
    c: &AlertmanagerConfig,
    n: &Notification,
    delivery: &Delivery<'_>,
) -> Result<(), DeliveryError> {
    let (url, timeout) = endpoint(c)?;
    let alerts = postable_alerts(n, delivery);
    crate::http::send(
        KIND,
        http.post(url).json(&alerts),
        timeout,
        delivery.now,
        &[c.url.as_str()],
    )
    .await
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::render::tests::{alert, notification};

    #[test]
    fn endpoint_appends_the_api_path_and_keeps_a_prefix() {
        let c = |url: &str| AlertmanagerConfig {
            url: url.into(),
            timeout: crate::config::DEFAULT_TIMEOUT,
        };
        assert_eq!(
            endpoint(&c("http://am:9093")).unwrap().0.as_str(),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(
            endpoint(&c("https://ops.example.com/alertmanager/"))
                .unwrap()
                .0
                .as_str(),
            "https://ops.example.com/alertmanager/api/v2/alerts"
        );
    }

    #[test]
    fn firing_alerts_end_at_the_horizon_and_resolved_ones_when_they_ended() {
        let now = Timestamp::from_second(1_767_229_200).unwrap();
        let d = Delivery::new("d", now).with_resend_horizon(SignedDuration::from_hours(12));
        let mut n = notification(vec![alert("ana", false), alert("ben", true)]);
        n.alerts[0]
            .annotations
            .insert("empty".into(), String::new());
        let posted = postable_alerts(&n, &d);
        assert_eq!(posted[0].ends_at, now + SignedDuration::from_hours(12));
        assert_eq!(posted[1].ends_at, n.alerts[1].ends_at.unwrap());
        assert!(!posted[0].annotations.contains_key("empty"));
        let json = serde_json::to_value(&posted).unwrap();
        assert_eq!(json[0]["labels"]["token"], "ana");
        assert_eq!(json[0]["startsAt"], "2026-01-01T00:00:00Z");
        assert_eq!(json[0]["endsAt"], "2026-01-01T13:00:00Z");
        assert!(json[0].get("generatorURL").is_none());
    }
}
