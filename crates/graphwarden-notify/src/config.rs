//! Receiver configuration: what a person writes under a receiver in `graphwarden.toml`, one
//! variant per kind, told apart by `type`.
//!
//! What lives here: the serde shapes, their defaults, their validation ([`ReceiverConfig::validate`],
//! so the daemon can refuse a bad config at start instead of at the first alert), and `Debug`
//! impls that never print a secret. Secrets (signing keys, passwords, header values, Slack's
//! webhook URL, which is itself the credential) are [`SecretString`]s. What does not live here:
//! routing (which alerts go to which receiver) and the receiver's name, both the engine's.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use jiff::SignedDuration;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::DeliveryError;

/// How long one delivery may take, end to end, when the config does not say.
pub const DEFAULT_TIMEOUT: SignedDuration = SignedDuration::from_secs(10);

fn default_timeout() -> SignedDuration {
    DEFAULT_TIMEOUT
}

/// One receiver: where a notification goes and how.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReceiverConfig {
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    Email(EmailConfig),
    Alertmanager(AlertmanagerConfig),
}

/// The kinds of receiver, for messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiverKind {
    Webhook,
    Slack,
    Email,
    Alertmanager,
}

impl ReceiverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::Email => "email",
            Self::Alertmanager => "alertmanager",
        }
    }
}

impl fmt::Display for ReceiverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ReceiverConfig {
    pub fn kind(&self) -> ReceiverKind {
        match self {
            Self::Webhook(_) => ReceiverKind::Webhook,
            Self::Slack(_) => ReceiverKind::Slack,
            Self::Email(_) => ReceiverKind::Email,
            Self::Alertmanager(_) => ReceiverKind::Alertmanager,
        }
    }

    /// Checks everything that can be checked without sending: URLs, the signing key, header
    /// names and values, addresses, the time-out. A delivery runs the same checks, so a config
    /// that passes here fails later only for reasons outside it.
    pub fn validate(&self) -> Result<(), DeliveryError> {
        match self {
            Self::Webhook(c) => crate::webhook::Prepared::new(c).map(drop),
            Self::Slack(c) => crate::slack::endpoint(c).map(drop),
            Self::Email(c) => crate::email::Prepared::new(c).map(drop),
            Self::Alertmanager(c) => crate::alertmanager::endpoint(c).map(drop),
        }
    }
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook(c) => c.fmt(f),
            Self::Slack(c) => c.fmt(f),
            Self::Email(c) => c.fmt(f),
            Self::Alertmanager(c) => c.fmt(f),
        }
    }
}

/// A signed HTTP POST of the notification's JSON (Alertmanager's webhook shape, version 4).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The Standard Webhooks signing secret: `whsec_` followed by the key in base64, or any
    /// other string, whose bytes are then the key. No signature headers are sent without one.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Extra request headers (an `Authorization` the receiver wants, say). Their values are
    /// treated as secrets.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    #[serde(default = "default_timeout")]
    pub timeout: SignedDuration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &crate::http::redacted_url(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| Redacted))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A Slack incoming webhook.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// `https://hooks.slack.com/services/…`: whoever has it can post to the channel, so it is a
    /// secret and is never printed.
    pub url: SecretString,
    /// `#channel` or `@user`, for legacy webhooks that may post elsewhere than their default.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: SignedDuration,
}

impl fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackConfig")
            .field("url", &Redacted)
            .field("channel", &self.channel)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
    /// No encryption at all: only for a relay on the same host or a test sink (port 25).
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// Email over SMTP: one multipart (text and HTML) message to every address in `to`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub smtp_host: String,
    /// Defaults to the usual port for `tls`: 587, 465 or 25.
    #[serde(default)]
    pub smtp_port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// Log in with `username` and `password` when set; send anonymously when not.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// `graphwarden <alerts@example.com>` or a bare address.
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout: SignedDuration,
}

impl EmailConfig {
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or_else(|| self.tls.default_port())
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| Redacted))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A Prometheus Alertmanager, fed through its API (`POST /api/v2/alerts`), so its routing,
/// silences and inhibitions apply to graphwarden's alerts too.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL, `http://alertmanager:9093`; `/api/v2/alerts` is appended.
    pub url: String,
    #[serde(default = "default_timeout")]
    pub timeout: SignedDuration,
}

impl fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerConfig")
            .field("url", &crate::http::redacted_url(&self.url))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Prints in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A configured time-out as the standard library's, refusing zero and negative ones, which
/// would fail every delivery.
pub(crate) fn std_timeout(
    kind: ReceiverKind,
    timeout: SignedDuration,
) -> Result<Duration, DeliveryError> {
    match Duration::try_from(timeout) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(DeliveryError::config(
            kind,
            format!("`timeout` must be positive, not {timeout:#}"),
        )),
    }
}

/// The secret's text, for the modules that must hand it to a transport.
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<ReceiverConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn each_kind_parses_from_toml_with_defaults() {
        let w = parse(
            r##"type = "webhook"
               url = "https://example.com/hook"
               secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
               headers = { Authorization = "Bearer abc" }"##,
        )
        .unwrap();
        let ReceiverConfig::Webhook(w) = w else {
            panic!("not a webhook")
        };
        assert_eq!(w.timeout, DEFAULT_TIMEOUT);
        assert_eq!(w.headers.len(), 1);

        let s = parse(
            r##"type = "slack"
               url = "https://hooks.slack.com/services/T0/B0/XXXX"
               timeout = "3s""##,
        )
        .unwrap();
        assert_eq!(s.kind(), ReceiverKind::Slack);
        let ReceiverConfig::Slack(s) = s else {
            panic!("not slack")
        };
        assert_eq!(s.timeout, SignedDuration::from_secs(3));

        let e = parse(
            r##"type = "email"
               smtp_host = "smtp.example.com"
               tls = "tls"
               from = "graphwarden <gw@example.com>"
               to = ["ops@example.com"]"##,
        )
        .unwrap();
        let ReceiverConfig::Email(e) = e else {
            panic!("not email")
        };
        assert_eq!(e.port(), 465);
        assert!(e.username.is_none());

        let a = parse(
            r##"type = "alertmanager"
               url = "http://127.0.0.1:9093""##,
        )
        .unwrap();
        assert_eq!(a.kind(), ReceiverKind::Alertmanager);
        a.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let err = parse(
            r##"type = "slack"
               url = "https://hooks.slack.com/services/T0/B0/XXXX"
               chanel = "#ops""##,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("chanel"), "{err}");
        assert!(parse(r##"type = "pager""##).is_err());
        assert!(
            parse(
                r##"type = "email"
                   smtp_host = "h"
                   tls = "ssl"
                   from = "a@b.c"
                   to = []"##
            )
            .is_err()
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let configs = [
            parse(
                r##"type = "webhook"
                   url = "https://user:hunter2@example.com/hook?token=s3cr3t-query"
                   secret = "whsec_c2lnbmluZy1rZXktc2VjcmV0"
                   headers = { Authorization = "Bearer s3cr3t-header" }"##,
            )
            .unwrap(),
            parse(
                r##"type = "slack"
                   url = "https://hooks.slack.com/services/T0/B0/s3cr3t-slack-path"
                   channel = "#ops""##,
            )
            .unwrap(),
            parse(
                r##"type = "email"
                   smtp_host = "smtp.example.com"
                   username = "gw"
                   password = "s3cr3t-password"
                   from = "gw@example.com"
                   to = ["ops@example.com"]"##,
            )
            .unwrap(),
            parse(
                r##"type = "alertmanager"
                   url = "https://am:hunter2@am.example.com/?key=s3cr3t-am""##,
            )
            .unwrap(),
        ];
        for c in &configs {
            let printed = format!("{c:?} {c:#?}");
            for secret in ["hunter2", "s3cr3t", "c2lnbmluZy1rZXktc2VjcmV0", "whsec_"] {
                assert!(!printed.contains(secret), "{secret} shown in {printed}");
            }
        }
        let printed = format!("{:?}", configs[0]);
        assert!(printed.contains("example.com/hook"), "{printed}");
        assert!(printed.contains("Authorization"), "{printed}");
        assert!(format!("{:?}", configs[1]).contains("#ops"));
        assert!(format!("{:?}", configs[2]).contains("smtp.example.com"));
    }

    #[test]
    fn timeouts_must_be_positive() {
        assert!(std_timeout(ReceiverKind::Webhook, SignedDuration::ZERO).is_err());
        assert!(std_timeout(ReceiverKind::Webhook, SignedDuration::from_secs(-1)).is_err());
        assert_eq!(
            std_timeout(ReceiverKind::Webhook, SignedDuration::from_millis(1500)).unwrap(),
            Duration::from_millis(1500)
        );
    }
}
