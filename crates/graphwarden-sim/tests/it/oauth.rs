//! `/oauth/access_token` (§3.1, §3.2, §3.3, §4), the login dialog, and `appsecret_proof` (§5).

use graphwarden_sim::sim::appsecret_proof;
use graphwarden_sim::world::ids;
use serde_json::json;

use crate::support::TestSim;

#[tokio::test]
async fn exchange_gives_a_new_long_lived_string_every_time() {
    let sim = TestSim::start().await;
    let secret = sim.secret();
    let short = sim.token("ana-short-lived");
    let exchange = |token: String| {
        let sim = &sim;
        let secret = secret.clone();
        async move {
            sim.get(
                "/v26.0/oauth/access_token",
                &[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", ids::APP),
                    ("client_secret", &secret),
                    ("fb_exchange_token", &token),
                ],
            )
            .await
        }
    };
    let first = exchange(short.clone()).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["token_type"], "bearer");
    assert_eq!(first.body["expires_in"], 5_183_944);
    let long = first.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(long, short);
    let second = exchange(short.clone()).await;
    assert_ne!(
        second.body["access_token"], first.body["access_token"],
        "always a new string"
    );
    let data = sim.debug(&long).await;
    assert_eq!(data["is_valid"], true);
    assert!(data["issued_at"].is_i64());

    // An expired token cannot be exchanged (§1).
    sim.clock.advance(jiff::SignedDuration::from_hours(2));
    let late = exchange(short).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.error_code().0, 190);
    assert!(
        late.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );
}

#[tokio::test]
async fn wrong_client_credentials() {
    let sim = TestSim::start().await;
    let token = sim.token("ana-short-lived");
    let wrong = sim
        .get(
            "/oauth/access_token",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", ids::APP),
                ("client_secret", "nope"),
                ("fb_exchange_token", &token),
            ],
        )
        .await;
    assert_eq!(wrong.error_code(), (1, None));
    assert_eq!(
        wrong.body["error"]["message"],
        "Error validating client secret."
    );
    let unknown = sim
        .get(
            "/oauth/access_token",
            &[("client_id", "42"), ("client_secret", "x")],
        )
        .await;
    assert_eq!(unknown.error_code(), (101, None));
}

#[tokio::test]
async fn system_user_tokens_refresh_for_60_days_and_the_old_one_keeps_working() {
    let sim = TestSim::start().await;
    let secret = sim.secret();
    let old = sim.token("bot-60-days");
    sim.advance_days(30);
    let refreshed = sim
        .get(
            "/oauth/access_token",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", ids::APP),
                ("client_secret", &secret),
                ("set_token_expires_in_60_days", "true"),
                ("fb_exchange_token", &old),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert_eq!(refreshed.body["expires_in"], 60 * 86_400);
    let new = refreshed.body["access_token"].as_str().unwrap().to_owned();
    sim.advance_days(29);
    assert_eq!(
        sim.debug(&old).await["is_valid"],
        true,
        "the old token lives to its own expiry"
    );
    sim.advance_days(2);
    assert_eq!(sim.debug(&old).await["error"]["subcode"], 463);
    assert_eq!(sim.debug(&new).await["is_valid"], true);
}

#[tokio::test]
async fn login_dialog_code_flow_with_exact_redirect_and_single_use_codes() {
    let sim = TestSim::start().await;
    let dialog = sim
        .get(
            "/v26.0/dialog/oauth",
            &[
                ("client_id", ids::APP),
                ("redirect_uri", ids::REDIRECT_URI),
                ("state", "csrf-123"),
                ("scope", "ads_read,business_management"),
                ("response_type", "code"),
            ],
        )
        .await;
    assert_eq!(dialog.status, 302, "{dialog:?}");
    let location = dialog.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}?", ids::REDIRECT_URI)));
    let url = reqwest::Url::parse(&location).unwrap();
    let params: std::collections::HashMap<String, String> =
        url.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "csrf-123");
    let code = params["code"].clone();

    let secret = sim.secret();
    let exchange = |redirect: &'static str| {
        let (sim, secret, code) = (&sim, secret.clone(), code.clone());
        async move {
            sim.get(
                "/v26.0/oauth/access_token",
                &[
                    ("client_id", ids::APP),
                    ("client_secret", &secret),
                    ("redirect_uri", redirect),
                    ("code", &code),
                ],
            )
            .await
        }
    };
    let mismatch = exchange("http://127.0.0.1:8080/oauth/callback/").await;
    assert_eq!(
        mismatch.error_code(),
        (100, Some(36_008)),
        "redirect_uri must be byte-identical"
    );
    let ok = exchange(ids::REDIRECT_URI).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let token = ok.body["access_token"].as_str().unwrap().to_owned();
    let data = sim.debug(&token).await;
    assert_eq!(data["user_id"], ids::USER_ANA);
    assert!(data.get("issued_at").is_none(), "a short-lived login token");
    assert!(
        data["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "business_management")
    );
    let again = exchange(ids::REDIRECT_URI).await;
    assert_eq!(
        again.error_code(),
        (100, Some(36_009)),
        "codes are single-use"
    );
}

#[tokio::test]
async fn login_dialog_can_deny_and_refuses_unknown_redirects() {
    let sim = TestSim::start().await;
    let blocked = sim
        .get(
            "/dialog/oauth",
            &[
                ("client_id", ids::APP),
                ("redirect_uri", "https://evil.example/cb"),
                ("state", "s"),
            ],
        )
        .await;
    assert_eq!(blocked.status, 400);
    assert!(blocked.body.as_str().unwrap().contains("URL blocked"));
    sim.control("PUT", "/dialog", json!({ "approves": false }))
        .await;
    let denied = sim
        .get(
            "/dialog/oauth",
            &[
                ("client_id", ids::APP),
                ("redirect_uri", ids::REDIRECT_URI),
                ("state", "s1"),
            ],
        )
        .await;
    assert_eq!(denied.status, 302);
    let location = denied.headers["location"].to_str().unwrap();
    assert!(
        location.contains("error=access_denied")
            && location.contains("error_reason=user_denied")
            && location.contains("state=s1")
    );
}

#[tokio::test]
async fn appsecret_proof_classic_and_timed_when_the_app_requires_it() {
    let sim = TestSim::with_world(|w| w.apps[0].require_app_secret = true).await;
    let token = sim.token("ana-long-lived");
    let secret = sim.secret();
    let missing = sim.get("/v26.0/me", &[("access_token", &token)]).await;
    assert_eq!(missing.error_code(), (100, None));
    assert_eq!(
        missing.body["error"]["message"],
        "API calls from the server require an appsecret_proof argument"
    );
    let classic = appsecret_proof(&secret, &token);
    assert_eq!(
        sim.get(
            "/v26.0/me",
            &[("access_token", &token), ("appsecret_proof", &classic)]
        )
        .await
        .status,
        200
    );
    let now = sim.clock_now_secs();
    let timed = appsecret_proof(&secret, &format!("{token}|{now}"));
    let t = now.to_string();
    assert_eq!(
        sim.get(
            "/v26.0/me",
            &[
                ("access_token", &token),
                ("appsecret_proof", &timed),
                ("appsecret_time", &t)
            ]
        )
        .await
        .status,
        200
    );
    sim.clock.advance(jiff::SignedDuration::from_mins(6));
    let stale = sim
        .get(
            "/v26.0/me",
            &[
                ("access_token", &token),
                ("appsecret_proof", &timed),
                ("appsecret_time", &t),
            ],
        )
        .await;
    assert_eq!(
        stale.error_code(),
        (100, None),
        "a timed proof expires after five minutes"
    );
    let wrong = sim
        .get(
            "/v26.0/me",
            &[
                ("access_token", &token),
                ("appsecret_proof", &"0".repeat(64)),
            ],
        )
        .await;
    assert_eq!(
        wrong.body["error"]["message"],
        "Invalid appsecret_proof provided in the API argument"
    );
}

impl TestSim {
    pub fn clock_now_secs(&self) -> i64 {
        graphwarden_core::Clock::now(&self.clock).as_second()
    }
}
