//! Meta's callbacks and the browser re-login, end to end: the simulator plays Meta and calls
//! the daemon the way Meta would.

use graphwarden_core::{AppId, TokenAlias, TokenKind, TokenStatus};
use graphwarden_server::ServerConfig;
use graphwarden_sim::world::ids;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{Daemon, spawn};

async fn status(d: &Daemon, alias: &str) -> TokenStatus {
    d.inventory
        .token(&TokenAlias::parse(alias).unwrap())
        .await
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_deauthorize_callback_kills_the_users_tokens_and_their_pages_at_once() {
    let d = spawn(ServerConfig::default()).await;
    d.inventory
        .add_token(
            graphwarden_store::NewToken {
                alias: TokenAlias::parse("page").unwrap(),
                kind: TokenKind::Page,
                app_id: AppId::parse(ids::APP).unwrap(),
                secret: SecretString::from(d.sim.simulator().token("acme-page").unwrap()),
                meta_user_id: None,
                page_id: None,
                business_id: None,
                parent: Some(TokenAlias::parse("ana").unwrap()),
                owner: String::new(),
                requested_by: String::new(),
                purpose: String::new(),
                scopes_needed: vec![],
                tags: vec![],
            },
            "test",
        )
        .await
        .unwrap();
    d.check().await;
    let answer = d
        .control(
            "/events/deauthorize",
            json!({ "user_id": ids::USER_ANA, "app_id": ids::APP, "wait": true }),
        )
        .await;
    assert_eq!(answer["callback"]["status"], 200, "{answer}");
    let body = match &answer["callback"]["body"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    let mut changed: Vec<&str> = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    changed.sort_unstable();
    assert_eq!(changed, ["ana", "page"]);
    assert_eq!(status(&d, "ana").await, TokenStatus::Deauthorized);
    assert_eq!(status(&d, "page").await, TokenStatus::Deauthorized);
    assert_eq!(
        status(&d, "bot").await,
        TokenStatus::Valid,
        "another user's token"
    );
    let events = d
        .inventory
        .token_events(&TokenAlias::parse("ana").unwrap())
        .await
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.actor, "meta:deauthorize");
    assert_eq!(last.detail["to"], "deauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_that_do_not_verify_are_refused_and_change_nothing() {
    let d = spawn(ServerConfig::default()).await;
    d.check().await;
    let before = d.inventory.recent_events(1000).await.unwrap().len();
    let secret = d.sim.simulator().app_secret(ids::APP).unwrap();
    let payload = json!({ "algorithm": "HMAC-SHA256", "issued_at": 1, "user_id": ids::USER_ANA });
    let good = graphwarden_meta::sign_request(&payload, &secret);
    let (sig, body) = good.split_once('.').unwrap();
    let tampered_payload = graphwarden_meta::sign_request(
        &json!({ "algorithm": "HMAC-SHA256", "issued_at": 1, "user_id": ids::USER_BEN }),
        &secret,
    );
    // (app id in the URL, form fields, expected status)
    type Case<'a> = (String, Vec<(&'a str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            ids::APP.into(),
            vec![(
                "signed_request",
                graphwarden_meta::sign_request(&payload, "not-the-secret"),
            )],
            400,
        ),
        (
            ids::APP.into(),
            vec![(
                "signed_request",
                format!("{sig}.{}", tampered_payload.split_once('.').unwrap().1),
            )],
            400,
        ),
        (
            ids::APP.into(),
            vec![(
                "signed_request",
                graphwarden_meta::sign_request(
                    &json!({ "algorithm": "HMAC-SHA1", "user_id": "1" }),
                    &secret,
                ),
            )],
            400,
        ),
        (
            ids::APP.into(),
            vec![("signed_request", "%%%.***".into())],
            400,
        ),
        (
            ids::APP.into(),
            vec![("signed_request", format!("{sig}.{body}x"))],
            400,
        ),
        (
            ids::APP.into(),
            vec![("signed_request", "a".repeat(20_000))],
            400,
        ),
        (ids::APP.into(), vec![("something_else", good.clone())], 400),
        ("42".into(), vec![("signed_request", good.clone())], 404),
        (
            "not-an-app".into(),
            vec![("signed_request", good.clone())],
            400,
        ),
    ];
    for path in ["deauthorize", "data-deletion"] {
        for (app, form, code) in &cases {
            let r = d
                .http
                .post(format!("{}/meta/{path}/{app}", d.url))
                .form(form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), *code, "{path} {app} {:?}", form[0].0);
            let err: Value = r.json().await.unwrap();
            assert!(err["message"].as_str().is_some(), "{err}");
            assert!(!err.to_string().contains(&secret));
        }
        // Not a form at all.
        let r = d
            .http
            .post(format!("{}/meta/{path}/{}", d.url, ids::APP))
            .json(&json!({ "signed_request": good }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error());
    }
    assert_eq!(d.inventory.recent_events(1000).await.unwrap().len(), before);
    assert_eq!(status(&d, "ana").await, TokenStatus::Valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_deletion_requests_get_a_confirmation_code_and_a_status_page() {
    let d = spawn(ServerConfig::default()).await;
    d.check().await;
    let answer = d
        .control(
            "/events/data_deletion",
            json!({ "user_id": ids::USER_ANA, "app_id": ids::APP }),
        )
        .await;
    assert_eq!(answer["callback"]["status"], 200, "{answer}");
    let body = &answer["callback"]["body"];
    let code = body["confirmation_code"].as_str().unwrap();
    assert!(code.len() >= 12 && code.chars().all(|c| c.is_ascii_alphanumeric()));
    let url = body["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/meta/data-deletion/status/{code}")),
        "{url}"
    );
    let page: Value = d.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["confirmation_code"], code);
    assert_eq!(page["status"], "received");
    let r = d
        .http
        .get(format!("{}/meta/data-deletion/status/NOPE", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(status(&d, "ana").await, TokenStatus::Deauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_relogin_link_replaces_a_dead_token_through_the_browser_flow() {
    let d = spawn(ServerConfig::default()).await;
    d.check().await;
    d.control(
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    d.check().await;
    assert_eq!(status(&d, "ana").await, TokenStatus::PasswordChanged);
    let before = d
        .inventory
        .token(&TokenAlias::parse("ana").unwrap())
        .await
        .unwrap()
        .hint;

    let link: Value = d
        .request("post", "/api/v1/tokens/ana/relogin-link", Some("operator"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap().to_owned();

    // Tampered links are refused without going to Meta.
    for bad in [
        url.replace("alias=ana", "alias=bot"),
        format!("{url}0"),
        url.replace("sig=", "sig=00"),
    ] {
        let r = d.http.get(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
    }

    // The link sends the browser to Meta's dialog, which (as Ana) comes back with a code.
    let r = d.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let dialog = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        dialog.starts_with(d.sim.url()) && dialog.contains("/dialog/oauth"),
        "{dialog}"
    );
    let r = d.http.get(&dialog).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{}/oauth/callback?", d.url)),
        "{back}"
    );
    let r = d.http.get(&back).send().await.unwrap();
    let status_code = r.status();
    let html = r.text().await.unwrap();
    assert_eq!(status_code, 200, "{html}");
    assert!(html.contains("Connected again"), "{html}");
    let token = d
        .inventory
        .token(&TokenAlias::parse("ana").unwrap())
        .await
        .unwrap();
    assert_eq!(token.status, TokenStatus::Valid);
    assert_ne!(token.hint, before, "a new secret");

    // The same state works once.
    let r = d.http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // After its lifetime the link is refused.
    d.store
        .clock
        .advance(jiff::SignedDuration::from_hours(24 * 8));
    let r = d.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("expired"));
}
