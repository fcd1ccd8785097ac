//! Words every human-facing receiver (Slack, email) shows the same way: the title line, the order
//! of alerts, an alert's headline, the labels that say which token and app it is about, and which
//! links are safe to make clickable.
//!
//! What does not live here: markup. Each receiver escapes for its own format.

use graphwarden_core::alert::{AlertStatus, Notification, NotifiedAlert, label};

/// `[FIRING:2] token_dead` or `[RESOLVED] token_dead`, after Alertmanager's default email
/// subject: status, count of firing alerts, then the values of the group's labels.
pub fn title(n: &Notification) -> String {
    let status = match n.status {
        AlertStatus::Firing => format!("FIRING:{}", n.firing().count()),
        AlertStatus::Resolved => "RESOLVED".to_owned(),
    };
    format!("[{status}] {}", group_name(n))
}

/// What the group is about: its grouping labels' values, else the alert name they share.
pub fn group_name(n: &Notification) -> String {
    let values: Vec<&str> = n
        .group_labels
        .values()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .collect();
    if !values.is_empty() {
        return values.join(" ");
    }
    match n.common_labels.get(label::ALERTNAME) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => "alerts".to_owned(),
    }
}

/// Firing alerts first (they need someone), then resolved ones, each in the engine's order.
pub fn ordered(n: &Notification) -> Vec<&NotifiedAlert> {
    n.firing().chain(n.resolved()).collect()
}

/// The alert's one-line headline: its `summary`, else its name and token.
pub fn headline(a: &NotifiedAlert) -> String {
    if let Some(s) = annotation(a, label::SUMMARY) {
        return s.to_owned();
    }
    let name = a
        .labels
        .get(label::ALERTNAME)
        .map_or("alert", String::as_str);
    match a.labels.get(label::TOKEN) {
        Some(token) => format!("{name} for token {token}"),
        None => name.to_owned(),
    }
}

/// A non-empty annotation.
pub fn annotation<'a>(a: &'a NotifiedAlert, name: &str) -> Option<&'a str> {
    a.annotations
        .get(name)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
}

/// The labels that say what an alert is about, with the words a person reads for them.
pub fn subject_labels(a: &NotifiedAlert) -> Vec<(&'static str, &str)> {
    [
        ("Token", label::TOKEN),
        ("App", label::APP_ID),
        ("Business", label::BUSINESS_ID),
        ("Ad account", label::AD_ACCOUNT_ID),
        ("Severity", label::SEVERITY),
    ]
    .into_iter()
    .filter_map(|(word, name)| {
        a.labels
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (word, v.as_str()))
    })
    .collect()
}

/// `url` when it is an absolute http(s) link: anything else (`javascript:`, relative paths) is
/// shown as text, never made clickable.
pub fn safe_link(url: &str) -> Option<&str> {
    let url = url.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(url)
}

/// At most `max` characters of `text`, ending in `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use graphwarden_core::alert::{Alert, Labels};
    use jiff::Timestamp;

    use super::*;

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    pub(crate) fn alert(token: &str, resolved: bool) -> NotifiedAlert {
        let at = Timestamp::from_second(1_767_225_600).unwrap();
        NotifiedAlert::from(&Alert {
            labels: labels(&[
                ("alertname", "token_dead"),
                ("severity", "critical"),
                ("token", token),
                ("app_id", "1234"),
            ]),
            annotations: labels(&[
                ("summary", &format!("Token {token} is dead")),
                ("description", "The user changed their password."),
                ("action", "Log in again."),
                ("relogin_url", "https://gw.example.com/relogin/ana"),
            ]),
            starts_at: at,
            ends_at: resolved.then_some(at),
        })
    }

    pub(crate) fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
        Notification::new(
            "ops",
            "{}:{alertname=\"token_dead\"}",
            labels(&[("alertname", "token_dead")]),
            alerts,
        )
    }

    #[test]
    fn titles_count_firing_alerts() {
        let n = notification(vec![
            alert("ana", false),
            alert("ben", true),
            alert("cy", false),
        ]);
        assert_eq!(title(&n), "[FIRING:2] token_dead");
        let n = notification(vec![alert("ben", true)]);
        assert_eq!(title(&n), "[RESOLVED] token_dead");
        let mut n = notification(vec![alert("ben", true)]);
        n.group_labels.clear();
        assert_eq!(group_name(&n), "token_dead");
    }

    #[test]
    fn firing_alerts_come_first() {
        let n = notification(vec![alert("ana", true), alert("ben", false)]);
        let order: Vec<_> = ordered(&n)
            .iter()
            .map(|a| a.labels["token"].clone())
            .collect();
        assert_eq!(order, ["ben", "ana"]);
    }

    #[test]
    fn headline_falls_back_to_name_and_token() {
        let mut a = alert("ana", false);
        assert_eq!(headline(&a), "Token ana is dead");
        a.annotations.remove("summary");
        assert_eq!(headline(&a), "token_dead for token ana");
    }

    #[test]
    fn only_http_links_are_clickable() {
        assert!(safe_link("https://gw.example.com/x").is_some());
        assert!(safe_link("HTTP://gw.example.com/x").is_some());
        assert!(safe_link("javascript:alert(1)").is_none());
        assert!(safe_link("/relogin/ana").is_none());
        assert!(safe_link("https://a.example.com/\" onmouseover=x").is_none());
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
    }
}
