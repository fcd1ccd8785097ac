//! Delivery to real receivers: local HTTP servers standing in for a webhook consumer and Slack,
//! Debian's `aiosmtpd` as an SMTP sink, and Debian's `prometheus-alertmanager`. The last two are
//! installed by `scripts/setup.sh`; a test that needs one and does not find it fails and says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alertmanager;
mod email;
mod slack;
mod support;
mod webhook;
