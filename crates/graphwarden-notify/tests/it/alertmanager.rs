//! The Alertmanager receiver against Debian's real `prometheus-alertmanager`, started on free
//! loopback ports with a throw-away config and storage, clustering off.
//!
//! Alertmanager judges firing and resolved by its own wall clock, so these tests read the wall
//! clock too (the one place in the suite that does).

use std::time::Duration;

use graphwarden_core::alert::Notification;
use graphwarden_notify::{AlertmanagerConfig, Deliverer, Delivery, ReceiverConfig};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::support::{Service, free_port, labels, notification, require, spawn, token_alert};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A route that sends nowhere: these tests look at Alertmanager's alert store, not its
/// notifications.
const CONFIG: &str = "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n";

struct Am {
    base: String,
    service: Service,
    _dir: tempfile::TempDir,
}

#[allow(clippy::disallowed_methods)] // Alertmanager runs on the wall clock; see the module doc.
fn wall_clock() -> Timestamp {
    Timestamp::now()
}

async fn start_alertmanager() -> Am {
    require(
        ALERTMANAGER,
        || std::path::Path::new(ALERTMANAGER).is_file(),
        "prometheus-alertmanager",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, CONFIG).unwrap();
    let port = free_port();
    let mut command = tokio::process::Command::new(ALERTMANAGER);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let mut service = spawn(
        "prometheus-alertmanager",
        command,
        dir.path().join("alertmanager.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let ready = format!("{base}/-/ready");
    let http = reqwest::Client::new();
    service
        .wait_until(300, || {
            let (http, ready) = (http.clone(), ready.clone());
            async move {
                http.get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
    Am {
        base,
        service,
        _dir: dir,
    }
}

impl Am {
    fn receiver(&self) -> ReceiverConfig {
        ReceiverConfig::Alertmanager(AlertmanagerConfig {
            url: self.base.clone(),
            timeout: SignedDuration::from_secs(5),
        })
    }

    /// Alertmanager's active alerts with `token=<token>`.
    async fn alerts_for(&self, token: &str) -> Vec<Value> {
        let url = format!("{}/api/v2/alerts", self.base);
        let all: Vec<Value> = reqwest::Client::new()
            .get(url)
            .query(&[("filter", format!("token=\"{token}\""))])
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        all
    }

    /// Polls until `check` holds for the alerts with `token`, for up to 10 s: Alertmanager
    /// processes posted alerts asynchronously.
    async fn until(&self, token: &str, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..100 {
            let alerts = self.alerts_for(token).await;
            if check(&alerts) {
                return alerts;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "Alertmanager never showed {what} for `{token}`: {:?}\n{}",
            self.alerts_for(token).await,
            self.service.log_text()
        );
    }
}

fn group(alerts: Vec<graphwarden_core::alert::NotifiedAlert>) -> Notification {
    notification(alerts)
}

#[tokio::test]
async fn firing_alerts_appear_with_our_labels_and_resolved_ones_leave() {
    let am = start_alertmanager().await;
    let deliverer = Deliverer::new().unwrap();
    let started = wall_clock() - SignedDuration::from_mins(1);

    let now = wall_clock();
    let firing = group(vec![
        token_alert("ana", started, None),
        token_alert("ben", started, None),
    ]);
    deliverer
        .deliver(
            &am.receiver(),
            &firing,
            &Delivery::new("dlv_1", now).with_resend_horizon(SignedDuration::from_hours(1)),
        )
        .await
        .unwrap();

    let shown = am
        .until("ana", "the firing alert", |a| {
            a.len() == 1 && a[0]["status"]["state"] == "active"
        })
        .await;
    let a = &shown[0];
    assert_eq!(a["labels"]["alertname"], "token_dead");
    assert_eq!(a["labels"]["app_id"], "1234567890");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["annotations"]["summary"], "Token ana is dead");
    assert_eq!(
        a["annotations"]["relogin_url"],
        "https://gw.example.com/relogin/ana"
    );
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    let starts: Timestamp = a["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: Timestamp = a["endsAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(starts.as_second(), started.as_second());
    // Our horizon, not Alertmanager's 5-minute `resolve_timeout`.
    assert_eq!(
        ends.as_second(),
        (now + SignedDuration::from_hours(1)).as_second()
    );
    am.until("ben", "the second firing alert", |a| a.len() == 1)
        .await;

    // Ana's token is fixed: her alert is resolved and leaves the active set; Ben's stays.
    let ended = wall_clock();
    let resolved = group(vec![token_alert("ana", started, Some(ended))]);
    deliverer
        .deliver(&am.receiver(), &resolved, &Delivery::new("dlv_2", ended))
        .await
        .unwrap();
    am.until("ana", "the alert resolved", <[Value]>::is_empty)
        .await;
    let ben = am.alerts_for("ben").await;
    assert_eq!(ben.len(), 1, "{ben:?}");
    assert_eq!(ben[0]["status"]["state"], "active");
}

#[tokio::test]
async fn alertmanager_refusing_an_alert_is_a_permanent_error() {
    let am = start_alertmanager().await;
    let mut bad = token_alert("cy", wall_clock(), None);
    // Not a valid Prometheus label name: Alertmanager answers 400.
    bad.labels = labels(&[("alertname", "token_dead"), ("not-a-label", "x")]);
    let err = Deliverer::new()
        .unwrap()
        .deliver(
            &am.receiver(),
            &group(vec![bad]),
            &Delivery::new("dlv", wall_clock()),
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("HTTP 400"), "{err}");
}
