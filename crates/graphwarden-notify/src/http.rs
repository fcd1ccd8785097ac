//! What the HTTP receivers (webhook, Slack, Alertmanager) share: URL checks, sending one request
//! with a time-out, reading at most [`MAX_RESPONSE_BYTES`] of the answer, and turning the outcome
//! into a [`DeliveryError`] that holds no URL and no secret.
//!
//! What does not live here: the payloads, which are each receiver's own.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::Url;

use crate::config::ReceiverKind;
use crate::error::DeliveryError;

/// How much of a receiver's answer is read. Receivers answer `ok` or a short error; a receiver
/// that streams megabytes back must not make us hold them.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of an error answer is kept in the error's message.
const MAX_ERROR_BODY_CHARS: usize = 300;

/// A URL with its credentials, query and fragment removed, for `Debug` and logs: those are
/// where tokens hide. Slack's URLs are secret whole and never go through here.
pub(crate) fn redacted_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let extra = if u.query().is_some() { "?…" } else { "" };
            format!("{}://{host}{port}{}{extra}", u.scheme(), u.path())
        }
        Err(_) => "[not a URL]".to_owned(),
    }
}

/// Parses a receiver's URL, which must be `http` or `https` with a host. The message does not
/// repeat the URL, which may be secret.
pub(crate) fn parse_url(kind: ReceiverKind, url: &str) -> Result<Url, DeliveryError> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| DeliveryError::config(kind, format!("`url` is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(DeliveryError::config(
            kind,
            "`url` must be an http:// or https:// URL with a host",
        ));
    }
    Ok(parsed)
}

/// Sends `request` and reads the answer. `secrets` are strings that must not appear in an error
/// (a secret URL, header values), scrubbed from anything the transport or the receiver said.
pub(crate) async fn send(
    kind: ReceiverKind,
    request: reqwest::RequestBuilder,
    timeout: Duration,
    now: Timestamp,
    secrets: &[&str],
) -> Result<(), DeliveryError> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(kind, timeout, e, secrets))?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let body = read_bounded(response).await;
    if status.is_success() {
        // The receiver has taken the notification: a body cut short now changes nothing, and
        // calling it a failure would only make us send it twice.
        return Ok(());
    }
    let body = match body {
        Ok(b) => scrub(&one_line(&String::from_utf8_lossy(&b)), secrets),
        Err(_) => String::new(),
    };
    Err(DeliveryError::Status {
        kind,
        status: status.as_u16(),
        body,
        retry_after,
    })
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES.saturating_sub(buf.len());
        buf.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if buf.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(buf)
}

fn transport_error(
    kind: ReceiverKind,
    timeout: Duration,
    e: reqwest::Error,
    secrets: &[&str],
) -> DeliveryError {
    let e = e.without_url();
    if e.is_timeout() {
        return DeliveryError::Timeout { kind, timeout };
    }
    let detail = scrub(&error_chain(&e), secrets);
    if e.is_builder() {
        DeliveryError::Config { kind, detail }
    } else {
        DeliveryError::Network { kind, detail }
    }
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says
/// little; the cause ("Connection refused") is what a person needs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// Whitespace collapsed and cut to a length that fits in a log line.
fn one_line(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= MAX_ERROR_BODY_CHARS {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(MAX_ERROR_BODY_CHARS).collect();
    cut.push('…');
    cut
}

/// Replaces every secret (and, for URLs, the path that carries Slack's credential) with
/// `[redacted]`.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 {
            out = out.replace(secret, "[redacted]");
        }
        if let Ok(u) = Url::parse(secret)
            && u.path().len() > 1
        {
            out = out.replace(u.path(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_host_and_path_only() {
        assert_eq!(
            redacted_url("https://u:p@example.com:8443/hook?token=abc#x"),
            "https://example.com:8443/hook?…"
        );
        assert_eq!(redacted_url("http://am:9093"), "http://am:9093/");
        assert_eq!(redacted_url("not a url"), "[not a URL]");
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        assert!(parse_url(ReceiverKind::Webhook, "https://example.com/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com",
            "",
        ] {
            let err = parse_url(ReceiverKind::Webhook, bad).unwrap_err();
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Timestamp::from_second(1_445_412_480).unwrap(); // 2015-10-21T07:28:00Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn scrub_removes_secrets_and_secret_paths() {
        let url = "https://hooks.slack.com/services/T0/B0/XYZ";
        let text = format!("failed {url} and /services/T0/B0/XYZ");
        let out = scrub(&text, &[url]);
        assert!(!out.contains("XYZ"), "{out}");
    }

    #[test]
    fn long_bodies_are_cut_to_one_line() {
        let body = "a\n b ".repeat(1000);
        let line = one_line(&body);
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), MAX_ERROR_BODY_CHARS + 1);
    }
}
