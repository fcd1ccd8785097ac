//! The webhook receiver: the notification's JSON (Alertmanager's webhook payload, version 4),
//! POSTed and signed the [Standard Webhooks](https://www.standardwebhooks.com/) way, and the
//! functions a receiving service uses to check that signature.
//!
//! Every request carries three headers:
//!
//! - `webhook-id`: the delivery's id, the same on every retry of one delivery, so a receiver can
//!   drop duplicates;
//! - `webhook-timestamp`: when this attempt was sent, in Unix seconds;
//! - `webhook-signature`: `v1,` and the base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`,
//!   keyed with the secret (the bytes base64-encoded after `whsec_`, or the secret's own bytes
//!   when it has no such prefix). Sent only when a secret is configured.
//!
//! A receiver checks a request with [`verify_standard_webhook`]:
//!
//! ```
//! use graphwarden_notify::webhook::{DEFAULT_TOLERANCE, sign_standard_webhook, verify_standard_webhook};
//! use secrecy::SecretString;
//!
//! let secret = SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
//! let now = jiff::Timestamp::from_second(1_767_225_600)?;
//! let body = br#"{"version":"4"}"#;
//! // What graphwarden sends:
//! let mut headers = http::HeaderMap::new();
//! headers.insert("webhook-id", "msg_1".parse()?);
//! headers.insert("webhook-timestamp", now.as_second().to_string().parse()?);
//! headers.insert(
//!     "webhook-signature",
//!     sign_standard_webhook(&secret, "msg_1", now.as_second(), body)?.parse()?,
//! );
//! // What the receiver checks, with its own clock:
//! verify_standard_webhook(&secret, &headers, body, now, DEFAULT_TOLERANCE)?;
//! assert!(verify_standard_webhook(&secret, &headers, b"{}", now, DEFAULT_TOLERANCE).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What does not live here: retries (the daemon's) and the payload's shape (`graphwarden-core`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::{SignedDuration, Timestamp};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use sha2::Sha256;

use crate::Delivery;
use crate::config::{ReceiverKind, WebhookConfig, expose, std_timeout};
use crate::error::DeliveryError;
use graphwarden_core::alert::Notification;

pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// How far a signed request's timestamp may be from the receiver's clock, either way, before it
/// is refused as a replay (the Standard Webhooks recommendation).
pub const DEFAULT_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

/// The prefix of a Standard Webhooks secret whose key follows in base64.
const SECRET_PREFIX: &str = "whsec_";

const KIND: ReceiverKind = ReceiverKind::Webhook;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signing secret is empty or its `whsec_` part is not base64")]
    BadSecret,
    #[error("the `{0}` header is missing or not text")]
    MissingHeader(&'static str),
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the request was signed too long ago or too far ahead: outside the tolerance")]
    OutsideTolerance,
    #[error("no signature in `webhook-signature` matches the body")]
    NoMatch,
}

/// The HMAC key a secret stands for.
fn signing_key(secret: &SecretString) -> Result<SecretSlice<u8>, SignatureError> {
    let text = secret.expose_secret();
    let key = match text.strip_prefix(SECRET_PREFIX) {
        Some(b64) => STANDARD
            .decode(b64.trim())
            .map_err(|_| SignatureError::BadSecret)?,
        None => text.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    Ok(SecretSlice::from(key))
}

fn mac(
    key: &SecretSlice<u8>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Hmac<Sha256>, SignatureError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret())
        .map_err(|_| SignatureError::BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

fn sign_with_key(
    key: &SecretSlice<u8>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let tag = mac(key, id, timestamp, body)?.finalize().into_bytes();
    Ok(format!("v1,{}", STANDARD.encode(tag)))
}

/// The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256>`.
pub fn sign_standard_webhook(
    secret: &SecretString,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    sign_with_key(&signing_key(secret)?, id, timestamp, body)
}

/// Checks a Standard Webhooks request: its timestamp is within `tolerance` of `now`, and one of
/// the space-separated `v1,` signatures (several during a key rotation) matches the body. The
/// comparison is constant-time.
pub fn verify_standard_webhook(
    secret: &SecretString,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
    tolerance: SignedDuration,
) -> Result<(), SignatureError> {
    let key = signing_key(secret)?;
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(SignatureError::MissingHeader(name))
    };
    let id = header(WEBHOOK_ID)?;
    let timestamp: i64 = header(WEBHOOK_TIMESTAMP)?
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let signatures = header(WEBHOOK_SIGNATURE)?;
    let sent = Timestamp::from_second(timestamp).map_err(|_| SignatureError::BadTimestamp)?;
    if now.duration_since(sent).abs() > tolerance.abs() {
        return Err(SignatureError::OutsideTolerance);
    }
    let expected = mac(&key, id, timestamp, body)?;
    let matched = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| expected.clone().verify_slice(&tag).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// A webhook config checked and made ready to send.
pub(crate) struct Prepared {
    url: Url,
    key: Option<SecretSlice<u8>>,
    headers: HeaderMap,
    timeout: Duration,
}

impl Prepared {
    pub(crate) fn new(c: &WebhookConfig) -> Result<Self, DeliveryError> {
        let url = crate::http::parse_url(KIND, &c.url)?;
        let key = match &c.secret {
            Some(s) => Some(
                signing_key(s)
                    .map_err(|e| DeliveryError::config(KIND, format!("`secret`: {e}")))?,
            ),
            None => None,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &c.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                DeliveryError::config(KIND, format!("`headers`: `{name}` is not a header name"))
            })?;
            let mut value = HeaderValue::from_str(expose(value)).map_err(|_| {
                DeliveryError::config(
                    KIND,
                    format!("`headers`: the value of `{name}` is not a header value"),
                )
            })?;
            // Keeps the value out of `http`'s own Debug output too.
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(Self {
            url,
            key,
            headers,
            timeout: std_timeout(KIND, c.timeout)?,
        })
    }
}

pub(crate) async fn send(
    http: &reqwest::Client,
    c: &WebhookConfig,
    n: &Notification,
    delivery: &Delivery<'_>,
) -> Result<(), DeliveryError> {
    let p = Prepared::new(c)?;
    let body = serde_json::to_vec(n).map_err(|e| DeliveryError::Encode {
        kind: KIND,
        detail: e.to_string(),
    })?;
    let timestamp = delivery.now.as_second();
    // Configured headers first, ours after, so a config cannot spoof or drop the signature.
    let mut headers = p.headers.clone();
    let ours = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| DeliveryError::Encode {
            kind: KIND,
            detail: "the delivery id cannot be sent as a header".to_owned(),
        })
    };
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(WEBHOOK_ID, ours(delivery.id)?);
    headers.insert(WEBHOOK_TIMESTAMP, ours(&timestamp.to_string())?);
    if let Some(key) = &p.key {
        let signature = sign_with_key(key, delivery.id, timestamp, &body)
            .map_err(|e| DeliveryError::config(KIND, format!("`secret`: {e}")))?;
        headers.insert(WEBHOOK_SIGNATURE, ours(&signature)?);
    }
    // The URL may carry a token in its query; header values are credentials.
    let mut secrets: Vec<&str> = c.headers.values().map(expose).collect();
    secrets.push(&c.url);
    crate::http::send(
        KIND,
        http.post(p.url).headers(headers).body(body),
        p.timeout,
        delivery.now,
        &secrets,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(WEBHOOK_ID, id.parse().unwrap());
        h.insert(WEBHOOK_TIMESTAMP, ts.to_string().parse().unwrap());
        h.insert(WEBHOOK_SIGNATURE, sig.parse().unwrap());
        h
    }

    #[test]
    fn signs_like_the_specifications_reference_example() {
        let secret = SecretString::from(SPEC_SECRET);
        assert_eq!(
            sign_standard_webhook(&secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY).unwrap(),
            SPEC_SIGNATURE
        );
        let now = Timestamp::from_second(SPEC_TIMESTAMP + 10).unwrap();
        verify_standard_webhook(
            &secret,
            &headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE),
            SPEC_BODY,
            now,
            DEFAULT_TOLERANCE,
        )
        .unwrap();
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let secret = SecretString::from(SPEC_SECRET);
        let now = Timestamp::from_second(SPEC_TIMESTAMP).unwrap();
        let both = format!("v1,Zm9v {SPEC_SIGNATURE}");
        let h = headers(SPEC_ID, SPEC_TIMESTAMP, &both);
        verify_standard_webhook(&secret, &h, SPEC_BODY, now, DEFAULT_TOLERANCE).unwrap();
        let h = headers(SPEC_ID, SPEC_TIMESTAMP, "v1,Zm9v v2,abc");
        assert_eq!(
            verify_standard_webhook(&secret, &h, SPEC_BODY, now, DEFAULT_TOLERANCE),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn tampering_and_stale_or_future_timestamps_fail() {
        let secret = SecretString::from(SPEC_SECRET);
        let h = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE);
        let at = |offset: i64| Timestamp::from_second(SPEC_TIMESTAMP + offset).unwrap();
        assert_eq!(
            verify_standard_webhook(&secret, &h, br#"{"test": 1}"#, at(0), DEFAULT_TOLERANCE),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify_standard_webhook(&secret, &h, SPEC_BODY, at(301), DEFAULT_TOLERANCE),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify_standard_webhook(&secret, &h, SPEC_BODY, at(-301), DEFAULT_TOLERANCE),
            Err(SignatureError::OutsideTolerance)
        );
        // The timestamp is signed: moving it forward to pass the window breaks the signature.
        let moved = headers(SPEC_ID, SPEC_TIMESTAMP + 300, SPEC_SIGNATURE);
        assert_eq!(
            verify_standard_webhook(&secret, &moved, SPEC_BODY, at(301), DEFAULT_TOLERANCE),
            Err(SignatureError::NoMatch)
        );
        let wrong = SecretString::from("whsec_c29tZSBvdGhlciBrZXk=");
        assert_eq!(
            verify_standard_webhook(&wrong, &h, SPEC_BODY, at(0), DEFAULT_TOLERANCE),
            Err(SignatureError::NoMatch)
        );
        let mut missing = h.clone();
        missing.remove(WEBHOOK_ID);
        assert_eq!(
            verify_standard_webhook(&secret, &missing, SPEC_BODY, at(0), DEFAULT_TOLERANCE),
            Err(SignatureError::MissingHeader(WEBHOOK_ID))
        );
    }

    #[test]
    fn raw_secrets_are_keys_as_they_are() {
        let raw = SecretString::from("plain-shared-secret");
        let sig = sign_standard_webhook(&raw, "m", 1, b"x").unwrap();
        let expected = {
            let mut m = Hmac::<Sha256>::new_from_slice(b"plain-shared-secret").unwrap();
            m.update(b"m.1.x");
            format!("v1,{}", STANDARD.encode(m.finalize().into_bytes()))
        };
        assert_eq!(sig, expected);
        assert_eq!(
            sign_standard_webhook(&SecretString::from("whsec_***"), "m", 1, b"x"),
            Err(SignatureError::BadSecret)
        );
        assert_eq!(
            sign_standard_webhook(&SecretString::from(""), "m", 1, b"x"),
            Err(SignatureError::BadSecret)
        );
    }
}
