//! The Slack receiver: an incoming webhook, with a Block Kit message a person can read on a phone
//! — a header with the count, one section per alert (headline in bold, description, the action to
//! take and a *Log in again* button when there is a re-login link), the token and app under it —
//! and a plain `text` for notifications and clients that do not show blocks.
//!
//! Slack's limits are kept here, not discovered through `invalid_blocks`: at most
//! [`MAX_BLOCKS`] blocks (alerts past that become one "… and N more" line), section and context
//! text at most [`MAX_TEXT`] characters, a header at most 150.
//!
//! The webhook URL is the credential: it is a secret, never printed, and scrubbed from errors.
//! What does not live here: retries, and Slack's API proper (`chat.postMessage` and its token).

use std::time::Duration;

use graphwarden_core::alert::{AlertStatus, Notification, NotifiedAlert, label};
use reqwest::Url;
use serde_json::{Value, json};

use crate::Delivery;
use crate::config::{ReceiverKind, SlackConfig, expose, std_timeout};
use crate::error::DeliveryError;
use crate::render;

/// Slack refuses messages with more blocks than this.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on a section's or a context element's text.
pub const MAX_TEXT: usize = 3000;
const MAX_HEADER: usize = 150;
/// A button's URL may not be longer.
const MAX_BUTTON_URL: usize = 3000;
/// The `text` fallback is kept short: it is what a phone's notification shows.
const MAX_FALLBACK: usize = 500;
/// Each alert takes a section and a context block; one block is the header and one is kept for
/// the "… and N more" line.
const MAX_ALERTS_SHOWN: usize = (MAX_BLOCKS - 2) / 2;

const KIND: ReceiverKind = ReceiverKind::Slack;

pub(crate) fn endpoint(c: &SlackConfig) -> Result<(Url, Duration), DeliveryError> {
    Ok((
        crate::http::parse_url(KIND, expose(&c.url))?,
        std_timeout(KIND, c.timeout)?,
    ))
}

pub(crate) async fn send(
    http: &reqwest::Client,
    c: &SlackConfig,
    n: &Notification,
    delivery: &Delivery<'_>,
) -> Result<(), DeliveryError> {
    let (url, timeout) = endpoint(c)?;
    let payload = message(n, c.channel.as_deref());
    crate::http::send(
        KIND,
        http.post(url).json(&payload),
        timeout,
        delivery.now,
        &[expose(&c.url)],
    )
    .await
}

/// The message Slack is sent for `n`.
pub fn message(n: &Notification, channel: Option<&str>) -> Value {
    let alerts = render::ordered(n);
    let mut blocks = Vec::with_capacity(MAX_BLOCKS);
    blocks.push(json!({
        "type": "header",
        "text": { "type": "plain_text", "text": header(n), "emoji": true },
    }));
    for (i, a) in alerts.iter().take(MAX_ALERTS_SHOWN).enumerate() {
        blocks.push(section(i, a));
        blocks.push(context(a));
    }
    let more = alerts.len().saturating_sub(MAX_ALERTS_SHOWN) as u64 + n.truncated_alerts;
    if more > 0 {
        blocks.push(json!({
            "type": "context",
            "elements": [{ "type": "mrkdwn", "text": format!("… and {more} more") }],
        }));
    }
    let mut out = json!({ "text": fallback(n, &alerts), "blocks": blocks });
    if let Some(channel) = channel.filter(|c| !c.is_empty()) {
        out["channel"] = json!(channel);
    }
    out
}

/// `:red_circle: 3 firing: token_dead` or `:white_check_mark: resolved: token_dead`.
fn header(n: &Notification) -> String {
    let firing = n.firing().count();
    let resolved = n.resolved().count();
    let head = match n.status {
        AlertStatus::Firing if resolved > 0 => {
            format!(":red_circle: {firing} firing, {resolved} resolved")
        }
        AlertStatus::Firing => format!(":red_circle: {firing} firing"),
        AlertStatus::Resolved => ":white_check_mark: resolved".to_owned(),
    };
    render::truncate(&format!("{head}: {}", render::group_name(n)), MAX_HEADER)
}

fn section(i: usize, a: &NotifiedAlert) -> Value {
    let firing = a.status == AlertStatus::Firing;
    let icon = if firing {
        ":red_circle:"
    } else {
        ":white_check_mark:"
    };
    let mut text = format!("{icon} *{}*", escape(&render::headline(a)));
    if let Some(d) = render::annotation(a, label::DESCRIPTION) {
        text.push('\n');
        text.push_str(&escape(d));
    }
    // What to do matters only while the alert fires.
    let relogin = firing
        .then(|| render::annotation(a, label::RELOGIN_URL))
        .flatten()
        .and_then(render::safe_link);
    if firing && let Some(action) = render::annotation(a, label::ACTION) {
        text.push_str("\n*Action:* ");
        text.push_str(&escape(action));
    }
    let mut block = json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": cut(&text, MAX_TEXT) },
    });
    if let Some(url) = relogin
        && url.len() <= MAX_BUTTON_URL
    {
        block["accessory"] = json!({
            "type": "button",
            "text": { "type": "plain_text", "text": "Log in again", "emoji": true },
            "url": url,
            "action_id": format!("relogin-{i}"),
            "style": "primary",
        });
    }
    block
}

/// Token, app and the like, when the alert started or ended, and a link to the dashboard.
fn context(a: &NotifiedAlert) -> Value {
    let mut parts: Vec<String> = render::subject_labels(a)
        .into_iter()
        .map(|(word, value)| format!("{word} *{}*", escape(value)))
        .collect();
    let (verb, at) = match (a.status, a.ends_at) {
        (AlertStatus::Resolved, Some(end)) => ("Resolved", end),
        _ => ("Since", a.starts_at),
    };
    // Slack shows `<!date…>` in the reader's own time zone, and the fallback where it cannot.
    parts.push(format!(
        "{verb} <!date^{}^{{date_short_pretty}} {{time}}|{}>",
        at.as_second(),
        at
    ));
    if let Some(url) = render::safe_link(&a.generator_url) {
        parts.push(format!("<{}|Open in graphwarden>", escape(url)));
    }
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": cut(&parts.join(" · "), MAX_TEXT) }],
    })
}

/// The `text` Slack shows in notifications: the title and the headlines of the alerts the
/// status is about (the firing ones while any fires).
fn fallback(n: &Notification, alerts: &[&NotifiedAlert]) -> String {
    let headlines: Vec<String> = alerts
        .iter()
        .filter(|a| a.status == n.status)
        .map(|a| render::headline(a))
        .collect();
    let mut text = format!("{}: {}", render::title(n), headlines.join("; "));
    let resolved = n.resolved().count();
    if n.status == AlertStatus::Firing && resolved > 0 {
        text.push_str(&format!(" (and {resolved} resolved)"));
    }
    escape(&render::truncate(&text, MAX_FALLBACK))
}

/// Slack's mrkdwn treats `&`, `<` and `>` as markup; everything else is shown as written.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts escaped text to `max` characters without leaving half an entity (`&am`) at the end.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::{alert, notification};

    fn texts(v: &Value) -> Vec<String> {
        v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                b.get("text")
                    .and_then(|t| t["text"].as_str())
                    .or_else(|| b["elements"][0]["text"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_firing_alert_reads_well() {
        let n = notification(vec![alert("ana", false)]);
        let m = message(&n, Some("#ops"));
        assert_eq!(m["channel"], "#ops");
        assert_eq!(m["blocks"][0]["type"], "header");
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            ":red_circle: 1 firing: token_dead"
        );
        let t = texts(&m);
        assert_eq!(
            t[1],
            ":red_circle: *Token ana is dead*\nThe user changed their password.\n*Action:* Log in again."
        );
        assert_eq!(
            m["blocks"][1]["accessory"]["url"],
            "https://gw.example.com/relogin/ana"
        );
        assert!(
            t[2].starts_with(
                "Token *ana* · App *1234* · Severity *critical* · Since <!date^1767225600^"
            ),
            "{}",
            t[2]
        );
        assert_eq!(m["text"], "[FIRING:1] token_dead: Token ana is dead");
    }

    #[test]
    fn resolved_alerts_have_no_action_or_button() {
        let n = notification(vec![alert("ana", true)]);
        let m = message(&n, None);
        assert!(m.get("channel").is_none());
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            ":white_check_mark: resolved: token_dead"
        );
        let t = texts(&m);
        assert!(t[1].starts_with(":white_check_mark: *Token ana is dead*"));
        assert!(!t[1].contains("Action"));
        assert!(m["blocks"][1].get("accessory").is_none());
        assert!(t[2].contains("Resolved <!date^"));
    }

    #[test]
    fn markup_in_annotations_is_escaped_and_unsafe_links_dropped() {
        let mut a = alert("<!channel>", false);
        a.annotations
            .insert("summary".into(), "x < y & <https://evil|click>".into());
        a.annotations
            .insert("relogin_url".into(), "javascript:alert(1)".into());
        let m = message(&notification(vec![a]), None);
        let t = texts(&m);
        assert!(
            t[1].contains("*x &lt; y &amp; &lt;https://evil|click&gt;*"),
            "{}",
            t[1]
        );
        assert!(t[2].contains("Token *&lt;!channel&gt;*"), "{}", t[2]);
        assert!(m["blocks"][1].get("accessory").is_none());
    }

    #[test]
    fn many_alerts_stay_within_slacks_limits() {
        let alerts: Vec<_> = (0..80)
            .map(|i| alert(&format!("t{i}"), i % 2 == 0))
            .collect();
        let mut n = notification(alerts);
        n.truncated_alerts = 5;
        let m = message(&n, None);
        let blocks = m["blocks"].as_array().unwrap();
        assert!(blocks.len() <= MAX_BLOCKS, "{}", blocks.len());
        assert_eq!(
            blocks.last().unwrap()["elements"][0]["text"],
            format!("… and {} more", 80 - MAX_ALERTS_SHOWN + 5)
        );
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            ":red_circle: 40 firing, 40 resolved: token_dead"
        );
        // Firing alerts are the ones shown first.
        assert!(texts(&m)[1].starts_with(":red_circle:"));
    }

    #[test]
    fn long_text_is_cut_to_slacks_limit() {
        let mut a = alert("ana", false);
        a.annotations.insert("description".into(), "&".repeat(5000));
        let m = message(&notification(vec![a]), None);
        let t = texts(&m);
        assert!(t[1].chars().count() <= MAX_TEXT);
        assert!(t[1].ends_with("&amp;…"), "{}", &t[1][t[1].len() - 20..]);
        assert!(m["text"].as_str().unwrap().chars().count() <= MAX_FALLBACK * 5);
    }

    #[test]
    fn cut_never_leaves_half_an_entity() {
        assert_eq!(cut("ab&amp;cd", 6), "ab…");
        assert_eq!(cut("ab&amp;cd", 9), "ab&amp;cd");
        assert_eq!(cut("ab&amp;cdef", 9), "ab&amp;c…");
    }
}
