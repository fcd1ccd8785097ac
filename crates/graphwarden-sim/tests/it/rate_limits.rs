//! Rate limits computed from the calls made (§8): rolling windows, fractional percentages
//! above 100, throttle codes with usage headers on the error too, regain times counting down,
//! and calls made while blocked extending the block.

use graphwarden_sim::world::ids;
use jiff::SignedDuration;

use crate::support::TestSim;

#[tokio::test]
async fn app_allowance_is_200_calls_per_user_per_rolling_hour() {
    let sim = TestSim::with_world(|w| w.apps[0].daily_active_users = 1).await;
    let token = sim.token("ana-long-lived");
    let mut last = 0.0;
    for i in 0..200 {
        let r = sim.get("/v26.0/me", &[("access_token", &token)]).await;
        assert_eq!(r.status, 200, "call {i}: {r:?}");
        last = r.header_json("x-app-usage")["call_count"].as_f64().unwrap();
    }
    assert_eq!(last, 100.0);
    let throttled = sim.get("/v26.0/me", &[("access_token", &token)]).await;
    assert_eq!((throttled.status, throttled.error_code()), (400, (4, None)));
    assert_eq!(
        throttled.body["error"]["message"],
        "(#4) Application request limit reached"
    );
    let usage = throttled.header_json("x-app-usage");
    assert!(
        usage["call_count"].as_f64().unwrap() > 100.0,
        "not clamped: {usage}"
    );

    // Half an hour on, still blocked; each refused call counts and keeps the window full.
    sim.clock.advance(SignedDuration::from_mins(30));
    for _ in 0..200 {
        assert_eq!(
            sim.get("/me", &[("access_token", &token)]).await.status,
            400
        );
    }
    // An hour after the first burst it would have cleared, but the calls made while blocked
    // are still in the window.
    sim.clock.advance(SignedDuration::from_mins(31));
    assert_eq!(
        sim.get("/me", &[("access_token", &token)])
            .await
            .error_code()
            .0,
        4
    );
    sim.clock.advance(SignedDuration::from_mins(31));
    assert_eq!(
        sim.get("/me", &[("access_token", &token)]).await.status,
        200
    );
}

#[tokio::test]
async fn ad_account_score_blocks_for_five_minutes_and_calls_extend_it() {
    let sim = TestSim::start().await;
    let token = sim.token("bot-never-expires");
    let path = format!("/v26.0/act_{}", ids::AD_ACCOUNT);
    for i in 0..60 {
        let r = sim.get(&path, &[("access_token", &token)]).await;
        assert_eq!(r.status, 200, "read {i}");
        let usage = r.header_json("x-ad-account-usage");
        assert_eq!(usage["ads_api_access_tier"], "development_access");
    }
    let blocked = sim.get(&path, &[("access_token", &token)]).await;
    assert_eq!(blocked.error_code(), (17, Some(2_446_079)));
    let usage = blocked.header_json("x-ad-account-usage");
    assert!(
        usage["acc_id_util_pct"].as_f64().unwrap() > 100.0,
        "{usage}"
    );
    assert!(
        usage["reset_time_duration"].as_i64().unwrap() >= 299,
        "{usage}"
    );
    assert!(blocked.headers.contains_key("x-business-use-case-usage"));

    sim.clock.advance(SignedDuration::from_secs(290));
    assert_eq!(
        sim.get(&path, &[("access_token", &token)])
            .await
            .error_code()
            .0,
        17,
        "a call during the block…"
    );
    sim.clock.advance(SignedDuration::from_secs(20));
    assert_eq!(
        sim.get(&path, &[("access_token", &token)])
            .await
            .error_code()
            .0,
        17,
        "…pushed its end out"
    );
    sim.clock.advance(SignedDuration::from_secs(301));
    let free = sim.get(&path, &[("access_token", &token)]).await;
    assert_eq!(free.status, 200, "{free:?}");
}

#[tokio::test]
async fn business_use_case_quota_throttles_with_regain_time_in_minutes() {
    // Development tier with no active ads: 300 ads_management calls an hour.
    let sim = TestSim::with_world(|w| w.ad_accounts[0].active_ads = 0).await;
    let token = sim.token("bot-never-expires");
    let path = format!("/v26.0/act_{}", ids::AD_ACCOUNT);
    // Stay under the five-minute score by spreading the calls: 50 every five minutes.
    for round in 0..6 {
        for _ in 0..50 {
            let r = sim.get(&path, &[("access_token", &token)]).await;
            assert_eq!(r.status, 200, "round {round}: {r:?}");
        }
        sim.clock.advance(SignedDuration::from_mins(5));
    }
    let throttled = sim.get(&path, &[("access_token", &token)]).await;
    assert_eq!(
        throttled.error_code(),
        (80_004, Some(2_446_079)),
        "{throttled:?}"
    );
    let buc = throttled.header_json("x-business-use-case-usage");
    let entry = &buc[ids::AD_ACCOUNT][0];
    assert_eq!(entry["type"], "ads_management");
    assert!(entry["call_count"].as_f64().unwrap() > 100.0);
    let regain = entry["estimated_time_to_regain_access"].as_i64().unwrap();
    assert!((1..=60).contains(&regain), "{entry}");

    sim.clock.advance(SignedDuration::from_mins(10));
    let later = sim.get(&path, &[("access_token", &token)]).await;
    let later_regain = later.header_json("x-business-use-case-usage")[ids::AD_ACCOUNT][0]["estimated_time_to_regain_access"]
        .as_i64()
        .unwrap();
    assert!(
        later_regain < regain,
        "counting down: {regain} then {later_regain}"
    );

    let usage = sim.control("GET", "/usage", serde_json::json!(null)).await;
    assert!(
        usage.body["business_use_case"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["type"] == "ads_management")
    );
}

#[tokio::test]
async fn page_token_calls_are_charged_to_the_page() {
    let sim = TestSim::start().await;
    let page = sim.token("acme-page");
    let r = sim.get("/v26.0/me", &[("access_token", &page)]).await;
    assert_eq!(r.status, 200);
    let buc = r.header_json("x-business-use-case-usage");
    assert_eq!(buc[ids::PAGE][0]["type"], "pages");
    assert!(
        r.headers.get("x-app-usage").is_none(),
        "Page tokens use the pages limit, not the app's"
    );
}
