//! The Slack receiver against a local server answering as Slack's incoming webhooks do.

use std::time::Duration;

use graphwarden_notify::slack::MAX_BLOCKS;
use graphwarden_notify::{Deliverer, Delivery, DeliveryError, ReceiverConfig, SlackConfig};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde_json::Value;

use crate::support::{Recorder, Reply, free_port, notification, start, token_alert};

/// The part of a Slack webhook URL that is the credential.
const SECRET_PATH: &str = "/services/T000/B000/s3cr3tS1ackPath";

fn receiver(base: &str) -> ReceiverConfig {
    ReceiverConfig::Slack(SlackConfig {
        url: SecretString::from(format!("{base}{SECRET_PATH}")),
        channel: Some("#token-alerts".to_owned()),
        timeout: SignedDuration::from_secs(5),
    })
}

#[tokio::test]
async fn posts_readable_blocks_with_a_fallback_text() {
    let server = Recorder::start(Reply::status(200, "ok")).await;
    let n = notification(vec![
        token_alert("ana", start(), None),
        token_alert("ben", start(), None),
        token_alert("cy", start(), Some(start() + SignedDuration::from_mins(3))),
    ]);
    Deliverer::new()
        .unwrap()
        .deliver(&receiver(&server.base), &n, &Delivery::new("dlv", start()))
        .await
        .unwrap();
    let req = server.only_request();
    assert_eq!(req.path, SECRET_PATH);
    assert_eq!(req.headers["content-type"], "application/json");
    let m: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(m["channel"], "#token-alerts");
    assert_eq!(
        m["text"],
        "[FIRING:2] token_dead: Token ana is dead; Token ben is dead (and 1 resolved)"
    );
    let blocks = m["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1 + 3 * 2);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":red_circle: 2 firing, 1 resolved: token_dead"
    );
    let first = &blocks[1];
    assert_eq!(first["type"], "section");
    assert_eq!(
        first["text"]["text"],
        ":red_circle: *Token ana is dead*\n\
         Meta invalidated the token: the user changed their password (code 190/460).\n\
         *Action:* Ask the user to log in again."
    );
    assert_eq!(first["accessory"]["type"], "button");
    assert_eq!(
        first["accessory"]["url"],
        "https://gw.example.com/relogin/ana"
    );
    let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.starts_with("Token *ana* · App *1234567890* · Business *42* · Severity *critical*"),
        "{context}"
    );
    // The resolved alert comes last, with no call to action.
    assert!(
        blocks[5]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: *Token cy is dead*")
    );
    assert!(blocks[5].get("accessory").is_none());
}

#[tokio::test]
async fn a_large_group_stays_within_slacks_block_limit() {
    let server = Recorder::start(Reply::status(200, "ok")).await;
    let alerts = (0..60)
        .map(|i| token_alert(&format!("t{i:02}"), start(), None))
        .collect();
    Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(&server.base),
            &notification(alerts),
            &Delivery::new("dlv", start()),
        )
        .await
        .unwrap();
    let m: Value = serde_json::from_slice(&server.only_request().body).unwrap();
    let blocks = m["blocks"].as_array().unwrap();
    assert!(blocks.len() <= MAX_BLOCKS);
    assert_eq!(
        blocks.last().unwrap()["elements"][0]["text"],
        "… and 36 more"
    );
}

#[tokio::test]
async fn slack_errors_are_classified_and_never_show_the_url() {
    let server = Recorder::start(Reply::status(400, "invalid_blocks")).await;
    let n = notification(vec![token_alert("ana", start(), None)]);
    let deliverer = Deliverer::new().unwrap();
    let err = deliverer
        .deliver(&receiver(&server.base), &n, &Delivery::new("dlv", start()))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the slack receiver answered HTTP 400: invalid_blocks"
    );

    let mut limited = Reply::status(429, "rate_limited");
    limited.headers.push(("retry-after", "30".to_owned()));
    let server = Recorder::start(limited).await;
    let err = deliverer
        .deliver(&receiver(&server.base), &n, &Delivery::new("dlv", start()))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));

    // A receiver echoing the URL back, and a dead port: the secret path shows nowhere.
    let server = Recorder::start(Reply::status(
        404,
        &format!("no_service for https://hooks.slack.com{SECRET_PATH}"),
    ))
    .await;
    let echoed = deliverer
        .deliver(&receiver(&server.base), &n, &Delivery::new("dlv", start()))
        .await
        .unwrap_err();
    let dead = deliverer
        .deliver(
            &receiver(&format!("http://127.0.0.1:{}", free_port())),
            &n,
            &Delivery::new("dlv", start()),
        )
        .await
        .unwrap_err();
    assert!(matches!(dead, DeliveryError::Network { .. }));
    assert!(dead.is_retryable());
    for err in [echoed, dead] {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    let printed = format!("{:?}", receiver("https://hooks.slack.com"));
    assert!(!printed.contains("s3cr3t"), "{printed}");
}
