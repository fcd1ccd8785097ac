//! The callbacks Meta sends an app (§6.3, §6.4), fired by the `deauthorize` and `data_deletion`
//! events: a form POST with one field, `signed_request`, signed with the app secret (§6.2).
//! A small axum server plays the app and checks each signature as an app would.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use graphwarden_sim::world::ids;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::support::{TestSim, start_time};

/// One POST the app received.
#[derive(Debug)]
struct Received {
    content_type: String,
    form: HashMap<String, String>,
}

/// An app's callback endpoint: it records every POST and answers `status` with `answer`.
struct App {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
}

impl App {
    async fn start(status: u16, answer: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/meta/callback", listener.local_addr().unwrap());
        let (tx, received) = mpsc::unbounded_channel();
        let router = Router::new().route(
            "/meta/callback",
            post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                let answer = answer.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let form = form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    let _ = tx.send(Received { content_type, form });
                    (StatusCode::from_u16(status).unwrap(), Json(answer))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, received }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("the callback arrives within 10 s")
            .expect("the app is still listening")
    }
}

/// Check a `signed_request` as an app must (§6.2): HMAC-SHA256 of the payload segment as sent,
/// under the app secret, compared in constant time. Returns the payload.
fn verify(signed: &str, secret: &str) -> Value {
    let (sig, payload) = signed.split_once('.').expect("`sig.payload`");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(payload.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=')).unwrap())
        .expect("signed with the app secret");
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .unwrap(),
    )
    .unwrap()
}

/// A URL where nothing listens.
async fn closed_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gone", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn deauthorize_posts_a_signed_request_in_the_background() {
    let mut app = App::start(200, json!({})).await;
    let sim =
        TestSim::with_world(|w| w.apps[0].deauthorize_callback_url = Some(app.url.clone())).await;
    // The payload's time is the simulator's, not the wall clock's.
    sim.advance_days(3);
    let answer = sim
        .control(
            "POST",
            "/events/deauthorize",
            json!({ "user_id": ids::USER_ANA, "app_id": ids::APP }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body["callback"],
        json!({ "url": app.url, "delivery": "background" })
    );

    let received = app.next().await;
    assert_eq!(received.content_type, "application/x-www-form-urlencoded");
    assert_eq!(
        received.form.keys().collect::<Vec<_>>(),
        ["signed_request"],
        "one field (§6.2)"
    );
    let payload = verify(&received.form["signed_request"], &sim.secret());
    assert_eq!(
        payload,
        json!({
            "algorithm": "HMAC-SHA256",
            "issued_at": start_time().as_second() + 3 * 86_400,
            "user_id": ids::USER_ANA,
        })
    );
    assert_eq!(
        sim.debug(&sim.token("ana-long-lived")).await["error"]["subcode"],
        458,
        "the event itself happened"
    );
}

#[tokio::test]
async fn deauthorize_never_waits_for_a_callback_that_hangs_or_fails() {
    // An app that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging = format!("http://{}/deauth", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    for url in [hanging, closed_url().await] {
        let sim =
            TestSim::with_world(|w| w.apps[0].deauthorize_callback_url = Some(url.clone())).await;
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            sim.control(
                "POST",
                "/events/deauthorize",
                json!({ "user_id": ids::USER_ANA, "app_id": ids::APP }),
            ),
        )
        .await
        .expect("the control call does not wait for the app");
        assert_eq!(answer.status, 200, "{url}: {:?}", answer.body);
        assert_eq!(answer.body["callback"]["delivery"], "background");
        assert_eq!(
            sim.debug(&sim.token("ana-long-lived")).await["error"]["subcode"],
            458
        );
    }
}

#[tokio::test]
async fn deauthorize_can_wait_for_the_callbacks_answer() {
    let mut app = App::start(200, json!({ "ok": true })).await;
    let sim =
        TestSim::with_world(|w| w.apps[0].deauthorize_callback_url = Some(app.url.clone())).await;
    let answer = sim
        .control(
            "POST",
            "/events/deauthorize",
            json!({ "user_id": ids::USER_BEN, "app_id": ids::APP, "wait": true }),
        )
        .await;
    assert_eq!(
        answer.body["callback"],
        json!({ "url": app.url, "status": 200, "body": { "ok": true } })
    );
    let payload = verify(&app.next().await.form["signed_request"], &sim.secret());
    assert_eq!(payload["user_id"], ids::USER_BEN);

    let sim = TestSim::with_world(|_| {}).await;
    let none = sim
        .control(
            "POST",
            "/events/deauthorize",
            json!({ "user_id": ids::USER_BEN, "app_id": ids::APP }),
        )
        .await;
    assert_eq!(
        none.body["callback"],
        Value::Null,
        "no URL, no callback (the default world)"
    );
}

#[tokio::test]
async fn data_deletion_returns_the_confirmation_the_app_answers() {
    let confirmation = json!({
        "url": "https://app.example/deletion-status?id=abc123",
        "confirmation_code": "abc123",
    });
    let mut app = App::start(200, confirmation.clone()).await;
    let sim = TestSim::start().await;
    // The URL comes from a scenario, as a user would write it.
    let scenario = format!(
        r#"
        now = "2026-03-01T09:00:00Z"
        [[apps]]
        id = "42"
        secret = "0123456789abcdef0123456789abcdef"
        data_deletion_callback_url = "{}"
        [[users]]
        id = "7"
        [[users.apps]]
        app_id = "42"
        granted = ["public_profile"]
        [[tokens]]
        label = "zoe"
        app_id = "42"
        user_id = "7"
        expires_at = 0
    "#,
        app.url
    );
    let loaded = sim
        .client
        .put(sim.url("/__sim/scenario"))
        .body(scenario)
        .send()
        .await
        .unwrap();
    assert_eq!(loaded.status().as_u16(), 200);

    let answer = sim
        .control(
            "POST",
            "/events/data_deletion",
            json!({ "user_id": "7", "app_id": "42" }),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["event"], "data_deletion");
    assert_eq!(
        answer.body["callback"],
        json!({ "url": app.url, "status": 200, "body": confirmation }),
        "the app's confirmation code is handed back"
    );

    let received = app.next().await;
    assert_eq!(received.content_type, "application/x-www-form-urlencoded");
    let payload = verify(
        &received.form["signed_request"],
        "0123456789abcdef0123456789abcdef",
    );
    // 2026-03-01T09:00:00Z; `expires` an hour later, as in Meta's example (§6.4).
    assert_eq!(
        payload,
        json!({
            "algorithm": "HMAC-SHA256",
            "expires": 1_772_355_600 + 3600,
            "issued_at": 1_772_355_600,
            "user_id": "7",
        })
    );
    let zoe = sim.token("zoe");
    assert_eq!(
        sim.get("/me", &[("access_token", &zoe)]).await.status,
        200,
        "a deletion request alone leaves the authorisation be"
    );
}

#[tokio::test]
async fn data_deletion_reports_failures_and_refuses_bad_requests() {
    let failing = App::start(500, json!({ "error": "database down" })).await;
    let closed = closed_url().await;
    let sim = TestSim::with_world(|w| {
        w.apps[0].data_deletion_callback_url = Some(failing.url.clone());
        let mut other = w.apps[0].clone();
        other.id = "43".into();
        other.data_deletion_callback_url = Some(closed.clone());
        let mut silent = w.apps[0].clone();
        silent.id = "44".into();
        silent.data_deletion_callback_url = None;
        w.apps.push(other);
        w.apps.push(silent);
    })
    .await;
    let event = |app: &str| {
        sim.control(
            "POST",
            "/events/data_deletion",
            json!({ "user_id": ids::USER_ANA, "app_id": app }),
        )
    };

    let answer = event(ids::APP).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["callback"]["status"], 500);
    assert_eq!(answer.body["callback"]["body"]["error"], "database down");

    let answer = event("43").await;
    assert_eq!(
        answer.status, 200,
        "a failed callback does not fail the event"
    );
    assert_eq!(answer.body["callback"]["url"], closed);
    let error = answer.body["callback"]["error"].as_str().unwrap();
    assert!(!error.is_empty());

    assert_eq!(event("44").await.body["callback"], Value::Null);
    assert_eq!(event("99").await.status, 400, "an unknown app");
    let missing = sim
        .control(
            "POST",
            "/events/data_deletion",
            json!({ "app_id": ids::APP }),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"], "`user_id` is required");
}
