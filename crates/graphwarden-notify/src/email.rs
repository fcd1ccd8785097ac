//! The email receiver: one multipart message (plain text and HTML) over SMTP with `lettre`, to
//! every address in `to`, subject `[FIRING:2] token_dead (graphwarden)`.
//!
//! The message's `Date` is the delivery's `now` (time is an input), and its `Message-ID` is made
//! from the delivery id, so a retry after an unclear failure carries the same id and mail clients
//! can fold the duplicate. `Auto-Submitted: auto-generated` keeps vacation responders quiet.
//! Every annotation is HTML-escaped, and only http(s) links become clickable.
//!
//! TLS is rustls (ring, webpki roots), the tree's one TLS provider. What does not live here:
//! connection pooling (alerts are rare; one connection per notification is simpler and never
//! stale) and retries (the daemon's).

use graphwarden_core::escape_html;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use graphwarden_core::alert::{AlertStatus, Notification, NotifiedAlert, label};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::Delivery;
use crate::config::{EmailConfig, ReceiverKind, SmtpTls, expose, std_timeout};
use crate::error::DeliveryError;
use crate::http::error_chain;
use crate::render;

const KIND: ReceiverKind = ReceiverKind::Email;

/// An email config checked and made ready to send.
pub(crate) struct Prepared {
    from: Mailbox,
    to: Vec<Mailbox>,
    credentials: Option<Credentials>,
    timeout: Duration,
}

impl Prepared {
    pub(crate) fn new(c: &EmailConfig) -> Result<Self, DeliveryError> {
        if c.smtp_host.trim().is_empty() {
            return Err(DeliveryError::config(KIND, "`smtp_host` is empty"));
        }
        let from: Mailbox = c.from.parse().map_err(|e| {
            DeliveryError::config(KIND, format!("`from` is not an email address ({e})"))
        })?;
        if c.to.is_empty() {
            return Err(DeliveryError::config(KIND, "`to` names no address"));
        }
        let to =
            c.to.iter()
                .map(|t| {
                    t.parse::<Mailbox>().map_err(|e| {
                        DeliveryError::config(
                            KIND,
                            format!("`to`: `{t}` is not an email address ({e})"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        let credentials = match (&c.username, &c.password) {
            (Some(user), Some(password)) => {
                Some(Credentials::new(user.clone(), expose(password).to_owned()))
            }
            (Some(_), None) => {
                return Err(DeliveryError::config(
                    KIND,
                    "`username` is set but `password` is not",
                ));
            }
            (None, Some(_)) => {
                return Err(DeliveryError::config(
                    KIND,
                    "`password` is set but `username` is not",
                ));
            }
            (None, None) => None,
        };
        Ok(Self {
            from,
            to,
            credentials,
            timeout: std_timeout(KIND, c.timeout)?,
        })
    }
}

pub(crate) async fn send(
    c: &EmailConfig,
    n: &Notification,
    delivery: &Delivery<'_>,
) -> Result<(), DeliveryError> {
    let p = Prepared::new(c)?;
    let message = message(n, &p.from, &p.to, delivery)?;
    let builder = match c.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.smtp_host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.smtp_host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &c.smtp_host,
        )),
    }
    .map_err(|e| DeliveryError::config(KIND, format!("TLS set-up failed: {}", error_chain(&e))))?;
    let mut builder = builder.port(c.port()).timeout(Some(p.timeout));
    if let Some(credentials) = p.credentials {
        builder = builder.credentials(credentials);
    }
    let transport = builder.build();
    // lettre's time-out is per SMTP command; the configured one bounds the whole conversation.
    match tokio::time::timeout(p.timeout, transport.send(message)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(smtp_error(&e, p.timeout, c.password.as_ref().map(expose))),
        Err(_) => Err(DeliveryError::Timeout {
            kind: KIND,
            timeout: p.timeout,
        }),
    }
}

/// `password` is scrubbed from the server's words, should a server ever echo it.
fn smtp_error(
    e: &lettre::transport::smtp::Error,
    timeout: Duration,
    password: Option<&str>,
) -> DeliveryError {
    if e.is_timeout() {
        return DeliveryError::Timeout {
            kind: KIND,
            timeout,
        };
    }
    DeliveryError::Smtp {
        detail: crate::http::scrub(&error_chain(e), password.as_slice()),
        // 5xx replies (unknown mailbox, authentication refused) and messages lettre could not
        // even encode will fail the same way next time; 4xx replies, broken connections and TLS
        // trouble may not.
        permanent: e.is_permanent() || e.is_client(),
    }
}

/// The whole email for `n`.
pub fn message(
    n: &Notification,
    from: &Mailbox,
    to: &[Mailbox],
    delivery: &Delivery<'_>,
) -> Result<Message, DeliveryError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(n))
        .date(SystemTime::from(delivery.now))
        .message_id(Some(message_id(delivery.id, from)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".to_owned(),
        ));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(text(n), html(n)))
        .map_err(|e| DeliveryError::Encode {
            kind: KIND,
            detail: e.to_string(),
        })
}

/// `[FIRING:2] token_dead (graphwarden)`.
pub fn subject(n: &Notification) -> String {
    // A line break in a label value must not end the header early.
    let title = render::title(n).replace(['\r', '\n'], " ");
    format!("{title} (graphwarden)")
}

/// `<delivery-id@sender's domain>`, with anything a Message-ID may not hold replaced.
fn message_id(id: &str, from: &Mailbox) -> String {
    let local: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+=".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let local = if local.is_empty() {
        "graphwarden"
    } else {
        &local
    };
    format!("<{local}.graphwarden@{}>", from.email.domain())
}

fn status_word(a: &NotifiedAlert) -> &'static str {
    match a.status {
        AlertStatus::Firing => "FIRING",
        AlertStatus::Resolved => "RESOLVED",
    }
}

/// The time line under an alert: when it started, or when it ended.
fn when(a: &NotifiedAlert) -> String {
    match (a.status, a.ends_at) {
        (AlertStatus::Resolved, Some(end)) => {
            format!("Resolved {}", end.strftime("%Y-%m-%d %H:%M UTC"))
        }
        _ => format!("Since {}", a.starts_at.strftime("%Y-%m-%d %H:%M UTC")),
    }
}

fn labels_line(a: &NotifiedAlert) -> String {
    render::subject_labels(a)
        .into_iter()
        .map(|(word, value)| format!("{word}: {value}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The plain-text part.
pub fn text(n: &Notification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", render::title(n));
    for a in render::ordered(n) {
        let firing = a.status == AlertStatus::Firing;
        let _ = writeln!(out, "{}: {}", status_word(a), render::headline(a));
        if let Some(d) = render::annotation(a, label::DESCRIPTION) {
            for line in d.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if firing {
            if let Some(action) = render::annotation(a, label::ACTION) {
                let _ = writeln!(out, "  Action: {action}");
            }
            if let Some(url) = render::annotation(a, label::RELOGIN_URL) {
                let _ = writeln!(out, "  Log in again: {url}");
            }
        }
        let labels = labels_line(a);
        if !labels.is_empty() {
            let _ = writeln!(out, "  {labels}");
        }
        let _ = writeln!(out, "  {}", when(a));
        if !a.generator_url.is_empty() {
            let _ = writeln!(out, "  Details: {}", a.generator_url);
        }
        out.push('\n');
    }
    if n.truncated_alerts > 0 {
        let _ = writeln!(out, "… and {} more\n", n.truncated_alerts);
    }
    out.push_str("-- \nSent by graphwarden");
    if !n.external_url.is_empty() {
        let _ = write!(out, " ({})", n.external_url);
    }
    out.push('\n');
    out
}

/// The HTML part: inline styles only, since mail clients drop `<style>` and never load
/// anything from elsewhere.
pub fn html(n: &Notification) -> String {
    let title = escape_html(&render::title(n));
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1f2328\">\n\
         <h2 style=\"margin: 0 0 16px\">{title}</h2>\n"
    );
    for a in render::ordered(n) {
        let firing = a.status == AlertStatus::Firing;
        let colour = if firing { "#cf222e" } else { "#1a7f37" };
        let _ = write!(
            out,
            "<div style=\"border-left: 4px solid {colour}; padding: 4px 12px; margin: 0 0 16px\">\n\
             <p style=\"margin: 0 0 6px\"><span style=\"color: {colour}; font-weight: bold\">{}</span> \
             <strong>{}</strong></p>\n",
            status_word(a),
            escape_html(&render::headline(a)),
        );
        if let Some(d) = render::annotation(a, label::DESCRIPTION) {
            let _ = writeln!(
                out,
                "<p style=\"margin: 0 0 6px\">{}</p>",
                escape_html(d).replace('\n', "<br>\n")
            );
        }
        if firing {
            if let Some(action) = render::annotation(a, label::ACTION) {
                let _ = writeln!(
                    out,
                    "<p style=\"margin: 0 0 6px\"><strong>Action:</strong> {}</p>",
                    escape_html(action)
                );
            }
            if let Some(url) = render::annotation(a, label::RELOGIN_URL) {
                let _ = match render::safe_link(url) {
                    Some(link) => writeln!(
                        out,
                        "<p style=\"margin: 0 0 6px\"><a href=\"{}\" style=\"background: #1f6feb; color: #ffffff; \
                         padding: 6px 12px; border-radius: 6px; text-decoration: none\">Log in again</a></p>",
                        escape_html(link)
                    ),
                    None => writeln!(
                        out,
                        "<p style=\"margin: 0 0 6px\">Log in again: {}</p>",
                        escape_html(url)
                    ),
                };
            }
        }
        let mut meta = escape_html(&labels_line(a));
        if !meta.is_empty() {
            meta.push_str(" · ");
        }
        meta.push_str(&escape_html(&when(a)));
        if let Some(link) = render::safe_link(&a.generator_url) {
            let _ = write!(meta, " · <a href=\"{}\">Details</a>", escape_html(link));
        }
        let _ = writeln!(
            out,
            "<p style=\"margin: 0; color: #59636e; font-size: 90%\">{meta}</p>\n</div>"
        );
    }
    if n.truncated_alerts > 0 {
        let _ = writeln!(out, "<p>… and {} more</p>", n.truncated_alerts);
    }
    out.push_str("<p style=\"color: #59636e; font-size: 85%\">Sent by ");
    match render::safe_link(&n.external_url) {
        Some(link) => {
            let _ = write!(out, "<a href=\"{}\">graphwarden</a>", escape_html(link));
        }
        None => out.push_str("graphwarden"),
    }
    out.push_str("</p>\n</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::render::tests::{alert, notification};

    #[test]
    fn subject_counts_firing_alerts() {
        let n = notification(vec![
            alert("ana", false),
            alert("ben", false),
            alert("cy", true),
        ]);
        assert_eq!(subject(&n), "[FIRING:2] token_dead (graphwarden)");
        let n = notification(vec![alert("cy", true)]);
        assert_eq!(subject(&n), "[RESOLVED] token_dead (graphwarden)");
    }

    #[test]
    fn html_escapes_everything_it_is_given() {
        let mut a = alert("<b>ana</b>", false);
        a.annotations.insert(
            "description".into(),
            "<script>alert('x')</script> & \"quotes\"".into(),
        );
        a.annotations
            .insert("relogin_url".into(), "javascript:alert(1)".into());
        let html = html(&notification(vec![a]));
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"
            )
        );
        assert!(html.contains("Token: &lt;b&gt;ana&lt;/b&gt;"));
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(html.contains("Log in again: javascript:alert(1)"));
    }

    #[test]
    fn text_lists_firing_before_resolved_with_actions() {
        let n = notification(vec![alert("ben", true), alert("ana", false)]);
        let t = text(&n);
        let firing = t.find("FIRING: Token ana is dead").unwrap();
        let resolved = t.find("RESOLVED: Token ben is dead").unwrap();
        assert!(firing < resolved);
        assert!(t.contains(
            "  Action: Log in again.\n  Log in again: https://gw.example.com/relogin/ana\n"
        ));
        // A resolved alert asks nothing of anyone.
        assert_eq!(t.matches("Action:").count(), 1);
        assert!(t.contains("Resolved 2026-01-01 00:00 UTC"));
    }

    #[test]
    fn message_ids_are_stable_and_well_formed() {
        let from: Mailbox = "graphwarden <gw@example.com>".parse().unwrap();
        assert_eq!(
            message_id("dlv 1/<x>", &from),
            "<dlv-1--x-.graphwarden@example.com>"
        );
        let d = Delivery::new("dlv-1", Timestamp::from_second(1_767_225_600).unwrap());
        let to: Vec<Mailbox> = vec!["ops@example.com".parse().unwrap()];
        let n = notification(vec![alert("ana", false)]);
        let one = String::from_utf8(message(&n, &from, &to, &d).unwrap().formatted()).unwrap();
        let two = String::from_utf8(message(&n, &from, &to, &d).unwrap().formatted()).unwrap();
        assert!(
            one.contains("Message-ID: <dlv-1.graphwarden@example.com>"),
            "{one}"
        );
        assert!(
            one.contains("Date: Thu, 01 Jan 2026 00:00:00 +0000"),
            "{one}"
        );
        assert!(one.contains("Auto-Submitted: auto-generated"));
        // The MIME boundary is random; everything else repeats.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.contains("boundary") && !l.starts_with("--"))
                .count()
        };
        assert_eq!(strip(&one), strip(&two));
    }

    #[test]
    fn bad_addresses_and_half_credentials_are_config_errors() {
        let base = EmailConfig {
            smtp_host: "smtp.example.com".into(),
            smtp_port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: "gw@example.com".into(),
            to: vec!["ops@example.com".into()],
            timeout: crate::config::DEFAULT_TIMEOUT,
        };
        assert!(Prepared::new(&base).is_ok());
        for change in [
            (|c: &mut EmailConfig| c.from = "not an address".into()) as fn(&mut EmailConfig),
            |c| c.to = vec![],
            |c| c.to = vec!["ops@@example".into()],
            |c| c.username = Some("gw".into()),
            |c| c.password = Some("pw".into()),
            |c| c.smtp_host = " ".into(),
        ] {
            let mut c = base.clone();
            change(&mut c);
            let err = Prepared::new(&c).err().unwrap();
            assert!(!err.is_retryable(), "{err}");
        }
    }
}
