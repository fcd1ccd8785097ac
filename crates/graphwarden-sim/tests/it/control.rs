//! The control API: clock, scenario, events, faults, the call log. The callbacks that events
//! send are in `callbacks.rs`.

use std::sync::Arc;

use graphwarden_sim::world::ids;
use serde_json::{Value, json};

use crate::support::TestSim;

#[tokio::test]
async fn the_clock_moves_every_lifetime() {
    let sim = TestSim::start().await;
    let before = sim.control("GET", "/clock", Value::Null).await.body["unix"]
        .as_i64()
        .unwrap();
    let moved = sim
        .control("POST", "/clock", json!({ "advance": "61d" }))
        .await;
    assert_eq!(moved.body["unix"].as_i64().unwrap() - before, 61 * 86_400);
    assert_eq!(
        sim.debug(&sim.token("ana-long-lived")).await["error"]["subcode"],
        463
    );
    let set = sim
        .control("POST", "/clock", json!({ "set": "2026-01-01T00:00:00Z" }))
        .await;
    assert_eq!(set.body["unix"], 1_767_225_600);
    assert_eq!(
        sim.debug(&sim.token("ana-long-lived")).await["is_valid"],
        true
    );
    assert_eq!(
        sim.control("POST", "/clock", json!({ "advance": "soon" }))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn scenarios_load_from_toml_and_json_and_bad_ones_are_refused() {
    let sim = TestSim::start().await;
    let toml = r#"
        now = "2030-06-01T00:00:00Z"
        [[apps]]
        id = "42"
        name = "Other"
        secret = "s3cr3t"
        [[users]]
        id = "7"
        name = "Zoe"
        [[users.apps]]
        app_id = "42"
        granted = ["ads_read"]
        [[tokens]]
        label = "zoe"
        app_id = "42"
        user_id = "7"
        expires_at = 0
        scopes = ["ads_read"]
    "#;
    let response = sim
        .client
        .put(sim.url("/__sim/scenario"))
        .body(toml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["apps"][0]["secret"], "s3cr3t");
    let zoe = summary["tokens"][0]["token"].as_str().unwrap().to_owned();
    let me = sim.get("/me", &[("access_token", &zoe)]).await;
    assert_eq!(me.body["name"], "Zoe");
    assert_eq!(
        sim.control("GET", "/clock", Value::Null).await.body["now"],
        "2030-06-01T00:00:00Z"
    );
    assert_eq!(
        sim.get("/me", &[("access_token", &sim.token("zoe"))])
            .await
            .status,
        200
    );

    let clock_before = sim.control("GET", "/clock", Value::Null).await.body["unix"].clone();
    for bad in [
        "[[apps]]\nidd = 1",
        "{\"now\":\"2040-01-01T00:00:00Z\",\"tokens\":[{\"app_id\":\"nope\"}]}",
        "not toml at all [",
    ] {
        let r = sim
            .client
            .put(sim.url("/__sim/scenario"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    assert_eq!(
        sim.get("/me", &[("access_token", &zoe)]).await.status,
        200,
        "a refused scenario changes nothing"
    );
    assert_eq!(
        sim.control("GET", "/clock", Value::Null).await.body["unix"],
        clock_before,
        "not even the clock"
    );
    let dumped = sim.control("GET", "/scenario", Value::Null).await;
    assert_eq!(dumped.body["apps"][0]["id"], "42");
}

#[tokio::test]
async fn events_refuse_unknown_subjects() {
    let sim = TestSim::start().await;
    assert_eq!(
        sim.control(
            "POST",
            "/events/password_change",
            json!({ "user_id": "nobody" })
        )
        .await
        .status,
        400
    );
    assert_eq!(
        sim.control("POST", "/events/password_change", json!({}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.control("POST", "/events/volcano", json!({}))
            .await
            .status,
        400
    );
    assert_eq!(
        sim.control("POST", "/events/checkpoint", json!({ "user_id": 5 }))
            .await
            .status,
        400
    );
    let perm = sim
        .control(
            "POST",
            "/events/permission_removal",
            json!({ "user_id": ids::USER_ANA, "app_id": ids::APP, "permission": "ads_read" }),
        )
        .await;
    assert_eq!(perm.status, 200);
    assert!(
        !sim.debug(&sim.token("ana-long-lived")).await["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "ads_read")
    );
}

#[tokio::test]
async fn the_call_log_records_calls_without_values() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    sim.get("/v26.0/me", &[("access_token", &token)]).await;
    sim.get("/v26.0/me", &[("access_token", "EAAbad")]).await;
    let calls = sim.control("GET", "/calls", Value::Null).await.body;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["path"], "/me");
    assert_eq!(calls[0]["version"], "v26.0");
    assert_eq!(calls[0]["app_id"], ids::APP);
    assert_eq!(calls[1]["error_code"], 190);
    assert!(
        !calls[0].to_string().contains(&token),
        "tokens are not logged"
    );
    sim.control("DELETE", "/calls", Value::Null).await;
    assert_eq!(
        sim.control("GET", "/calls", Value::Null).await.body,
        json!([])
    );
}

#[tokio::test]
async fn control_is_off_unless_asked_for() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = graphwarden_sim::start(
        graphwarden_sim::SimConfig {
            world: None,
            control: false,
            clock: Arc::new(graphwarden_core::SystemClock),
        },
        listener,
    )
    .unwrap();
    let r = reqwest::get(format!("{}/__sim/clock", handle.url()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    handle.stop().await;
}

#[tokio::test]
async fn faults_latency_5xx_timeout_drop_malformed_truncated_wrong_type() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    let me = || {
        sim.client
            .get(sim.url("/v26.0/me"))
            .query(&[("access_token", &token)])
            .send()
    };

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "server_error", "status": 502, "times": 1 }),
    )
    .await;
    let r = me().await.unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_i64(),
            body["error"]["is_transient"].as_bool()
        ),
        (Some(2), Some(true))
    );
    assert_eq!(
        me().await.unwrap().status().as_u16(),
        200,
        "`times` ran out"
    );

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "latency", "latency_ms": 300, "times": 1 }),
    )
    .await;
    #[allow(clippy::disallowed_methods)] // measuring the injected latency itself
    let started = std::time::Instant::now();
    assert_eq!(me().await.unwrap().status().as_u16(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "*", "kind": "drop_connection", "times": 1 }),
    )
    .await;
    assert!(me().await.is_err(), "the connection is closed unanswered");

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "timeout", "latency_ms": 2000, "times": 1 }),
    )
    .await;
    let quick = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let err = quick
        .get(sim.url("/me"))
        .query(&[("access_token", &token)])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "malformed_body", "times": 1 }),
    )
    .await;
    let text = me().await.unwrap().text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "not JSON: {text}"
    );

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "truncated_body", "times": 1 }),
    )
    .await;
    let cut = match me().await {
        Ok(r) => r.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(cut, "the body is cut short");

    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "wrong_content_type", "times": 1 }),
    )
    .await;
    let r = me().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    assert_eq!(
        sim.control(
            "PUT",
            "/faults",
            json!({ "route": "/me", "kind": "gremlins" })
        )
        .await
        .status,
        400
    );
    sim.control(
        "PUT",
        "/faults",
        json!({ "route": "/me", "kind": "server_error" }),
    )
    .await;
    sim.control("DELETE", "/faults", Value::Null).await;
    assert_eq!(me().await.unwrap().status().as_u16(), 200);
}
