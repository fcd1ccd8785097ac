//! The alert engine end to end: a token dies in the simulator, inspection sees it, the engine
//! raises `token_dead` and a signed webhook arrives; silences mute; recovery resolves; a
//! restart neither repeats nor loses a notification.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use graphwarden_core::TokenAlias;
use graphwarden_core::alert::{Route, RouteTree};
use graphwarden_server::{AlertEngine, ServerConfig};
use graphwarden_sim::world::ids;
use jiff::SignedDuration;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{Daemon, spawn_with_alerts};

const SECRET: &str = "a-webhook-signing-secret";

type Seen = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A webhook receiver on a free port that records what it is sent.
async fn receiver() -> (String, Seen) {
    flaky_receiver(0).await
}

/// Like [`receiver`], but answers 503 to the first `failures` requests.
async fn flaky_receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let record = Arc::clone(&record);
        async move {
            let mut seen = record.lock().unwrap();
            seen.push((headers, body));
            if seen.len() <= failures {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
            } else {
                (axum::http::StatusCode::OK, "ok")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn configure(url: &str) -> impl FnOnce(&mut graphwarden_server::AlertingConfig) + use<> {
    let url = url.to_owned();
    move |c| {
        c.receivers.insert(
            "ops".into(),
            serde_json::from_value(json!({ "type": "webhook", "url": url, "secret": SECRET }))
                .unwrap(),
        );
        c.dispatch =
            graphwarden_core::alert::DispatchConfig::new(RouteTree::new(Route::to("ops")).unwrap());
    }
}

/// Run the engine's loop in the background until the returned sender fires.
fn run_engine(
    d: &Daemon,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = d.alerts.clone();
    let finished = d.scheduler.finished_signal();
    let task = tokio::spawn(async move {
        engine
            .run(finished, async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, task)
}

/// Wait until the loop's first evaluation has stored its state.
async fn first_evaluation(d: &Daemon) {
    for _ in 0..100 {
        if d.inventory.store().alert_state().await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the engine never evaluated");
}

/// `GET /api/v1/alerts` once it lists something (or after 5 s).
async fn firing_alerts(d: &Daemon) -> Value {
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = d.get_json("/api/v1/alerts", "reader").await;
        if seen.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}

/// The notifications received so far, each checked against its Standard Webhooks signature
/// (with a tolerance covering the whole test, whose clock moves on after each arrives).
fn received(d: &Daemon, seen: &Seen) -> Vec<(String, Value)> {
    let now = graphwarden_core::Clock::now(&d.clock);
    seen.lock()
        .unwrap()
        .iter()
        .map(|(headers, body)| {
            graphwarden_notify::verify_standard_webhook(
                &SecretString::from(SECRET),
                headers,
                body,
                now,
                SignedDuration::from_hours(1),
            )
            .expect("a valid signature");
            let id = headers["webhook-id"].to_str().unwrap().to_owned();
            (id, serde_json::from_slice(body).unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_token_is_notified_signed_silences_mute_recovery_resolves_and_restarts_resume() {
    let (url, seen) = receiver().await;
    let d = spawn_with_alerts(ServerConfig::default(), configure(&url)).await;
    d.check().await;
    let e = &d.alerts;
    assert_eq!(e.evaluate().await.unwrap().firing, 0);

    // The user changes their password: the next inspection finds the token dead.
    d.control(
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    d.check().await;
    let first = e.evaluate().await.unwrap();
    assert_eq!(
        (first.firing, first.queued),
        (1, 0),
        "the group waits first"
    );
    d.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(e.evaluate().await.unwrap().queued, 1);
    assert_eq!(e.deliver_due().await.unwrap(), 1);
    let got = received(&d, &seen);
    assert_eq!(got.len(), 1);
    let (first_id, n) = &got[0];
    assert!(first_id.starts_with("gwd_"));
    assert_eq!(n["status"], "firing");
    assert_eq!(n["receiver"], "ops");
    assert_eq!(n["groupLabels"], json!({ "alertname": "token_dead" }));
    assert_eq!(n["alerts"].as_array().unwrap().len(), 1);
    let alert = &n["alerts"][0];
    assert_eq!(alert["labels"]["token"], "ana");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["status"], "password_changed");
    assert!(
        alert["annotations"]["relogin_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/oauth/start/", d.url))
    );
    // Nothing new: nothing more is sent.
    d.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(e.evaluate().await.unwrap().queued, 0);

    // The API lists the firing alert.
    let alerts: Value = d.get_json("/api/v1/alerts", "reader").await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["labels"]["alertname"], "token_dead");
    assert_eq!(alerts[0]["receivers"], json!(["ops"]));

    // An operator silences `bot`; its renewal then fails: the alert fires but is not sent.
    let r = d
        .request("post", "/api/v1/silences", Some("operator"))
        .json(
            &json!({ "matchers": ["token=\"bot\""], "duration": "2h", "comment": "migrating bot" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let silence: Value = r.json().await.unwrap();
    assert_eq!(silence["created_by"], "apikey:operator");
    assert_eq!(silence["state"], "active");
    let bot = d
        .inventory
        .token(&TokenAlias::parse("bot").unwrap())
        .await
        .unwrap();
    d.inventory
        .renewal_failed(&bot, "Meta said no", "test")
        .await
        .unwrap();
    assert_eq!(e.evaluate().await.unwrap().firing, 2);
    d.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(e.evaluate().await.unwrap().queued, 0, "silenced");
    let alerts: Value = d.get_json("/api/v1/alerts", "reader").await;
    let bot_alert = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["token"] == "bot")
        .unwrap();
    assert_eq!(bot_alert["silenced_by"], json!([silence["id"]]));

    // `ana` is replaced (removed here): its alert resolves, and the resolution is queued.
    d.inventory
        .remove_token(&TokenAlias::parse("ana").unwrap(), "test")
        .await
        .unwrap();
    assert_eq!(e.evaluate().await.unwrap().firing, 1);
    d.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(e.evaluate().await.unwrap().queued, 1);

    // The daemon restarts before delivering: the new engine re-sends nothing and delivers
    // what was pending.
    let restarted = AlertEngine::start(
        Arc::clone(&d.inventory),
        Arc::new(d.clock.clone()),
        e.config().clone(),
    )
    .await
    .unwrap();
    assert_eq!(restarted.evaluate().await.unwrap().queued, 0);
    assert_eq!(restarted.deliver_due().await.unwrap(), 1);
    let got = received(&d, &seen);
    assert_eq!(got.len(), 2);
    let (second_id, n) = &got[1];
    assert_ne!(second_id, first_id);
    assert_eq!(n["status"], "resolved");
    assert_eq!(n["alerts"][0]["labels"]["token"], "ana");
    assert!(n["alerts"][0]["endsAt"].is_string());
    // Delivered once: a second pass and another restart send nothing more.
    assert_eq!(restarted.deliver_due().await.unwrap(), 0);
    d.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(restarted.evaluate().await.unwrap().queued, 0);
    assert_eq!(received(&d, &seen).len(), 2);

    // Expiring the silence through the API lets the bot alert through.
    let r = d
        .request(
            "delete",
            &format!("/api/v1/silences/{}", silence["id"].as_str().unwrap()),
            Some("operator"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    d.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(restarted.evaluate().await.unwrap().queued, 1);
    assert_eq!(restarted.deliver_due().await.unwrap(), 1);
    let got = received(&d, &seen);
    assert_eq!(
        got[2].1["alerts"][0]["labels"]["alertname"],
        "renewal_failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delivery_keeps_its_webhook_id_and_is_delivered_once() {
    let (url, seen) = flaky_receiver(1).await;
    let d = spawn_with_alerts(ServerConfig::default(), configure(&url)).await;
    let bot = d
        .inventory
        .token(&TokenAlias::parse("bot").unwrap())
        .await
        .unwrap();
    d.inventory
        .renewal_failed(&bot, "no", "test")
        .await
        .unwrap();
    d.alerts.evaluate().await.unwrap();
    d.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(d.alerts.evaluate().await.unwrap().queued, 1);
    assert_eq!(
        d.alerts.deliver_due().await.unwrap(),
        0,
        "503 the first time"
    );
    d.clock.advance(SignedDuration::from_secs(10));
    assert_eq!(d.alerts.deliver_due().await.unwrap(), 1);
    assert_eq!(d.alerts.deliver_due().await.unwrap(), 0);
    let got = received(&d, &seen);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, got[1].0, "the same webhook-id on the retry");
    assert_eq!(got[0].1, got[1].1);
    let row = &d.inventory.store().deliveries(10).await.unwrap()[0];
    assert_eq!(row.state, graphwarden_store::DeliveryState::Delivered);
    assert_eq!(row.attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_after_its_backoff_then_given_up() {
    // Nothing listens here: connection refused is retryable.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let d = spawn_with_alerts(ServerConfig::default(), |c| {
        configure(&closed)(c);
        c.max_attempts = 2;
    })
    .await;
    let bot = d
        .inventory
        .token(&TokenAlias::parse("bot").unwrap())
        .await
        .unwrap();
    d.inventory
        .renewal_failed(&bot, "no", "test")
        .await
        .unwrap();
    d.alerts.evaluate().await.unwrap();
    d.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(d.alerts.evaluate().await.unwrap().queued, 1);
    let store = d.inventory.store();
    assert_eq!(d.alerts.deliver_due().await.unwrap(), 0);
    let row = &store.deliveries(10).await.unwrap()[0];
    assert_eq!(row.attempts, 1);
    assert_eq!(row.state, graphwarden_store::DeliveryState::Pending);
    assert!(row.last_error.is_some());
    // Not due again before its backoff.
    assert_eq!(d.alerts.deliver_due().await.unwrap(), 0);
    assert_eq!(store.deliveries(10).await.unwrap()[0].attempts, 1);
    d.clock.advance(SignedDuration::from_secs(11));
    d.alerts.deliver_due().await.unwrap();
    let row = &store.deliveries(10).await.unwrap()[0];
    assert_eq!(row.attempts, 2);
    assert_eq!(row.state, graphwarden_store::DeliveryState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_engine_looks_again_when_a_scheduled_job_finishes() {
    let d = spawn_with_alerts(ServerConfig::default(), |c| {
        // Only the job's end can trigger the second evaluation within this test.
        c.evaluate_every = std::time::Duration::from_secs(3_600);
    })
    .await;
    let (stop, task) = run_engine(&d);
    d.check().await;
    // The loop's first evaluation (at start) has stored its state before the token dies.
    first_evaluation(&d).await;
    assert!(d.inventory.store().alert_state().await.unwrap().is_some());
    d.control(
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    let r = d
        .request("post", "/api/v1/jobs/inspect/run", Some("operator"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let seen = firing_alerts(&d).await;
    assert_eq!(seen[0]["labels"]["alertname"], "token_dead", "{seen}");
    assert_eq!(seen[0]["receivers"], json!(["log"]));
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_callback_makes_the_running_engine_look_again_at_once() {
    let d = spawn_with_alerts(ServerConfig::default(), |c| {
        // Only the callback can trigger the second evaluation within this test.
        c.evaluate_every = std::time::Duration::from_secs(3_600);
    })
    .await;
    d.check().await;
    let (stop, task) = run_engine(&d);
    first_evaluation(&d).await;
    let answer = d
        .control(
            "/events/deauthorize",
            json!({ "user_id": ids::USER_ANA, "app_id": ids::APP, "wait": true }),
        )
        .await;
    assert_eq!(answer["callback"]["status"], 200, "{answer}");
    let seen = firing_alerts(&d).await;
    assert_eq!(seen[0]["labels"]["alertname"], "token_dead", "{seen}");
    assert_eq!(seen[0]["labels"]["status"], "deauthorized", "{seen}");
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_at_a_time_runs_the_engine_and_another_takes_over_when_it_stops() {
    let d = spawn_with_alerts(ServerConfig::default(), |c| {
        c.evaluate_every = std::time::Duration::from_secs(1);
        c.owner = "instance-a".into();
    })
    .await;
    let mut config_b = d.alerts.config().clone();
    config_b.owner = "instance-b".into();
    let b = AlertEngine::start(
        Arc::clone(&d.inventory),
        Arc::new(d.clock.clone()),
        config_b,
    )
    .await
    .unwrap();
    let holder = || async {
        d.inventory
            .store()
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.name == "alert-engine")
            .and_then(|j| j.lease_owner)
    };
    let spawn_run = |engine: AlertEngine| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let finished = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(async move {
            engine
                .run(finished, async {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    };
    let (stop_a, task_a) = spawn_run(d.alerts.clone());
    for _ in 0..100 {
        if holder().await.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(holder().await.as_deref(), Some("instance-a"));
    let (stop_b, task_b) = spawn_run(b);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(holder().await.as_deref(), Some("instance-a"), "b waits");
    let _ = stop_a.send(());
    task_a.await.unwrap();
    for _ in 0..60 {
        if holder().await.as_deref() == Some("instance-b") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(holder().await.as_deref(), Some("instance-b"));
    let _ = stop_b.send(());
    task_b.await.unwrap();
}

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Debian's real Alertmanager on a free loopback port, clustering off, killed on drop.
struct Am {
    base: String,
    child: tokio::process::Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Am {
    async fn start() -> Self {
        assert!(
            std::path::Path::new(ALERTMANAGER).is_file(),
            "{ALERTMANAGER} is missing: this test needs Debian's `prometheus-alertmanager`. \
             Run scripts/setup.sh (or `apt-get install prometheus-alertmanager`)."
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\n  group_wait: 1h\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("alertmanager.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut am = Self {
            base: format!("http://127.0.0.1:{port}"),
            child,
            log,
            _dir: dir,
        };
        for _ in 0..300 {
            assert!(
                am.child.try_wait().unwrap().is_none(),
                "Alertmanager exited:\n{}",
                am.log_text()
            );
            let ready = reqwest::get(format!("{}/-/ready", am.base)).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return am;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("Alertmanager was not ready:\n{}", am.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls Alertmanager's active alerts for `token` until `check` holds (it ingests
    /// asynchronously).
    async fn until(&self, token: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut last = Vec::new();
        for _ in 0..100 {
            last = reqwest::Client::new()
                .get(format!("{}/api/v2/alerts", self.base))
                .query(&[("filter", format!("token=\"{token}\""))])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if check(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "Alertmanager shows {last:?} for `{token}`\n{}",
            self.log_text()
        );
    }
}

/// Alertmanager judges firing and resolved by its own wall clock, so this test moves the
/// daemon's clock to the wall clock (the one place in these tests that reads it).
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_real_alertmanager_and_leave_it_when_resolved() {
    let am = Am::start().await;
    let base = am.base.clone();
    let d = spawn_with_alerts(ServerConfig::default(), move |c| {
        c.receivers.insert(
            "am".into(),
            serde_json::from_value(json!({ "type": "alertmanager", "url": base })).unwrap(),
        );
        // Short timings: the daemon's clock follows the wall clock here.
        let route = Route {
            group_wait: Some(SignedDuration::from_secs(1)),
            group_interval: Some(SignedDuration::from_secs(1)),
            ..Route::to("am")
        };
        c.dispatch = graphwarden_core::alert::DispatchConfig::new(RouteTree::new(route).unwrap());
    })
    .await;
    let tick = || async {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        d.clock.set(wall_clock());
    };
    d.clock.set(wall_clock());
    let bot = d
        .inventory
        .token(&TokenAlias::parse("bot").unwrap())
        .await
        .unwrap();
    d.inventory
        .renewal_failed(&bot, "Meta said no", "test")
        .await
        .unwrap();
    d.alerts.evaluate().await.unwrap();
    tick().await;
    assert!(d.alerts.evaluate().await.unwrap().queued >= 1);
    assert!(d.alerts.deliver_due().await.unwrap() >= 1);
    let firing = am
        .until("bot", |a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == "renewal_failed")
        })
        .await;
    let alert = firing
        .iter()
        .find(|x| x["labels"]["alertname"] == "renewal_failed")
        .unwrap();
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("1 renewal attempt")
    );

    // The token goes away: the resolution reaches Alertmanager, which drops the alert.
    d.inventory
        .remove_token(&TokenAlias::parse("bot").unwrap(), "test")
        .await
        .unwrap();
    tick().await;
    d.alerts.evaluate().await.unwrap();
    tick().await;
    d.alerts.evaluate().await.unwrap();
    assert!(d.alerts.deliver_due().await.unwrap() >= 1);
    am.until("bot", |a| {
        !a.iter()
            .any(|x| x["labels"]["alertname"] == "renewal_failed")
    })
    .await;
}
