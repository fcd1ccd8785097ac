//! `GET /debug_token` (§2): HTTP 200 with `data` for every inspected token, the cause in
//! `data.error.subcode`, and the inspector rules of §2.1.

use graphwarden_sim::world::ids;
use serde_json::json;

use crate::support::TestSim;

#[tokio::test]
async fn valid_tokens_have_meta_shapes() {
    let sim = TestSim::start().await;
    let long = sim.debug(&sim.token("ana-long-lived")).await;
    assert_eq!(long["type"], "USER");
    assert_eq!(long["app_id"], ids::APP);
    assert_eq!(long["application"], "graphwarden demo app");
    assert_eq!(long["is_valid"], true);
    assert_eq!(long["user_id"], ids::USER_ANA);
    assert!(
        long["issued_at"].is_i64(),
        "long-lived tokens carry issued_at"
    );
    assert!(long["expires_at"].as_i64().unwrap() > long["issued_at"].as_i64().unwrap());
    assert!(long["data_access_expires_at"].is_i64());
    assert!(
        long["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "ads_read")
    );
    assert_eq!(long["granular_scopes"][0]["target_ids"][0], ids::PAGE);
    assert!(long.get("error").is_none());

    let short = sim.debug(&sim.token("ana-short-lived")).await;
    assert!(
        short.get("issued_at").is_none(),
        "short-lived tokens have no issued_at (§2.2)"
    );
    assert_eq!(short["metadata"]["auth_type"], "rerequest");

    let page = sim.debug(&sim.token("acme-page")).await;
    assert_eq!(page["type"], "PAGE");
    assert_eq!(
        page["expires_at"], 0,
        "derived from a long-lived user token: never expires"
    );
    assert_eq!(page["profile_id"], ids::PAGE);

    let system = sim.debug(&sim.token("bot-never-expires")).await;
    assert_eq!(
        system["type"], "USER",
        "system-user tokens report USER (§2.2)"
    );
    assert_eq!(system["user_id"], ids::SYSTEM_USER);

    let app = sim.debug(&sim.app_token()).await;
    assert_eq!(
        app,
        json!({ "app_id": ids::APP, "type": "APP", "application": "graphwarden demo app", "is_valid": true, "scopes": [] })
    );
}

#[tokio::test]
async fn garbage_and_foreign_tokens_get_the_three_key_shape() {
    let sim = TestSim::start().await;
    let garbage = sim.debug("EAAnotarealtoken").await;
    assert_eq!(
        garbage,
        json!({ "error": { "code": 190, "message": "Invalid OAuth access token - Cannot parse access token" }, "is_valid": false, "scopes": [] })
    );
    let wrong_secret = sim.debug(&format!("{}|wrong", ids::APP)).await;
    assert_eq!(
        wrong_secret["error"]["message"],
        "Invalid OAuth access token signature."
    );
    let unknown_app = sim.debug("123|abc").await;
    assert!(
        unknown_app["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Cannot get application info")
    );
}

async fn assert_dead(sim: &TestSim, token: &str, subcode: i64, words: &str) {
    let data = sim.debug(token).await;
    assert_eq!(data["is_valid"], false, "{data}");
    assert_eq!(data["error"]["code"], 190);
    assert_eq!(data["error"]["subcode"], subcode, "{data}");
    assert!(
        data["error"]["message"].as_str().unwrap().contains(words),
        "{data}"
    );
    assert!(
        data["error"].get("error_subcode").is_none(),
        "debug_token says `subcode`"
    );
}

#[tokio::test]
async fn expiry_follows_the_clock_463() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    sim.advance_days(59);
    assert_eq!(sim.debug(&token).await["is_valid"], true);
    sim.advance_days(2);
    assert_dead(&sim, &token, 463, "Session has expired on").await;
    // A plain API call reports the expiry by message only (§7.1 [REAL]).
    let call = sim.get("/v26.0/me", &[("access_token", &token)]).await;
    assert_eq!(call.status, 400);
    assert_eq!(call.error_code(), (190, None));
    assert!(
        call.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );
    // The page token derived from it does not expire.
    assert_eq!(sim.debug(&sim.token("acme-page")).await["is_valid"], true);
}

#[tokio::test]
async fn password_change_460_kills_user_and_page_tokens() {
    let sim = TestSim::start().await;
    sim.control(
        "POST",
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    assert_dead(
        &sim,
        &sim.token("ana-long-lived"),
        460,
        "changed their password",
    )
    .await;
    assert_dead(&sim, &sim.token("acme-page"), 460, "changed their password").await;
    assert_eq!(
        sim.debug(&sim.token("bot-never-expires")).await["is_valid"],
        true,
        "system users are not people"
    );
    let call = sim
        .get(
            "/v26.0/me",
            &[("access_token", &sim.token("ana-long-lived"))],
        )
        .await;
    assert_eq!(call.error_code(), (190, Some(460)));
}

#[tokio::test]
async fn deauthorization_458_and_checkpoint_459_and_role_loss_492() {
    let sim = TestSim::start().await;
    sim.control(
        "POST",
        "/events/page_role_loss",
        json!({ "user_id": ids::USER_ANA, "page_id": ids::PAGE }),
    )
    .await;
    assert_dead(
        &sim,
        &sim.token("acme-page"),
        492,
        "appropriate role on the Page",
    )
    .await;
    assert_eq!(
        sim.debug(&sim.token("ana-long-lived")).await["is_valid"],
        true,
        "only the Page token dies"
    );

    sim.control(
        "POST",
        "/events/checkpoint",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    assert_dead(
        &sim,
        &sim.token("ana-long-lived"),
        459,
        "log in to www.facebook.com",
    )
    .await;

    let sim = TestSim::start().await;
    sim.control(
        "POST",
        "/events/deauthorize",
        json!({ "user_id": ids::USER_ANA, "app_id": ids::APP }),
    )
    .await;
    assert_dead(
        &sim,
        &sim.token("ana-long-lived"),
        458,
        &format!("has not authorized application {}", ids::APP),
    )
    .await;
    let call = sim
        .get(
            "/v26.0/me",
            &[("access_token", &sim.token("ana-short-lived"))],
        )
        .await;
    assert_eq!(call.error_code(), (190, Some(458)));
}

#[tokio::test]
async fn revoked_466_empties_scopes() {
    let sim = TestSim::start().await;
    let token = sim.token("bot-60-days");
    let secret = sim.secret();
    let caller = sim.token("bot-never-expires");
    let revoked = sim
        .get(
            "/v26.0/oauth/revoke",
            &[
                ("client_id", ids::APP),
                ("client_secret", &secret),
                ("revoke_token", &token),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(
        revoked.body["success"], "true",
        "a string, as the doc sample shows (§4)"
    );
    assert_dead(
        &sim,
        &token,
        466,
        "invalidated explicitly using an API call",
    )
    .await;
    assert_eq!(sim.debug(&token).await["scopes"], json!([]));
}

#[tokio::test]
async fn inspector_rules() {
    let sim = TestSim::start().await;
    let ben_token = sim
        .mint(json!({ "kind": "user", "app_id": ids::APP, "user_id": ids::USER_BEN, "scopes": ["ads_read"], "expires_in": 3600 }))
        .await;
    let ana = sim.token("ana-long-lived");
    // An app admin's token may inspect another's.
    let by_admin = sim
        .get(
            "/debug_token",
            &[("input_token", &ben_token), ("access_token", &ana)],
        )
        .await;
    assert_eq!(by_admin.status, 200);
    assert_eq!(by_admin.body["data"]["user_id"], ids::USER_BEN);
    // A token may inspect itself.
    let itself = sim
        .get(
            "/debug_token",
            &[("input_token", &ben_token), ("access_token", &ben_token)],
        )
        .await;
    assert_eq!(itself.status, 200);
    // Anyone else gets code 100.
    let refused = sim
        .get(
            "/debug_token",
            &[("input_token", &ana), ("access_token", &ben_token)],
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.error_code(), (100, None));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("You must provide an app access token")
    );
    let missing = sim.get("/debug_token", &[("input_token", &ana)]).await;
    assert_eq!(missing.error_code(), (100, None));
    // A client_credentials app token inspects too (§3.3).
    let secret = sim.secret();
    let app = sim
        .get(
            "/oauth/access_token",
            &[
                ("client_id", ids::APP),
                ("client_secret", &secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    let app_token = app.body["access_token"].as_str().unwrap().to_owned();
    assert!(app_token.starts_with(&format!("{}|", ids::APP)));
    assert_eq!(
        sim.get(
            "/debug_token",
            &[("input_token", &ana), ("access_token", &app_token)]
        )
        .await
        .status,
        200
    );
    let missing_input = sim
        .get("/debug_token", &[("access_token", &app_token)])
        .await;
    assert_eq!(missing_input.error_code(), (100, None));
}

#[tokio::test]
async fn app_secret_reset_kills_app_tokens_and_old_proofs() {
    let sim = TestSim::start().await;
    let old_app_token = sim.app_token();
    let reset = sim
        .control(
            "POST",
            "/events/app_secret_reset",
            json!({ "app_id": ids::APP }),
        )
        .await;
    let new_secret = reset.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(format!("{}|{new_secret}", ids::APP), old_app_token);
    let call = sim
        .get(
            "/debug_token",
            &[("input_token", "x"), ("access_token", &old_app_token)],
        )
        .await;
    assert_eq!(call.error_code(), (190, None));
    assert_eq!(
        call.body["error"]["message"],
        "Invalid OAuth access token signature."
    );
    // A proof made with the old secret is refused as a configuration error (§5: code 100).
    let token = sim.token("ana-long-lived");
    let old_proof =
        graphwarden_sim::sim::appsecret_proof(old_app_token.split('|').nth(1).unwrap(), &token);
    let call = sim
        .get(
            "/v26.0/me",
            &[("access_token", &token), ("appsecret_proof", &old_proof)],
        )
        .await;
    assert_eq!(call.error_code(), (100, None));
    assert_eq!(
        call.body["error"]["message"],
        "Invalid appsecret_proof provided in the API argument"
    );
    assert_eq!(call.body["error"]["type"], "GraphMethodException");
}

#[tokio::test]
async fn tokens_killed_by_deauthorization_or_checkpoint_stay_dead_after_a_new_login() {
    let sim = TestSim::start().await;
    let old = sim.token("ana-long-lived");
    sim.control(
        "POST",
        "/events/deauthorize",
        json!({ "user_id": ids::USER_ANA, "app_id": ids::APP }),
    )
    .await;
    sim.control(
        "POST",
        "/events/checkpoint",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    // Ana logs in again through the dialog: the app is authorised anew and the checkpoint passed.
    let dialog = sim
        .get(
            "/dialog/oauth",
            &[
                ("client_id", ids::APP),
                ("redirect_uri", ids::REDIRECT_URI),
                ("state", "s"),
            ],
        )
        .await;
    let location = dialog.headers["location"].to_str().unwrap().to_owned();
    let code = reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let secret = sim.secret();
    let fresh = sim
        .get(
            "/oauth/access_token",
            &[
                ("client_id", ids::APP),
                ("client_secret", &secret),
                ("redirect_uri", ids::REDIRECT_URI),
                ("code", &code),
            ],
        )
        .await;
    let fresh = fresh.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(sim.debug(&fresh).await["is_valid"], true);
    assert_eq!(
        sim.debug(&old).await["error"]["subcode"],
        458,
        "the old token is not revived"
    );
    // A later password change does not relabel what was already dead.
    sim.control(
        "POST",
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    assert_eq!(sim.debug(&old).await["error"]["subcode"], 458);
    assert_eq!(sim.debug(&fresh).await["error"]["subcode"], 460);
}
