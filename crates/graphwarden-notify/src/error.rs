//! The crate's one error type, [`DeliveryError`], and its split into *retry later* and *give up*,
//! which is what the daemon's retry loop acts on.
//!
//! Messages name the receiver's kind, never its URL, key, password or header values: Slack's
//! webhook URL is itself a credential, and any URL may carry a token in its query. Transport
//! errors are stripped of their URL (`reqwest::Error::without_url`) before they are kept.

use std::time::Duration;

use crate::config::ReceiverKind;

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver's configuration cannot work (a bad URL, key, address or time-out). Retrying
    /// will not help; fixing the config will.
    #[error("the {kind} receiver is misconfigured: {detail}")]
    Config { kind: ReceiverKind, detail: String },
    /// No answer: connection refused or reset, DNS, TLS handshake.
    #[error("the {kind} receiver could not be reached: {detail}")]
    Network { kind: ReceiverKind, detail: String },
    /// No complete answer within the configured time-out.
    #[error("the {kind} receiver did not answer within {}", friendly(*.timeout))]
    Timeout {
        kind: ReceiverKind,
        timeout: Duration,
    },
    /// An HTTP answer other than 2xx. `body` is the start of what the receiver said (Slack's
    /// `invalid_blocks`, say), bounded and on one line.
    #[error("the {kind} receiver answered HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status {
        kind: ReceiverKind,
        status: u16,
        body: String,
        /// The receiver's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The SMTP server refused the message, or the SMTP conversation failed. `permanent` is
    /// true for 5xx replies and for messages the client could not even send.
    #[error("the email receiver's SMTP server failed: {detail}")]
    Smtp { detail: String, permanent: bool },
    /// The HTTP client could not be built (TLS roots, say): nothing can be delivered.
    #[error("the HTTP client for receivers could not be built: {detail}")]
    Setup { detail: String },
    /// The notification could not be turned into what the receiver takes.
    #[error("the notification could not be encoded for the {kind} receiver: {detail}")]
    Encode { kind: ReceiverKind, detail: String },
}

impl DeliveryError {
    pub(crate) fn config(kind: ReceiverKind, detail: impl Into<String>) -> Self {
        Self::Config {
            kind,
            detail: detail.into(),
        }
    }

    /// Whether trying the same delivery again later may succeed: network trouble, time-outs,
    /// 408, 429 and 5xx answers, SMTP 4xx replies. Everything else (bad config, other 4xx, SMTP
    /// 5xx) needs a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => is_retryable_status(*status),
            Self::Smtp { permanent, .. } => !permanent,
            Self::Config { .. } | Self::Encode { .. } | Self::Setup { .. } => false,
        }
    }

    /// How long the receiver asked us to wait before the next try, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The receiver kind the error came from; `None` for [`DeliveryError::Setup`].
    pub fn kind(&self) -> Option<ReceiverKind> {
        match self {
            Self::Config { kind, .. }
            | Self::Network { kind, .. }
            | Self::Timeout { kind, .. }
            | Self::Status { kind, .. }
            | Self::Encode { kind, .. } => Some(*kind),
            Self::Smtp { .. } => Some(ReceiverKind::Email),
            Self::Setup { .. } => None,
        }
    }
}

/// `2s 500ms` rather than `PT2.5S`.
fn friendly(d: Duration) -> String {
    format!(
        "{:#}",
        jiff::SignedDuration::try_from(d).unwrap_or_default()
    )
}

/// 408 (the server gave up waiting for us), 429 (slow down) and every 5xx are worth another try;
/// other statuses say the request itself is wrong.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> DeliveryError {
        DeliveryError::Status {
            kind: ReceiverKind::Webhook,
            status: code,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn statuses_split_into_retryable_and_permanent() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [300, 301, 400, 401, 403, 404, 410, 413, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        assert!(!DeliveryError::config(ReceiverKind::Slack, "bad url").is_retryable());
        assert!(
            DeliveryError::Timeout {
                kind: ReceiverKind::Slack,
                timeout: Duration::from_secs(2)
            }
            .is_retryable()
        );
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            DeliveryError::Timeout {
                kind: ReceiverKind::Slack,
                timeout: Duration::from_millis(2500)
            }
            .to_string(),
            "the slack receiver did not answer within 2s 500ms"
        );
        assert_eq!(
            DeliveryError::Status {
                kind: ReceiverKind::Slack,
                status: 400,
                body: "invalid_blocks".into(),
                retry_after: None
            }
            .to_string(),
            "the slack receiver answered HTTP 400: invalid_blocks"
        );
        assert_eq!(
            status(503).to_string(),
            "the webhook receiver answered HTTP 503"
        );
    }
}
