//! The webhook receiver against a local HTTP server: what it sends, that a receiver can check the
//! signature, and how failures are classified.

use std::collections::BTreeMap;
use std::time::Duration;

use graphwarden_core::alert::Notification;
use graphwarden_notify::webhook::{DEFAULT_TOLERANCE, SignatureError, verify_standard_webhook};
use graphwarden_notify::{Deliverer, Delivery, DeliveryError, ReceiverConfig, WebhookConfig};
use jiff::SignedDuration;
use secrecy::SecretString;

use crate::support::{Recorder, Reply, free_port, notification, start, token_alert};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn receiver(url: String, timeout_ms: i64) -> ReceiverConfig {
    ReceiverConfig::Webhook(WebhookConfig {
        url,
        secret: Some(SecretString::from(SECRET)),
        headers: BTreeMap::from([(
            "Authorization".to_owned(),
            SecretString::from("Bearer s3cr3t-header-token"),
        )]),
        timeout: SignedDuration::from_millis(timeout_ms),
    })
}

fn sample() -> Notification {
    notification(vec![
        token_alert("ana", start(), None),
        token_alert("ben", start(), Some(start() + SignedDuration::from_mins(5))),
    ])
}

async fn deliver_to(reply: Reply, timeout_ms: i64) -> (Recorder, Result<(), DeliveryError>) {
    let server = Recorder::start(reply).await;
    let result = Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(format!("{}/hooks/graphwarden", server.base), timeout_ms),
            &sample(),
            &Delivery::new("dlv_01", start()),
        )
        .await;
    (server, result)
}

#[tokio::test]
async fn posts_the_notification_signed_so_the_receiver_can_verify_it() {
    let (server, result) = deliver_to(Reply::status(204, ""), 5_000).await;
    result.unwrap();
    let req = server.only_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hooks/graphwarden");
    assert_eq!(req.headers["content-type"], "application/json");
    assert_eq!(req.headers["authorization"], "Bearer s3cr3t-header-token");
    assert_eq!(req.headers["webhook-id"], "dlv_01");
    assert_eq!(
        req.headers["webhook-timestamp"],
        start().as_second().to_string().as_str()
    );
    assert!(
        req.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    let user_agent = req.headers["user-agent"].to_str().unwrap();
    assert!(user_agent.starts_with("graphwarden/"), "{user_agent}");

    // The body is Alertmanager's webhook payload, version 4, and reads back as ours.
    let body: Notification = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body, sample());
    let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(json["version"], "4");
    assert_eq!(json["status"], "firing");
    assert_eq!(json["alerts"][0]["labels"]["token"], "ana");
    assert_eq!(json["alerts"][1]["status"], "resolved");

    // A receiver with the same secret accepts it, on its own clock, within the tolerance.
    let secret = SecretString::from(SECRET);
    let later = start() + SignedDuration::from_secs(90);
    verify_standard_webhook(&secret, &req.headers, &req.body, later, DEFAULT_TOLERANCE).unwrap();

    // A changed body, a replay after the window, or another key is refused.
    let mut tampered = req.body.to_vec();
    let at = tampered.iter().position(|b| *b == b'a').unwrap();
    tampered[at] = b'b';
    assert_eq!(
        verify_standard_webhook(&secret, &req.headers, &tampered, later, DEFAULT_TOLERANCE),
        Err(SignatureError::NoMatch)
    );
    let replayed = start() + SignedDuration::from_mins(6);
    assert_eq!(
        verify_standard_webhook(
            &secret,
            &req.headers,
            &req.body,
            replayed,
            DEFAULT_TOLERANCE
        ),
        Err(SignatureError::OutsideTolerance)
    );
    let other = SecretString::from("whsec_b3RoZXIta2V5LW9mLWFub3RoZXItZW5kcG9pbnQ=");
    assert_eq!(
        verify_standard_webhook(&other, &req.headers, &req.body, later, DEFAULT_TOLERANCE),
        Err(SignatureError::NoMatch)
    );
}

#[tokio::test]
async fn a_retry_keeps_the_id_and_signs_its_own_timestamp() {
    let server = Recorder::start(Reply::status(200, "ok")).await;
    let r = receiver(server.base.clone(), 5_000);
    let deliverer = Deliverer::new().unwrap();
    let retry_at = start() + SignedDuration::from_mins(10);
    for now in [start(), retry_at] {
        deliverer
            .deliver(&r, &sample(), &Delivery::new("dlv_same", now))
            .await
            .unwrap();
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].headers["webhook-id"], reqs[1].headers["webhook-id"]);
    assert_ne!(
        reqs[0].headers["webhook-timestamp"],
        reqs[1].headers["webhook-timestamp"]
    );
    let secret = SecretString::from(SECRET);
    verify_standard_webhook(
        &secret,
        &reqs[1].headers,
        &reqs[1].body,
        retry_at,
        DEFAULT_TOLERANCE,
    )
    .unwrap();
}

#[tokio::test]
async fn without_a_secret_nothing_is_signed_but_the_id_is_sent() {
    let server = Recorder::start(Reply::status(200, "")).await;
    let r = ReceiverConfig::Webhook(WebhookConfig {
        url: server.base.clone(),
        secret: None,
        headers: BTreeMap::new(),
        timeout: SignedDuration::from_secs(5),
    });
    Deliverer::new()
        .unwrap()
        .deliver(&r, &sample(), &Delivery::new("dlv_02", start()))
        .await
        .unwrap();
    let req = server.only_request();
    assert_eq!(req.headers["webhook-id"], "dlv_02");
    assert!(req.headers.get("webhook-signature").is_none());
}

#[tokio::test]
async fn server_errors_are_retryable_and_client_errors_are_not() {
    let (_, result) = deliver_to(Reply::status(500, "database is down"), 5_000).await;
    let err = result.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(
        err.to_string(),
        "the webhook receiver answered HTTP 500: database is down"
    );

    let (_, result) = deliver_to(Reply::status(400, "{\"error\":\"bad payload\"}"), 5_000).await;
    let err = result.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(matches!(err, DeliveryError::Status { status: 400, .. }));

    let mut slow_down = Reply::status(429, "");
    slow_down.headers.push(("retry-after", "7".to_owned()));
    let (_, result) = deliver_to(slow_down, 5_000).await;
    let err = result.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    // A redirect is not followed (the POST and its signature would not survive it): the URL
    // needs fixing.
    let mut moved = Reply::status(301, "");
    moved
        .headers
        .push(("location", "http://127.0.0.1:1/elsewhere".to_owned()));
    let (server, result) = deliver_to(moved, 5_000).await;
    let err = result.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retryable() {
    let err = Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(
                format!("http://127.0.0.1:{}/hook?token=s3cr3t-query", free_port()),
                5_000,
            ),
            &sample(),
            &Delivery::new("dlv_01", start()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Network { .. }), "{err:?}");
    assert!(err.is_retryable());
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_a_retryable_timeout() {
    let mut slow = Reply::status(200, "ok");
    slow.delay = Duration::from_secs(5);
    let (_, result) = deliver_to(slow, 300).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DeliveryError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the webhook receiver did not answer within 300ms"
    );
}

#[tokio::test]
async fn a_huge_error_answer_is_read_only_in_part() {
    let (_, result) = deliver_to(Reply::status(502, &"x".repeat(4 << 20)), 10_000).await;
    let err = result.unwrap_err();
    let DeliveryError::Status { status, body, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 502);
    assert!(body.chars().count() <= 301, "{}", body.len());
}

#[tokio::test]
async fn bad_config_is_a_permanent_error_before_anything_is_sent() {
    let server = Recorder::start(Reply::status(200, "")).await;
    let mut bad_secret = receiver(server.base.clone(), 5_000);
    if let ReceiverConfig::Webhook(c) = &mut bad_secret {
        c.secret = Some(SecretString::from("whsec_not base64!"));
    }
    let mut bad_header = receiver(server.base.clone(), 5_000);
    if let ReceiverConfig::Webhook(c) = &mut bad_header {
        c.headers
            .insert("bad header".to_owned(), SecretString::from("x"));
    }
    let bad_url = receiver("ftp://example.com/".to_owned(), 5_000);
    for r in [bad_secret, bad_header, bad_url] {
        assert!(r.validate().is_err());
        let err = Deliverer::new()
            .unwrap()
            .deliver(&r, &sample(), &Delivery::new("dlv", start()))
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Config { .. }), "{err:?}");
        assert!(!err.is_retryable());
    }
    assert!(server.requests().is_empty());
}
