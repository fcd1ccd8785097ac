//! `graphwarden-notify`: delivering one alert [`Notification`] to one receiver.
//!
//! What lives here: the receivers' configuration ([`ReceiverConfig`]: webhook, Slack, email,
//! Alertmanager), turning a notification into what each receiver takes (signed JSON, Slack
//! blocks, a multipart email, Alertmanager's postable alerts), sending it once with a time-out,
//! and saying whether a failure is worth retrying ([`DeliveryError::is_retryable`]). Also the
//! Standard Webhooks signature check a receiving service runs ([`webhook::verify_standard_webhook`]).
//!
//! What does not: deciding what to send and when (rules, grouping, repeat intervals, silences:
//! the alert engine), retrying and remembering what was delivered (the daemon and its store),
//! and reading the clock (time is passed in).
//!
//! ```no_run
//! # async fn run(receiver: graphwarden_notify::ReceiverConfig, n: graphwarden_core::alert::Notification, now: jiff::Timestamp) -> Result<(), Box<dyn std::error::Error>> {
//! use graphwarden_notify::{Deliverer, Delivery};
//!
//! let deliverer = Deliverer::new()?;
//! // The id is the same on every retry of this delivery, so receivers can drop duplicates.
//! match deliverer.deliver(&receiver, &n, &Delivery::new("dlv_01", now)).await {
//!     Ok(()) => {}
//!     Err(e) if e.is_retryable() => { /* try again later, after e.retry_after() if given */ }
//!     Err(e) => { /* a person must fix the receiver: record and show e */ }
//! }
//! # Ok(()) }
//! ```

pub mod alertmanager;
pub mod config;
pub mod email;
pub mod error;
mod http;
pub mod render;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use graphwarden_core::alert::Notification;
use jiff::{SignedDuration, Timestamp};

pub use config::{
    AlertmanagerConfig, EmailConfig, ReceiverConfig, ReceiverKind, SlackConfig, SmtpTls,
    WebhookConfig,
};
pub use error::DeliveryError;
pub use http::MAX_RESPONSE_BYTES;
pub use webhook::{SignatureError, verify_standard_webhook};

/// How long a firing alert stays firing at an Alertmanager without being sent again, unless the
/// caller says: three times Alertmanager's own default repeat interval (4 h).
pub const DEFAULT_RESEND_HORIZON: SignedDuration = SignedDuration::from_hours(12);

/// One attempt at one delivery: what the daemon knows that the receivers need.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The delivery's id, the same on every retry of it: the webhook's `webhook-id`, the
    /// email's `Message-ID`. Receivers use it to drop duplicates.
    pub id: &'a str,
    /// When this attempt is made: the webhook's signed timestamp, the email's `Date`, the base
    /// of Alertmanager's `endsAt`.
    pub now: Timestamp,
    /// For the Alertmanager receiver: how far past `now` a firing alert's `endsAt` is set. It
    /// must be longer than the time until graphwarden sends the group again (3 × the repeat
    /// interval is the convention); see [`alertmanager`].
    pub resend_horizon: SignedDuration,
}

impl<'a> Delivery<'a> {
    pub fn new(id: &'a str, now: Timestamp) -> Self {
        Self {
            id,
            now,
            resend_horizon: DEFAULT_RESEND_HORIZON,
        }
    }

    #[must_use]
    pub fn with_resend_horizon(mut self, horizon: SignedDuration) -> Self {
        self.resend_horizon = horizon;
        self
    }
}

/// Sends notifications. Cheap to clone; one per process is enough.
#[derive(Debug, Clone)]
pub struct Deliverer {
    http: reqwest::Client,
}

impl Deliverer {
    /// A deliverer with its own HTTP client: rustls, no redirects (a signed POST must not turn
    /// into a GET elsewhere; a 3xx is reported as a permanent error so the URL gets fixed), and
    /// a connect time-out below any sensible per-receiver one.
    pub fn new() -> Result<Self, DeliveryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("graphwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| DeliveryError::Setup {
                detail: http::error_chain(&e.without_url()),
            })?;
        Ok(Self { http })
    }

    /// A deliverer sharing an existing client (its redirect and proxy settings apply).
    pub fn with_client(http: reqwest::Client) -> Self {
        Self { http }
    }

    /// Delivers `n` to `receiver`, once. A failure says whether to retry
    /// ([`DeliveryError::is_retryable`]); the caller retries with backoff, reusing
    /// `delivery.id`, and records the outcome.
    pub async fn deliver(
        &self,
        receiver: &ReceiverConfig,
        n: &Notification,
        delivery: &Delivery<'_>,
    ) -> Result<(), DeliveryError> {
        let result = match receiver {
            ReceiverConfig::Webhook(c) => webhook::send(&self.http, c, n, delivery).await,
            ReceiverConfig::Slack(c) => slack::send(&self.http, c, n, delivery).await,
            ReceiverConfig::Email(c) => email::send(c, n, delivery).await,
            ReceiverConfig::Alertmanager(c) => alertmanager::send(&self.http, c, n, delivery).await,
        };
        if result.is_ok() {
            tracing::debug!(
                receiver = %receiver.kind(),
                group_key = %n.group_key,
                alerts = n.alerts.len(),
                delivery_id = delivery.id,
                "Delivered a notification to a `{}` receiver.",
                receiver.kind()
            );
        }
        result
    }
}
