//! The email receiver against a real SMTP server: Debian's `aiosmtpd`, run by Debian's
//! `/usr/bin/python3` (the package installs for that interpreter, not for a pyenv `python3`), with
//! its `Mailbox` handler writing each message into a Maildir. The received message is parsed with
//! Python's `email` package, the way a mail client would read it.

use std::path::{Path, PathBuf};

use graphwarden_notify::{
    Deliverer, Delivery, DeliveryError, EmailConfig, ReceiverConfig, SmtpTls,
};
use jiff::SignedDuration;
use serde_json::Value;

use crate::support::{
    Service, free_port, listening, notification, require, spawn, start, token_alert,
};

const PYTHON: &str = "/usr/bin/python3";

struct Sink {
    port: u16,
    maildir: PathBuf,
    _service: Service,
    _dir: tempfile::TempDir,
}

async fn start_sink() -> Sink {
    start_sink_with(&[]).await
}

/// The sink with extra `aiosmtpd` options (`-s SIZE`, say).
async fn start_sink_with(options: &[&str]) -> Sink {
    require(
        PYTHON,
        || {
            std::process::Command::new(PYTHON)
                .args(["-c", "import aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success())
        },
        "python3-aiosmtpd",
    );
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("maildir");
    let port = free_port();
    let mut command = tokio::process::Command::new(PYTHON);
    command.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
    command.args(options);
    command.args(["-c", "aiosmtpd.handlers.Mailbox"]);
    command.arg(&maildir);
    let mut service = spawn("aiosmtpd", command, dir.path().join("aiosmtpd.log"));
    service.wait_until(100, || listening(port)).await;
    Sink {
        port,
        maildir,
        _service: service,
        _dir: dir,
    }
}

impl Sink {
    fn messages(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.maildir.join("new")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The message as Python's `email` package reads it.
fn parse(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
with open(sys.argv[1], "rb") as f:
    m = email.message_from_binary_file(f, policy=email.policy.default)
print(json.dumps({
    "subject": str(m["subject"]),
    "from": str(m["from"]),
    "to": str(m["to"]),
    "date": str(m["date"]),
    "message_id": str(m["message-id"]),
    "auto_submitted": str(m["auto-submitted"]),
    "mail_from": str(m["x-mailfrom"]),
    "rcpt_to": str(m["x-rcptto"]),
    "content_type": m.get_content_type(),
    "parts": [p.get_content_type() for p in m.iter_parts()],
    "text": m.get_body(("plain",)).get_content(),
    "html": m.get_body(("html",)).get_content(),
}))
"#;
    let out = std::process::Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn receiver(port: u16, tls: SmtpTls) -> ReceiverConfig {
    ReceiverConfig::Email(EmailConfig {
        smtp_host: "127.0.0.1".to_owned(),
        smtp_port: Some(port),
        tls,
        username: None,
        password: None,
        from: "graphwarden <alerts@gw.example.com>".to_owned(),
        to: vec![
            "ops@example.com".to_owned(),
            "Ana Lyst <ana@example.com>".to_owned(),
        ],
        timeout: SignedDuration::from_secs(10),
    })
}

#[tokio::test]
async fn sends_a_multipart_message_people_can_read() {
    let sink = start_sink().await;
    let mut ana = token_alert("ana", start(), None);
    ana.annotations.insert(
        "description".to_owned(),
        "Password changed <b>& more</b>.\nSecond line.".to_owned(),
    );
    ana.generator_url = "https://gw.example.com/tokens/ana".to_owned();
    let n = notification(vec![
        ana,
        token_alert("ben", start(), None),
        token_alert("cy", start(), Some(start() + SignedDuration::from_mins(2))),
    ]);
    Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(sink.port, SmtpTls::None),
            &n,
            &Delivery::new("dlv_0042", start()),
        )
        .await
        .unwrap();

    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = parse(&messages[0]);
    assert_eq!(m["subject"], "[FIRING:2] token_dead (graphwarden)");
    assert_eq!(m["from"], "graphwarden <alerts@gw.example.com>");
    assert_eq!(m["to"], "ops@example.com, Ana Lyst <ana@example.com>");
    assert_eq!(m["mail_from"], "alerts@gw.example.com");
    assert_eq!(m["rcpt_to"], "ops@example.com, ana@example.com");
    assert_eq!(m["message_id"], "<dlv_0042.graphwarden@gw.example.com>");
    assert_eq!(m["date"], "Thu, 01 Jan 2026 00:00:00 +0000");
    assert_eq!(m["auto_submitted"], "auto-generated");
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["parts"], serde_json::json!(["text/plain", "text/html"]));

    let text = m["text"].as_str().unwrap();
    assert!(text.starts_with("[FIRING:2] token_dead\n"), "{text}");
    assert!(
        text.contains(
            "FIRING: Token ana is dead\n  Password changed <b>& more</b>.\n  Second line.\n  \
             Action: Ask the user to log in again.\n  Log in again: https://gw.example.com/relogin/ana\n"
        ),
        "{text}"
    );
    assert!(text.contains("Token: ana · App: 1234567890 · Business: 42 · Severity: critical"));
    assert!(text.contains("Details: https://gw.example.com/tokens/ana"));
    assert!(text.find("RESOLVED: Token cy is dead").unwrap() > text.find("Token ben").unwrap());

    let html = m["html"].as_str().unwrap();
    assert!(
        html.contains("<title>[FIRING:2] token_dead</title>"),
        "{html}"
    );
    assert!(
        html.contains("Password changed &lt;b&gt;&amp; more&lt;/b&gt;.<br>\nSecond line."),
        "{html}"
    );
    assert!(!html.contains("<b>&"), "{html}");
    assert!(
        html.contains("<a href=\"https://gw.example.com/relogin/ana\""),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://gw.example.com/tokens/ana\">Details</a>"),
        "{html}"
    );
    assert_eq!(html.matches("Log in again</a>").count(), 2, "{html}");
}

#[tokio::test]
async fn starttls_is_required_when_configured_and_nothing_goes_out_without_it() {
    let sink = start_sink().await;
    let n = notification(vec![token_alert("ana", start(), None)]);
    let err = Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(sink.port, SmtpTls::Starttls),
            &n,
            &Delivery::new("dlv", start()),
        )
        .await
        .unwrap_err();
    // The sink offers no STARTTLS: a downgrade must fail, and for good.
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        err.to_string().contains("STARTTLS is not supported"),
        "{err}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_message_the_server_refuses_for_good_is_a_permanent_error() {
    // A sink that takes at most 200 bytes answers the message with 552, a permanent refusal.
    let sink = start_sink_with(&["-s", "200"]).await;
    let n = notification(vec![token_alert("ana", start(), None)]);
    let err = Deliverer::new()
        .unwrap()
        .deliver(
            &receiver(sink.port, SmtpTls::None),
            &n,
            &Delivery::new("dlv", start()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeliveryError::Smtp {
                permanent: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("552"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retryable() {
    let n = notification(vec![token_alert("ana", start(), None)]);
    let mut r = receiver(free_port(), SmtpTls::None);
    if let ReceiverConfig::Email(c) = &mut r {
        c.username = Some("gw".to_owned());
        c.password = Some("s3cr3t-smtp-password".into());
    }
    let err = Deliverer::new()
        .unwrap()
        .deliver(&r, &n, &Delivery::new("dlv", start()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(
        err,
        DeliveryError::Smtp { .. } | DeliveryError::Timeout { .. }
    ));
    let text = format!("{err} {err:?} {r:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
}
