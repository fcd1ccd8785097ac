//! The Marketing API subset: paging (§10), campaign changes, insights, owned ad accounts, and
//! the Dataset Quality API (§11).

use std::collections::BTreeSet;

use graphwarden_sim::world::ids;
use serde_json::Value;

use crate::support::TestSim;

#[tokio::test]
async fn campaigns_page_by_cursor_until_next_disappears() {
    let sim =
        TestSim::with_world(|w| w.ad_accounts[0].access_tier = "standard_access".into()).await;
    let token = sim.token("bot-never-expires");
    let mut ids_seen = BTreeSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![
            ("access_token", token.clone()),
            ("limit", "5".to_owned()),
            ("fields", "name,status".to_owned()),
        ];
        if let Some(a) = &after {
            params.push(("after", a.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = sim
            .get(
                &format!("/v26.0/act_{}/campaigns", ids::AD_ACCOUNT),
                &params,
            )
            .await;
        assert_eq!(page.status, 200, "{page:?}");
        pages += 1;
        for c in page.body["data"].as_array().unwrap() {
            assert!(c.get("objective").is_none(), "only the fields asked for");
            ids_seen.insert(c["id"].as_str().unwrap().to_owned());
        }
        let paging = &page.body["paging"];
        assert!(paging["cursors"]["before"].is_string() && paging["cursors"]["after"].is_string());
        match paging.get("next") {
            Some(next) => {
                assert!(
                    next.as_str().unwrap().contains("access_token="),
                    "next URLs embed the token (§10)"
                );
                after = Some(paging["cursors"]["after"].as_str().unwrap().to_owned());
            }
            None => break,
        }
    }
    assert_eq!((pages, ids_seen.len()), (3, 12));
}

#[tokio::test]
async fn campaign_changes_and_the_budget_change_cap() {
    let sim =
        TestSim::with_world(|w| w.ad_accounts[0].access_tier = "standard_access".into()).await;
    let token = sim.token("bot-never-expires");
    let campaign = "700000000000002";
    let paused = sim
        .post(
            &format!("/v26.0/{campaign}"),
            &[("status", "PAUSED"), ("access_token", &token)],
        )
        .await;
    assert_eq!(paused.body["success"], true);
    let read = sim
        .get(
            &format!("/v26.0/{campaign}"),
            &[("access_token", &token), ("fields", "status,daily_budget")],
        )
        .await;
    assert_eq!(read.body["status"], "PAUSED");
    for budget in ["5000", "6000", "7000", "8000"] {
        let r = sim
            .post(
                &format!("/{campaign}"),
                &[("daily_budget", budget), ("access_token", &token)],
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let fifth = sim
        .post(
            &format!("/{campaign}"),
            &[("daily_budget", "9000"), ("access_token", &token)],
        )
        .await;
    assert_eq!(fifth.error_code(), (613, Some(1_487_632)));
    sim.clock.advance(jiff::SignedDuration::from_mins(61));
    assert_eq!(
        sim.post(
            &format!("/{campaign}"),
            &[("daily_budget", "9000"), ("access_token", &token)]
        )
        .await
        .status,
        200
    );
    let bad = sim
        .post(
            &format!("/{campaign}"),
            &[("status", "MAYBE"), ("access_token", &token)],
        )
        .await;
    assert_eq!(bad.error_code().0, 100);
    let read_only = sim
        .mint(serde_json::json!({ "kind": "system_user", "app_id": ids::APP, "system_user_id": ids::SYSTEM_USER, "scopes": ["ads_read"] }))
        .await;
    let denied = sim
        .post(
            &format!("/{campaign}"),
            &[("status", "ACTIVE"), ("access_token", &read_only)],
        )
        .await;
    assert_eq!((denied.status, denied.error_code().0), (403, 200));
}

#[tokio::test]
async fn insights_carry_the_insights_throttle_header() {
    let sim = TestSim::start().await;
    let token = sim.token("bot-never-expires");
    let insights = sim
        .get(
            &format!("/v26.0/act_{}/insights", ids::AD_ACCOUNT),
            &[("access_token", &token), ("level", "campaign")],
        )
        .await;
    assert_eq!(insights.status, 200, "{insights:?}");
    assert_eq!(insights.body["data"].as_array().unwrap().len(), 12);
    let throttle = insights.header_json("x-fb-ads-insights-throttle");
    assert!(throttle["app_id_util_pct"].is_number() && throttle["acc_id_util_pct"].is_number());
    assert_eq!(throttle["ads_api_access_tier"], "development_access");
    let again = sim
        .get(
            &format!("/v26.0/act_{}/insights", ids::AD_ACCOUNT),
            &[("access_token", &token), ("level", "campaign")],
        )
        .await;
    assert_eq!(
        again.body["data"], insights.body["data"],
        "figures are deterministic"
    );
}

#[tokio::test]
async fn owned_ad_accounts_and_account_reads() {
    let sim = TestSim::start().await;
    let token = sim.token("bot-never-expires");
    let owned = sim
        .get(
            &format!("/v26.0/{}/owned_ad_accounts", ids::BUSINESS),
            &[("access_token", &token)],
        )
        .await;
    assert_eq!(
        owned.body["data"][0]["id"],
        format!("act_{}", ids::AD_ACCOUNT)
    );
    let account = sim
        .get(
            &format!("/act_{}", ids::AD_ACCOUNT),
            &[("access_token", &token), ("fields", "name,currency")],
        )
        .await;
    assert_eq!(account.body["currency"], "USD");
    let missing = sim.get("/act_42", &[("access_token", &token)]).await;
    assert_eq!(missing.error_code(), (100, Some(33)));
}

#[tokio::test]
async fn dataset_quality_scores_event_match_quality() {
    let sim = TestSim::start().await;
    let token = sim.token("bot-never-expires");
    let reply = sim
        .get(
            "/v26.0/dataset_quality",
            &[
                ("dataset_id", ids::DATASET),
                ("fields", "web{event_match_quality,event_coverage}"),
                ("access_token", &token),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let web = reply.body["web"].as_array().unwrap();
    let purchase = web.iter().find(|e| e["event_name"] == "Purchase").unwrap();
    let score = purchase["event_match_quality"]["composite_score"]
        .as_f64()
        .unwrap();
    assert!((0.0..=10.0).contains(&score));
    assert_eq!(purchase["event_coverage"]["goal_percentage"], 75);
    let weak: &Value = web.iter().find(|e| e["event_name"] == "AddToCart").unwrap();
    assert!(
        !weak["event_match_quality"]["diagnostics"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let nested = sim
        .get(
            &format!("/v26.0/{}/dataset_quality", ids::DATASET),
            &[("access_token", &token)],
        )
        .await;
    assert_eq!(
        nested.error_code().0,
        2500,
        "the nested form does not exist (§11)"
    );
}
