//! The HTTP API as a client sees it.

use graphwarden_server::ServerConfig;
use serde_json::{Value, json};

use crate::support::spawn;

/// The least role each documented route needs (`None`: no key at all). A route missing here
/// fails the test, so a new route cannot skip the authorization check.
fn needed(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("get", "/healthz" | "/readyz" | "/metrics") => None,
        ("get", "/api/v1/apps" | "/api/v1/apps/{app_id}" | "/api/v1/tokens")
        | ("get", "/api/v1/tokens/{alias}" | "/api/v1/tokens/{alias}/events" | "/api/v1/events")
        | ("get", "/api/v1/jobs" | "/api/v1/jobs/{name}/runs") => Some("reader"),
        ("get", "/api/v1/alerts" | "/api/v1/silences") => Some("reader"),
        ("post", "/api/v1/silences") | ("delete", "/api/v1/silences/{id}") => Some("operator"),
        ("post", "/api/v1/checks" | "/api/v1/renewals" | "/api/v1/jobs/{name}/run") => {
            Some("operator")
        }
        ("delete", "/api/v1/tokens/{alias}") => Some("admin"),
        ("post", "/api/v1/tokens/{alias}/revoke") => Some("admin"),
        ("post", "/api/v1/tokens/{alias}/relogin-link") => Some("operator"),
        // Meta's callbacks and the browser login take no key: each request proves itself
        // (tested in `callbacks`).
        (_, p) if p.starts_with("/meta/") || p.starts_with("/oauth/") => Some("self"),
        ("get", "/api/v1/tokens/{alias}/secret") => Some("consumer"),
        _ => panic!("{method} {path} is not in the test's table of roles"),
    }
}

fn concrete(path: &str) -> String {
    path.replace("{app_id}", graphwarden_sim::world::ids::APP)
        .replace("{alias}", "ana")
        .replace("{name}", "prune")
        .replace("{id}", "0000000000000000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_refuses_missing_wrong_and_small_keys() {
    let d = spawn(ServerConfig::default()).await;
    let doc: Value = serde_json::from_str(&graphwarden_server::openapi::document()).unwrap();
    let mut routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes += 1;
            let url = concrete(path);
            if needed(method, path) == Some("self") {
                continue;
            }
            let Some(role) = needed(method, path) else {
                let r = d.request(method, &url, None).send().await.unwrap();
                assert_eq!(r.status(), 200, "{method} {path} answers without a key");
                continue;
            };
            let r = d.request(method, &url, None).send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} without a key");
            assert!(r.headers().contains_key("x-request-id"));
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "unauthorized");
            assert!(body["request_id"].as_str().unwrap().len() >= 8);
            let wrong = format!("gwk_abcdefabcdef_{}", "0".repeat(64));
            let r = d
                .request(method, &url, None)
                .bearer_auth(&wrong)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with a wrong key");
            let too_small: &[&str] = match role {
                "reader" => &["consumer"],
                "operator" => &["consumer", "reader"],
                "admin" => &["consumer", "reader", "operator"],
                "consumer" => &["reader", "operator"],
                _ => unreachable!(),
            };
            for small in too_small {
                let r = d.request(method, &url, Some(small)).send().await.unwrap();
                assert_eq!(r.status(), 403, "{method} {path} as {small}");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["code"], "forbidden");
            }
        }
    }
    assert!(routes >= 14, "{routes} routes documented");
}

#[test]
fn openapi_json_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let current = graphwarden_server::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, format!("{current}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == current.trim_end(),
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p graphwarden-server openapi` and commit it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_show_secrets_and_consumers_fetch_only_their_own() {
    let d = spawn(ServerConfig::default()).await;
    let ana = d.sim.simulator().token("ana-long-lived").unwrap();
    for path in [
        "/api/v1/tokens",
        "/api/v1/tokens/ana",
        "/api/v1/tokens/ana/events",
        "/api/v1/events",
    ] {
        let text = d
            .request("get", path, Some("admin"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(&ana), "{path} shows the secret");
    }
    let list: Value = d
        .get_json("/api/v1/tokens?kind=system_user", "reader")
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["alias"], "bot");

    let got: Value = d.get_json("/api/v1/tokens/ana/secret", "consumer").await;
    assert_eq!(got["access_token"], ana.as_str());
    let r = d
        .request("get", "/api/v1/tokens/bot/secret", Some("consumer"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Each fetch is in the log, with the key that made it.
    let events: Value = d.get_json("/api/v1/tokens/ana/events", "reader").await;
    let fetched: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revealed")
        .collect();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0]["actor"], "apikey:consumer");
    assert!(
        !d.store
            .raw_dump()
            .await
            .windows(ana.len())
            .any(|w| w == ana.as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_renewals_and_jobs_run_through_the_api() {
    let d = spawn(ServerConfig::default()).await;
    let r = d
        .request("post", "/api/v1/checks", Some("operator"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(report["severity"], "ok");
    assert!(
        report["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["inspected"] == true)
    );

    // A check of one alias, with no body at all for the rest.
    let one: Value = d
        .request("post", "/api/v1/checks", Some("operator"))
        .json(&json!({ "aliases": ["bot"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["tokens"][0]["alias"], "bot");

    // A preview is open to readers and changes nothing.
    let preview: Value = d
        .request("post", "/api/v1/renewals", Some("reader"))
        .json(&json!({ "dry_run": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["dry_run"], true);
    assert!(
        preview["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["outcome"] != "renewed")
    );
    let r = d
        .request("post", "/api/v1/renewals", Some("reader"))
        .json(&json!({ "dry_run": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let r = d
        .request("post", "/api/v1/jobs/inspect/run", Some("operator"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["run_id"].as_i64().unwrap();
    d.scheduler.wait_idle().await;
    let runs: Value = d.get_json("/api/v1/jobs/inspect/runs", "reader").await;
    assert_eq!(runs[0]["id"], id);
    assert_eq!(runs[0]["outcome"], "ok");
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(runs[0]["counts"]["tokens"], 2);
    let r = d
        .request("post", "/api/v1/jobs/nope/run", Some("operator"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_json_errors_and_change_nothing() {
    let d = spawn(ServerConfig {
        body_limit: 2048,
        rate_limit_per_minute: 1000,
        ..ServerConfig::default()
    })
    .await;
    let before = d.inventory.recent_events(1000).await.unwrap().len();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .header("content-type", "application/json")
                .body("{\"aliases\": [\"ana\""),
            400,
            "invalid_input",
        ),
        // A body that is not declared JSON must not be taken for "no body" (check everything).
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("{\"aliases\": [\"ana\"]}"),
            415,
            "invalid_input",
        ),
        (
            d.request("post", "/api/v1/renewals", Some("operator"))
                .body("{\"aliases\": [\"ana\"]}"),
            415,
            "invalid_input",
        ),
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .json(&json!({ "aliases": "ana" })),
            422,
            "invalid_input",
        ),
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .json(&json!({ "alias": ["ana"] })),
            422,
            "invalid_input",
        ),
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .json(&json!({ "aliases": ["x".repeat(5000)] })),
            413,
            "payload_too_large",
        ),
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .json(&json!({ "aliases": ["nobody"] })),
            404,
            "not_found",
        ),
        (
            d.request("post", "/api/v1/checks", Some("operator"))
                .json(&json!({ "aliases": ["bad alias!"] })),
            400,
            "invalid_input",
        ),
        (
            d.request("get", "/api/v1/tokens?status=fine", Some("reader")),
            400,
            "invalid_input",
        ),
        (
            d.request("get", "/api/v1/tokens?expiring_within=soon", Some("reader")),
            400,
            "invalid_input",
        ),
        (
            d.request("get", "/api/v1/apps/abc", Some("reader")),
            400,
            "invalid_input",
        ),
        (
            d.request("get", "/api/v1/apps/42", Some("reader")),
            404,
            "not_found",
        ),
        (
            d.request("get", "/api/v1/nothing", Some("reader")),
            404,
            "not_found",
        ),
        (
            d.request("put", "/api/v1/tokens", Some("admin")),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), status, "{code}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(d.inventory.recent_events(1000).await.unwrap().len(), before);

    // A caller's request id is echoed; a silly one is replaced.
    let r = d
        .request("get", "/healthz", None)
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let r = d
        .request("get", "/healthz", None)
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "x".repeat(500).as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_rate_limited_and_revocation_is_immediate() {
    let d = spawn(ServerConfig {
        rate_limit_per_minute: 3,
        ..ServerConfig::default()
    })
    .await;
    for _ in 0..3 {
        let r = d
            .request("get", "/api/v1/apps", Some("reader"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = d
        .request("get", "/api/v1/apps", Some("reader"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    // Other keys are not affected.
    let r = d
        .request("get", "/api/v1/apps", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    d.inventory.revoke_api_key("admin", "test").await.unwrap();
    let r = d
        .request("get", "/api/v1/apps", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_revoke_through_the_api_after_a_dry_run() {
    let d = spawn(ServerConfig::default()).await;
    d.check().await;
    let r = d
        .request(
            "post",
            "/api/v1/tokens/ana/revoke?dry_run=true",
            Some("admin"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let preview: Value = r.json().await.unwrap();
    assert_eq!(preview["revoked"], false);
    assert_eq!(preview["status"], "valid");
    assert_eq!(
        preview["consumers"],
        serde_json::json!(["consumer"]),
        "{preview}"
    );
    let r = d
        .request("post", "/api/v1/tokens/ana/revoke", Some("operator"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "operators may not revoke");
    let r = d
        .request("post", "/api/v1/tokens/ana/revoke", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["revoked"], true);
    assert_eq!(done["status"], "revoked", "{done}");
    let token = d.get_json("/api/v1/tokens/ana", "reader").await;
    assert_eq!(token["status"], "revoked");
    let events = d.get_json("/api/v1/tokens/ana/events", "reader").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "apikey:admin" && e["action"] == "token.status_changed"),
        "the revocation's inspection names who did it: {events}"
    );
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "apikey:admin" && e["action"] == "token.revoked"),
        "and the revocation has its own event: {events}"
    );
    let r = d
        .request("post", "/api/v1/tokens/nobody/revoke", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
