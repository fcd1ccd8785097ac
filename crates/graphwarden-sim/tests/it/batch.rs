//! Batch requests (§9).

use graphwarden_sim::world::ids;
use serde_json::{Value, json};

use crate::support::TestSim;

#[tokio::test]
async fn items_answer_with_code_headers_list_and_string_body() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    let batch = json!([
        { "method": "GET", "relative_url": "me" },
        { "method": "GET", "relative_url": format!("v26.0/act_{}/campaigns?limit=2", ids::AD_ACCOUNT) },
        { "method": "GET", "relative_url": "me?access_token=EAAgarbage" },
        { "method": "POST", "relative_url": "700000000000001", "body": "status=PAUSED" },
    ]);
    let reply = sim
        .post(
            "/v26.0/",
            &[("access_token", &token), ("batch", &batch.to_string())],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let items = reply.body.as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        assert!(item["code"].is_i64());
        assert!(
            item["headers"].is_array(),
            "headers are a list of {{name, value}}"
        );
        assert!(
            item["body"].is_string(),
            "the body is a JSON string to decode again"
        );
    }
    let me: Value = serde_json::from_str(items[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(me["id"], ids::USER_ANA);
    let usage = items[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-app-usage");
    assert!(
        usage.is_some(),
        "usage headers ride on every item: {}",
        items[0]
    );
    let campaigns: Value = serde_json::from_str(items[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(campaigns["data"].as_array().unwrap().len(), 2);
    let buc = items[1]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "x-business-use-case-usage");
    assert!(buc);
    assert_eq!(
        items[2]["code"], 400,
        "an item's own token is used, and its error stays in its body"
    );
    let error: Value = serde_json::from_str(items[2]["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], 190);
    assert_eq!(items[3]["code"], 200);
    assert_eq!(sim.handle.simulator().world().campaigns[0].status, "PAUSED");

    let calls = sim.handle.simulator().calls();
    assert_eq!(
        calls.iter().filter(|c| c.in_batch).count(),
        4,
        "each item counts as a call"
    );
}

#[tokio::test]
async fn at_most_fifty_items_and_a_top_level_token() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    let items: Vec<Value> = (0..51)
        .map(|_| json!({ "method": "GET", "relative_url": "me" }))
        .collect();
    let reply = sim
        .post(
            "/",
            &[
                ("access_token", &token),
                ("batch", &Value::Array(items).to_string()),
            ],
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["error"]["type"], "GraphBatchException");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Maximum batch size is 50")
    );
    let no_token = sim.post("/", &[("batch", "[]")]).await;
    assert_eq!(no_token.error_code().0, 104);
    let not_json = sim
        .post("/", &[("access_token", &token), ("batch", "{oops")])
        .await;
    assert_eq!(not_json.error_code().0, 100);
    let fifty: Vec<Value> = (0..50).map(|_| json!({ "relative_url": "me" })).collect();
    let ok = sim
        .post(
            "/",
            &[
                ("access_token", &token),
                ("batch", &Value::Array(fifty).to_string()),
                ("include_headers", "false"),
            ],
        )
        .await;
    assert_eq!(ok.body.as_array().unwrap().len(), 50);
    assert_eq!(ok.body[0]["headers"], json!([]), "include_headers=false");
    let bad_items = json!([{ "method": "GET" }, { "method": "TRACE", "relative_url": "me" }, 7]);
    let odd = sim
        .post(
            "/",
            &[("access_token", &token), ("batch", &bad_items.to_string())],
        )
        .await;
    assert_eq!(odd.status, 200);
    assert!(
        odd.body
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["code"] == 400)
    );
}

#[tokio::test]
async fn the_outer_call_needs_a_working_token_and_a_throttled_app_gets_an_envelope() {
    let sim = TestSim::with_world(|w| w.apps[0].daily_active_users = 1).await;
    let batch = json!([{ "relative_url": "me" }]).to_string();
    let dead = sim
        .post("/", &[("access_token", "EAAgarbage"), ("batch", &batch)])
        .await;
    assert_eq!(dead.error_code().0, 190);
    let token = sim.token("ana-long-lived");
    let items: Vec<Value> = (0..50).map(|_| json!({ "relative_url": "me" })).collect();
    let items = Value::Array(items).to_string();
    for _ in 0..4 {
        assert_eq!(
            sim.post("/", &[("access_token", &token), ("batch", &items)])
                .await
                .status,
            200
        );
    }
    let throttled = sim
        .post("/", &[("access_token", &token), ("batch", &items)])
        .await;
    assert_eq!((throttled.status, throttled.error_code()), (400, (4, None)));
    assert!(
        throttled.header_json("x-app-usage")["call_count"]
            .as_f64()
            .unwrap()
            >= 100.0
    );
}
