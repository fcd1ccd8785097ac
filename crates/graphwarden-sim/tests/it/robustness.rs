//! Malformed requests get a Meta-shaped error, never a panic or a hang.

use std::sync::Arc;

use graphwarden_core::ManualClock;
use graphwarden_sim::{SimConfig, SimRequest, Simulator, World};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{TestSim, start_time};

#[tokio::test]
async fn odd_requests_over_http() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    // A JSON body that is not an object.
    let r = sim
        .client
        .post(sim.url("/v26.0/me"))
        .header("content-type", "application/json")
        .body("[1,2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 100);
    // JSON parameters (how the Node SDK posts) are accepted.
    let r = sim
        .client
        .post(sim.url("/v26.0/700000000000001"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "access_token": sim.token("bot-never-expires"), "status": "PAUSED" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Too large.
    let huge = "a=".to_owned() + &"x".repeat(2 * 1024 * 1024);
    let r = sim
        .client
        .post(sim.url("/v26.0/me"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Not UTF-8.
    let r = sim
        .client
        .post(sim.url("/v26.0/me"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    for path in [
        "/",
        "//",
        "/v26.0",
        "/v26.0/",
        "/%E2%98%83",
        "/v99.9/me",
        "/me/../../etc/passwd",
        &format!("/{}", "a/".repeat(500)),
    ] {
        let r = sim
            .client
            .get(sim.url(path))
            .query(&[("access_token", &token)])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            status == 200 || body["error"]["code"].is_i64(),
            "{path}: {status} {body}"
        );
    }
    // Unversioned calls are served by the default version.
    let r = sim.get("/me", &[("access_token", &token)]).await;
    assert_eq!(r.headers["facebook-api-version"], "v26.0");
    let r = sim.get("/v25.0/me", &[("access_token", &token)]).await;
    assert_eq!(r.headers["facebook-api-version"], "v25.0");
    // Bad cursors and limits.
    let bot = sim.token("bot-never-expires");
    let r = sim
        .get(
            "/act_500000000000501/campaigns",
            &[("access_token", &bot), ("after", "!!notbase64")],
        )
        .await;
    assert_eq!(r.error_code().0, 100);
    let r = sim
        .get(
            "/act_500000000000501/campaigns",
            &[("access_token", &bot), ("limit", "-3")],
        )
        .await;
    assert_eq!(r.error_code().0, 100);
}

fn simulator() -> Arc<Simulator> {
    Simulator::new(SimConfig {
        world: Some(World::default_world(start_time().as_second())),
        control: false,
        clock: Arc::new(ManualClock::new(start_time())),
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]
    #[test]
    fn any_request_gets_an_answer_not_a_panic(
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PUT", "PATCH"]),
        segments in prop::collection::vec(
            prop_oneof![
                Just("me".to_owned()), Just("debug_token".to_owned()), Just("oauth".to_owned()),
                Just("access_token".to_owned()), Just("act_500000000000501".to_owned()),
                Just("campaigns".to_owned()), Just("insights".to_owned()), Just("permissions".to_owned()),
                Just("accounts".to_owned()), Just("dialog".to_owned()), "\\PC{0,12}",
            ],
            0..4,
        ),
        params in prop::collection::btree_map(
            prop_oneof![
                Just("access_token".to_owned()), Just("input_token".to_owned()), Just("batch".to_owned()),
                Just("limit".to_owned()), Just("after".to_owned()), Just("fields".to_owned()),
                Just("grant_type".to_owned()), Just("client_id".to_owned()), Just("code".to_owned()),
                Just("appsecret_proof".to_owned()), Just("appsecret_time".to_owned()), "[a-z_]{1,10}",
            ],
            "\\PC{0,40}",
            0..6,
        ),
    ) {
        let sim = simulator();
        let req = SimRequest {
            method: method.to_owned(),
            path: format!("/{}", segments.join("/")),
            version: None,
            params,
            bearer: None,
        };
        let response = sim.handle(req);
        prop_assert!((200..600).contains(&response.status));
        if response.status >= 400
            && let graphwarden_sim::Body::Json(body) = &response.body
        {
            prop_assert!(body["error"]["code"].is_i64(), "{}", body);
            prop_assert!(body["error"]["message"].is_string());
        }
    }
}
