//! Page tokens (§3.4), system-user tokens (§4), permissions (§6.1), `/me`.

use graphwarden_sim::sim::appsecret_proof;
use graphwarden_sim::world::ids;
use serde_json::json;

use crate::support::TestSim;

#[tokio::test]
async fn accounts_gives_page_tokens_that_never_expire_from_long_lived_tokens() {
    let sim = TestSim::start().await;
    let long = sim.token("ana-long-lived");
    let accounts = sim
        .get(
            &format!("/v26.0/{}/accounts", ids::USER_ANA),
            &[("access_token", &long)],
        )
        .await;
    assert_eq!(accounts.status, 200, "{accounts:?}");
    let page = &accounts.body["data"][0];
    assert_eq!(page["id"], ids::PAGE);
    assert_eq!(page["name"], "Acme Shoes");
    assert!(
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "ADVERTISE")
    );
    assert!(page["category_list"][0]["name"].is_string());
    let page_token = page["access_token"].as_str().unwrap().to_owned();
    let data = sim.debug(&page_token).await;
    assert_eq!(
        (data["type"].as_str(), data["expires_at"].as_i64()),
        (Some("PAGE"), Some(0))
    );

    // From a short-lived token, the Page token expires with it.
    let short = sim.token("ana-short-lived");
    let accounts = sim.get("/me/accounts", &[("access_token", &short)]).await;
    let short_page = accounts.body["data"][0]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(short_page, page_token);
    assert!(sim.debug(&short_page).await["expires_at"].as_i64().unwrap() > 0);

    // `GET /{page-id}?fields=access_token`.
    let direct = sim
        .get(
            &format!("/{}", ids::PAGE),
            &[("fields", "access_token"), ("access_token", &long)],
        )
        .await;
    assert_eq!(direct.body["id"], ids::PAGE);
    assert_eq!(
        direct.body["access_token"],
        page_token.as_str(),
        "one Page token per Page × user × app"
    );
    let me = sim.get("/me", &[("access_token", &page_token)]).await;
    assert_eq!(me.body["id"], ids::PAGE);
}

#[tokio::test]
async fn someone_without_a_page_role_gets_no_page_token() {
    let sim = TestSim::start().await;
    let ben = sim
        .mint(json!({ "kind": "user", "app_id": ids::APP, "user_id": ids::USER_BEN, "scopes": ["pages_show_list"], "expires_in": 0 }))
        .await;
    let accounts = sim.get("/me/accounts", &[("access_token", &ben)]).await;
    assert_eq!(accounts.body["data"], json!([]));
    let direct = sim
        .get(
            &format!("/{}", ids::PAGE),
            &[("fields", "access_token"), ("access_token", &ben)],
        )
        .await;
    assert_eq!(direct.status, 400);
}

#[tokio::test]
async fn system_user_tokens_need_proof_business_app_and_scope() {
    let sim = TestSim::start().await;
    let caller = sim.token("bot-never-expires");
    let proof = appsecret_proof(&sim.secret(), &caller);
    let path = format!("/v26.0/{}/access_tokens", ids::SYSTEM_USER);
    let no_proof = sim
        .post(
            &path,
            &[
                ("business_app", ids::APP),
                ("scope", "ads_read"),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(
        no_proof.body["error"]["message"],
        "API calls from the server require an appsecret_proof argument"
    );
    let no_scope = sim
        .post(
            &path,
            &[
                ("business_app", ids::APP),
                ("appsecret_proof", &proof),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(no_scope.error_code(), (100, None));
    let not_installed = sim
        .post(
            &path,
            &[
                ("business_app", "999"),
                ("scope", "ads_read"),
                ("appsecret_proof", &proof),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(not_installed.error_code(), (100, None));

    let ok = sim
        .post(
            &path,
            &[
                ("business_app", ids::APP),
                ("scope", "ads_read,ads_management"),
                ("appsecret_proof", &proof),
                ("access_token", &caller),
                ("set_token_expires_in_60_days", "true"),
            ],
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let token = ok.body["access_token"].as_str().unwrap();
    let data = sim.debug(token).await;
    assert_eq!(data["user_id"], ids::SYSTEM_USER);
    assert_eq!(
        data["expires_at"].as_i64().unwrap() - data["issued_at"].as_i64().unwrap(),
        60 * 86_400
    );
    assert_eq!(data["scopes"], json!(["ads_read", "ads_management"]));

    let forever = sim
        .post(
            &path,
            &[
                ("business_app", ids::APP),
                ("scope", "ads_read"),
                ("appsecret_proof", &proof),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(
        sim.debug(forever.body["access_token"].as_str().unwrap())
            .await["expires_at"],
        0
    );
}

#[tokio::test]
async fn businesses_that_require_expiring_tokens_refuse_the_others() {
    let sim = TestSim::with_world(|w| w.system_users[0].requires_expiring_tokens = true).await;
    let caller = sim.token("bot-never-expires");
    let proof = appsecret_proof(&sim.secret(), &caller);
    let path = format!("/{}/access_tokens", ids::SYSTEM_USER);
    let refused = sim
        .post(
            &path,
            &[
                ("business_app", ids::APP),
                ("scope", "ads_read"),
                ("appsecret_proof", &proof),
                ("access_token", &caller),
            ],
        )
        .await;
    assert_eq!(refused.error_code().0, 100);
}

#[tokio::test]
async fn permissions_list_and_revoke() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-long-lived");
    let list = sim
        .get("/v26.0/me/permissions", &[("access_token", &token)])
        .await;
    let data = list.body["data"].as_array().unwrap().clone();
    assert!(data.contains(&json!({ "permission": "ads_read", "status": "granted" })));
    assert!(data.contains(&json!({ "permission": "email", "status": "declined" })));
    let granted_only = sim
        .get(
            "/me/permissions",
            &[("access_token", &token), ("status", "declined")],
        )
        .await;
    assert_eq!(
        granted_only.body["data"],
        json!([{ "permission": "email", "status": "declined" }])
    );

    let removed = sim
        .delete(
            "/v26.0/me/permissions/ads_management",
            &[("access_token", &token)],
        )
        .await;
    assert_eq!(removed.body["success"], true);
    let data = sim.debug(&token).await;
    assert!(
        !data["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "ads_management"),
        "scope drift is visible"
    );
    assert_eq!(data["is_valid"], true);

    let all = sim
        .delete("/me/permissions", &[("access_token", &token)])
        .await;
    assert_eq!(all.body["success"], true);
    assert_eq!(
        sim.debug(&token).await["error"]["subcode"],
        458,
        "deleting all permissions de-authorises"
    );
}

#[tokio::test]
async fn me_needs_a_token_and_app_tokens_have_no_me() {
    let sim = TestSim::start().await;
    let none = sim.get("/v26.0/me", &[]).await;
    assert_eq!(none.error_code(), (104, None));
    let bearer = sim
        .client
        .get(sim.url("/v26.0/me"))
        .bearer_auth(sim.token("ana-long-lived"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer.status().as_u16(),
        200,
        "tokens in the Authorization header work too"
    );
    let app = sim.get("/me", &[("access_token", &sim.app_token())]).await;
    assert_eq!(app.error_code().0, 2500);
    let fields = sim
        .get(
            "/me",
            &[
                ("access_token", &sim.token("ana-long-lived")),
                ("fields", "name"),
            ],
        )
        .await;
    assert_eq!(
        fields.body,
        json!({ "id": ids::USER_ANA, "name": "Ana Admin" })
    );
}
