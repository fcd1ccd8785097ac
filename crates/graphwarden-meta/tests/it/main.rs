//! The Graph client against the simulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{ManualClock, TokenStatus};
use graphwarden_meta::{
    AppCredentials, Classification, GraphClient, GraphConfig, MetaError, assess,
};
use graphwarden_sim::world::ids;
use graphwarden_sim::{SimConfig, SimHandle, World};
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

struct Fixture {
    sim: SimHandle,
    clock: ManualClock,
    client: GraphClient,
    app: AppCredentials,
}

fn start() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

async fn fixture_with(
    change: impl FnOnce(&mut World),
    config: impl FnOnce(&mut GraphConfig),
) -> Fixture {
    let clock = ManualClock::new(start());
    let mut world = World::default_world(start().as_second());
    change(&mut world);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = graphwarden_sim::start(
        SimConfig {
            world: Some(world),
            control: true,
            clock: Arc::new(clock.clone()),
        },
        listener,
    )
    .unwrap();
    let mut cfg = GraphConfig {
        base_url: sim.url().to_owned(),
        timeout: Duration::from_secs(5),
        ..GraphConfig::default()
    };
    config(&mut cfg);
    let client = GraphClient::new(cfg, Arc::new(clock.clone())).unwrap();
    let app = AppCredentials {
        app_id: ids::APP.into(),
        secret: SecretString::from(sim.simulator().app_secret(ids::APP).unwrap()),
    };
    Fixture {
        sim,
        clock,
        client,
        app,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}, |_| {}).await
}

impl Fixture {
    fn token(&self, label: &str) -> SecretString {
        SecretString::from(self.sim.simulator().token(label).unwrap())
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}/__sim{path}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn fault(&self, body: Value) {
        reqwest::Client::new()
            .put(format!("{}/__sim/faults", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
    }
}

const WEEK: SignedDuration = SignedDuration::from_hours(24 * 7);

#[tokio::test]
async fn debug_token_single_and_assessed() {
    let f = fixture().await;
    let (data, usage) = f
        .client
        .debug_token(&f.token("ana-long-lived"), &f.app)
        .await
        .unwrap();
    assert!(data.is_valid);
    assert!(
        usage.app.is_some(),
        "usage headers are read on every response"
    );
    let a = assess(&data, start(), WEEK);
    assert_eq!(a.status, TokenStatus::Valid);
    assert_eq!(a.user_id.as_deref(), Some(ids::USER_ANA));
    let page = assess(
        &f.client
            .debug_token(&f.token("acme-page"), &f.app)
            .await
            .unwrap()
            .0,
        start(),
        WEEK,
    );
    assert_eq!(
        (page.status, page.expires_at, page.profile_id.as_deref()),
        (TokenStatus::Valid, None, Some(ids::PAGE))
    );
}

#[tokio::test]
async fn debug_tokens_in_batches_with_each_cause() {
    let f = fixture().await;
    f.control(
        "/events/page_role_loss",
        json!({ "user_id": ids::USER_ANA, "page_id": ids::PAGE }),
    )
    .await;
    f.clock.advance(SignedDuration::from_hours(2));
    let garbage = SecretString::from("EAAgarbage");
    let tokens = [
        f.token("ana-long-lived"),
        f.token("ana-short-lived"),
        f.token("acme-page"),
        garbage.clone(),
        f.token("bot-60-days"),
    ];
    let refs: Vec<&SecretString> = tokens.iter().collect();
    let (results, usage) = f.client.debug_tokens(&refs, &f.app).await.unwrap();
    assert!(
        usage.app.is_some(),
        "usage from the batch items' header lists"
    );
    let statuses: Vec<TokenStatus> = results
        .iter()
        .map(|r| {
            assess(
                r.as_ref().unwrap(),
                Timestamp::from_second(start().as_second() + 7200).unwrap(),
                WEEK,
            )
            .status
        })
        .collect();
    assert_eq!(
        statuses,
        [
            TokenStatus::Valid,
            TokenStatus::Expired,
            TokenStatus::RoleLost,
            TokenStatus::Invalid,
            TokenStatus::Valid
        ]
    );
    let too_many: Vec<&SecretString> = std::iter::repeat_n(&garbage, 51).collect();
    assert!(matches!(
        f.client.debug_tokens(&too_many, &f.app).await,
        Err(MetaError::Config { .. })
    ));
}

#[tokio::test]
async fn exchange_refresh_accounts_mint_revoke() {
    let f = fixture().await;
    let long = f
        .client
        .exchange(&f.token("ana-short-lived"), &f.app, false)
        .await
        .unwrap();
    assert_eq!(long.expires_in, Some(5_183_944));
    assert_ne!(
        long.token.expose_secret(),
        f.token("ana-short-lived").expose_secret()
    );
    let refreshed = f
        .client
        .exchange(&f.token("bot-60-days"), &f.app, true)
        .await
        .unwrap();
    assert_eq!(refreshed.expires_in, Some(60 * 86_400));
    let pages = f.client.accounts(&long.token, &f.app).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].id, ids::PAGE);
    assert!(pages[0].tasks.contains(&"MANAGE".to_owned()));
    let minted = f
        .client
        .mint_system_user_token(
            ids::SYSTEM_USER,
            &f.token("bot-never-expires"),
            &f.app,
            &["ads_read".into()],
            true,
        )
        .await
        .unwrap();
    let (data, _) = f.client.debug_token(&minted.token, &f.app).await.unwrap();
    assert_eq!(data.scopes, ["ads_read"]);
    assert!(
        f.client
            .revoke(&minted.token, &f.token("bot-never-expires"), &f.app)
            .await
            .unwrap()
    );
    let (data, _) = f.client.debug_token(&minted.token, &f.app).await.unwrap();
    assert_eq!(assess(&data, start(), WEEK).status, TokenStatus::Revoked);
}

#[tokio::test]
async fn errors_are_classified() {
    let f = fixture().await;
    f.control(
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    let err = f
        .client
        .exchange(&f.token("ana-long-lived"), &f.app, false)
        .await
        .unwrap_err();
    assert_eq!(
        err.class(),
        Classification::TokenDead {
            status: TokenStatus::PasswordChanged
        }
    );
    // An expired token: the call names no subcode; the message decides.
    f.clock.advance(SignedDuration::from_hours(24 * 70));
    let err = f
        .client
        .exchange(&f.token("bot-60-days"), &f.app, true)
        .await
        .unwrap_err();
    assert_eq!(
        err.class(),
        Classification::TokenDead {
            status: TokenStatus::Expired
        }
    );
    // A wrong app secret is configuration, not a dead token.
    let wrong = AppCredentials {
        app_id: ids::APP.into(),
        secret: SecretString::from("0".repeat(32)),
    };
    let err = f
        .client
        .debug_token(&f.token("bot-never-expires"), &wrong)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.class(),
            Classification::TokenDead { .. } | Classification::AppConfiguration
        ),
        "{err}"
    );
    let err = f
        .client
        .exchange(&f.token("bot-never-expires"), &wrong, true)
        .await
        .unwrap_err();
    assert_eq!(err.class(), Classification::AppConfiguration);
}

#[tokio::test]
async fn throttles_are_classified_with_their_wait_and_not_retried() {
    let f = fixture_with(|w| w.apps[0].daily_active_users = 1, |_| {}).await;
    let token = f.token("bot-never-expires");
    for _ in 0..200 {
        f.client.debug_token(&token, &f.app).await.unwrap();
    }
    let err = f.client.debug_token(&token, &f.app).await.unwrap_err();
    assert!(
        matches!(err.class(), Classification::Throttled { wait: Some(_) }),
        "{err}"
    );
    assert!(err.usage().unwrap().app.as_ref().unwrap().call_count > 100.0);
    let calls = f.sim.simulator().calls().len();
    assert_eq!(calls, 201, "a throttle is never retried");
}

#[tokio::test]
async fn transient_failures_are_retried_then_reported() {
    let f = fixture().await;
    let token = f.token("ana-long-lived");
    f.fault(json!({ "route": "/debug_token", "kind": "server_error", "times": 2 }))
        .await;
    let (data, _) = f.client.debug_token(&token, &f.app).await.unwrap();
    assert!(data.is_valid, "two 503s, then success");
    f.fault(json!({ "route": "/debug_token", "kind": "server_error", "times": 10 }))
        .await;
    let err = f.client.debug_token(&token, &f.app).await.unwrap_err();
    assert_eq!(err.class(), Classification::Transient);
    assert!(!err.to_string().contains(token.expose_secret()));
}

#[tokio::test]
async fn bad_answers_are_transient_errors_without_secrets() {
    let f = fixture_with(
        |_| {},
        |c| {
            c.timeout = Duration::from_millis(400);
            c.retries = 0;
        },
    )
    .await;
    let token = f.token("ana-long-lived");
    for kind in [
        "malformed_body",
        "truncated_body",
        "drop_connection",
        "timeout",
    ] {
        f.fault(json!({ "route": "/debug_token", "kind": kind, "latency_ms": 1500, "times": 1 }))
            .await;
        let err = f.client.debug_token(&token, &f.app).await.unwrap_err();
        assert_eq!(err.class(), Classification::Transient, "{kind}: {err}");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(token.expose_secret()),
            "{kind} leaks the token: {text}"
        );
        assert!(
            !text.contains(f.app.secret.expose_secret()),
            "{kind} leaks the app secret"
        );
    }
    f.fault(json!({ "route": "/debug_token", "kind": "wrong_content_type", "times": 1 }))
        .await;
    assert!(
        f.client.debug_token(&token, &f.app).await.is_ok(),
        "a wrong content type with a JSON body is still read"
    );
    let dead = GraphClient::new(
        GraphConfig {
            base_url: "http://127.0.0.1:1".into(),
            retries: 0,
            ..GraphConfig::default()
        },
        Arc::new(f.clock.clone()),
    )
    .unwrap();
    let err = dead.debug_token(&token, &f.app).await.unwrap_err();
    assert!(matches!(err, MetaError::Network { .. }), "{err}");
    assert!(!format!("{err:?}").contains(token.expose_secret()));
}

#[tokio::test]
async fn timed_proof_is_accepted() {
    let f = fixture_with(
        |w| w.apps[0].require_app_secret = true,
        |c| c.timed_proof = true,
    )
    .await;
    let (data, _) = f
        .client
        .debug_token(&f.token("ana-long-lived"), &f.app)
        .await
        .unwrap();
    assert!(data.is_valid);
    let calls = f.sim.simulator().calls();
    assert!(
        calls
            .last()
            .unwrap()
            .params
            .contains(&"appsecret_time".to_owned())
    );
}

#[tokio::test]
async fn the_served_api_version_is_recorded() {
    let f = fixture().await;
    assert_eq!(f.client.last_api_version(), None);
    f.client
        .debug_token(&f.token("ana-long-lived"), &f.app)
        .await
        .unwrap();
    assert_eq!(f.client.last_api_version().as_deref(), Some("v26.0"));
}
