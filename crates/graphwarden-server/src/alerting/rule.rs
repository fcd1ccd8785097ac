//! The alert rules: which alerts should fire for a set of tokens at a given time. Pure: no
//! store, no clock, no links (the caller hands in a function that makes re-login links).
//!
//! Every alert carries `alertname`, `severity`, `token`, `app_id`, and `business_id` when the
//! token has one, and the annotations `summary`, `description` and `action`.

use graphwarden_core::TokenStatus;
use graphwarden_core::alert::inhibit::{
    DATA_ACCESS_LAPSING, RENEWAL_FAILED, TOKEN_DEAD, TOKEN_EXPIRING,
};
use graphwarden_core::alert::{Alert, Labels, label};
use graphwarden_store::{Expiry, Token};
use jiff::{SignedDuration, Timestamp};

/// `alertname` of the alert raised while inspection finds a token's app, user or kind differ
/// from what was recorded.
pub const TOKEN_FLAGGED: &str = "token_flagged";
/// Label saying which expiry warning an expiring token has crossed (`14d`, `1d`, …).
pub const WINDOW: &str = "window";

/// When the rules warn.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// Warn this long before a token expires, once per threshold crossed: each as its label
    /// (as written in the config) and its length.
    pub expiry_warnings: Vec<(String, SignedDuration)>,
    /// Warn this long before a token's 90-day data access lapses.
    pub data_access_warning: SignedDuration,
    /// The rules over the proxy's call records.
    pub traffic: super::traffic::TrafficRules,
    /// The rules over datasets' Event Match Quality.
    pub quality: super::traffic::QualityRules,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            expiry_warnings: [14, 7, 3, 1]
                .into_iter()
                .map(|d| (format!("{d}d"), SignedDuration::from_hours(24 * d)))
                .collect(),
            data_access_warning: SignedDuration::from_hours(24 * 14),
            traffic: super::traffic::TrafficRules::default(),
            quality: super::traffic::QualityRules::default(),
        }
    }
}

/// An expiry this close or closer is critical.
const CRITICAL_WITHIN: SignedDuration = SignedDuration::from_hours(24);

/// Statuses a person fixes by logging in again.
fn needs_login(status: TokenStatus) -> bool {
    matches!(
        status,
        TokenStatus::Expired
            | TokenStatus::PasswordChanged
            | TokenStatus::Deauthorized
            | TokenStatus::NeedsRelogin
            | TokenStatus::DataAccessExpired
    )
}

/// Every alert that should fire for `tokens` at `now`, each starting at `now` (the engine keeps
/// the start of one already firing). `relogin` makes a re-login link for a token, if it can.
pub fn evaluate(
    tokens: &[Token],
    now: Timestamp,
    config: &RuleConfig,
    relogin: &dyn Fn(&Token) -> Option<String>,
) -> Vec<Alert> {
    let mut out = Vec::new();
    for token in tokens {
        let alert = |name: &str, severity: &str, summary: String, description: String| {
            let mut labels = Labels::new();
            labels.insert(label::ALERTNAME.to_owned(), name.to_owned());
            labels.insert(label::SEVERITY.to_owned(), severity.to_owned());
            labels.insert(label::TOKEN.to_owned(), token.alias.to_string());
            labels.insert(label::APP_ID.to_owned(), token.app_id.to_string());
            if let Some(b) = &token.business_id {
                labels.insert(label::BUSINESS_ID.to_owned(), b.to_string());
            }
            let mut annotations = Labels::new();
            annotations.insert(label::SUMMARY.to_owned(), summary);
            annotations.insert(label::DESCRIPTION.to_owned(), description);
            annotations.insert(label::ACTION.to_owned(), token.status.action().to_owned());
            Alert {
                labels,
                annotations,
                starts_at: now,
                ends_at: None,
            }
        };
        let alias = &token.alias;
        let status = token.status;
        if !status.is_usable() {
            let cause = if token.status_cause.is_empty() {
                String::new()
            } else {
                format!(": {}", token.status_cause)
            };
            let mut a = alert(
                TOKEN_DEAD,
                "critical",
                format!("Token `{alias}` no longer works ({status})."),
                format!("Meta reports token `{alias}` as {status}{cause}."),
            );
            a.labels
                .insert(label::STATUS.to_owned(), status.as_str().to_owned());
            if needs_login(status)
                && let Some(url) = relogin(token)
            {
                a.annotations.insert(label::RELOGIN_URL.to_owned(), url);
            }
            out.push(a);
        } else if let Expiry::At(at) = token.expires {
            let left = at.duration_since(now);
            let window = config
                .expiry_warnings
                .iter()
                .filter(|(_, d)| left <= *d)
                .min_by_key(|(_, d)| *d);
            if let Some((name, d)) = window {
                let severity = if *d <= CRITICAL_WITHIN {
                    "critical"
                } else {
                    "warning"
                };
                let mut a = alert(
                    TOKEN_EXPIRING,
                    severity,
                    format!("Token `{alias}` expires within {name}."),
                    format!("Token `{alias}` expires at {at}."),
                );
                a.labels.insert(WINDOW.to_owned(), name.clone());
                a.annotations.insert(
                    label::ACTION.to_owned(),
                    TokenStatus::Expiring.action().to_owned(),
                );
                out.push(a);
            }
        }
        if token.renewal_failures > 0 || status == TokenStatus::NeedsAttention {
            let mut a = alert(
                RENEWAL_FAILED,
                "warning",
                format!("Renewing token `{alias}` fails."),
                format!(
                    "{} renewal attempt(s) of token `{alias}` failed in a row{}.",
                    token.renewal_failures,
                    if token.status_cause.is_empty() {
                        String::new()
                    } else {
                        format!("; last cause: {}", token.status_cause)
                    }
                ),
            );
            a.annotations.insert(
                label::ACTION.to_owned(),
                TokenStatus::NeedsAttention.action().to_owned(),
            );
            out.push(a);
        }
        if status.is_usable()
            && let Some(at) = token.data_access_expires_at
            && at.duration_since(now) <= config.data_access_warning
        {
            let mut a = alert(
                DATA_ACCESS_LAPSING,
                "warning",
                format!("Data access of token `{alias}` lapses soon."),
                format!("The 90-day data access of token `{alias}` ends at {at}."),
            );
            a.annotations.insert(
                label::ACTION.to_owned(),
                TokenStatus::DataAccessExpired.action().to_owned(),
            );
            out.push(a);
        }
        if !token.flags.is_empty() {
            let mut a = alert(
                TOKEN_FLAGGED,
                "warning",
                format!("Token `{alias}` is not what was recorded."),
                format!("Inspection found: {}.", token.flags.join("; ")),
            );
            a.annotations.insert(
                label::ACTION.to_owned(),
                "Check who issued this token and for which app; replace it if it is not the one meant."
                    .to_owned(),
            );
            out.push(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use graphwarden_core::{AppId, MetaId, TokenAlias, TokenKind};

    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn token(alias: &str) -> Token {
        Token {
            id: format!("id-{alias}"),
            alias: TokenAlias::parse(alias).unwrap(),
            kind: TokenKind::User,
            app_id: AppId::parse("1234567890").unwrap(),
            hint: "EAAB…x7Qz".into(),
            meta_user_id: None,
            page_id: None,
            business_id: None,
            parent_id: None,
            parent_alias: None,
            owner: String::new(),
            requested_by: String::new(),
            purpose: String::new(),
            scopes_needed: vec![],
            tags: vec![],
            created_at: now(),
            updated_at: now(),
            status: TokenStatus::Valid,
            status_cause: String::new(),
            expires: Expiry::Never,
            data_access_expires_at: None,
            issued_at: None,
            scopes: None,
            granular_scopes: None,
            last_checked_at: None,
            last_used_at: None,
            flags: vec![],
            meta_kind: None,
            pending_since: None,
            renewal_failures: 0,
            lease_until: None,
            renewal_policy: None,
        }
    }

    fn run(tokens: &[Token]) -> Vec<Alert> {
        evaluate(tokens, now(), &RuleConfig::default(), &|t| {
            Some(format!("https://gw.example/relogin/{}", t.alias))
        })
    }

    fn names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(Alert::name).collect()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    #[test]
    fn a_healthy_token_raises_nothing() {
        assert!(run(&[token("ana")]).is_empty());
        // Unknown (could not check) is not dead.
        let mut t = token("ana");
        t.status = TokenStatus::Unknown;
        assert!(run(&[t]).is_empty());
    }

    #[test]
    fn a_dead_token_is_critical_with_its_cause_action_and_relogin_link() {
        let mut t = token("ana");
        t.status = TokenStatus::PasswordChanged;
        t.status_cause = "the user changed their password (subcode 460)".into();
        t.business_id = Some(MetaId::parse("777").unwrap());
        t.expires = Expiry::At(now() + days(2));
        let alerts = run(&[t]);
        // Dead tokens do not also warn about their expiry.
        assert_eq!(names(&alerts), [TOKEN_DEAD]);
        let a = &alerts[0];
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["token"], "ana");
        assert_eq!(a.labels["app_id"], "1234567890");
        assert_eq!(a.labels["business_id"], "777");
        assert_eq!(a.labels["status"], "password_changed");
        assert!(a.annotations["description"].contains("subcode 460"));
        assert_eq!(
            a.annotations["action"],
            TokenStatus::PasswordChanged.action()
        );
        assert_eq!(
            a.annotations["relogin_url"],
            "https://gw.example/relogin/ana"
        );
        // A revoked token is not fixed by logging in: no link.
        let mut t = token("bot");
        t.status = TokenStatus::Revoked;
        let alerts = run(&[t]);
        assert!(!alerts[0].annotations.contains_key("relogin_url"));
        assert!(!alerts[0].labels.contains_key("business_id"));
    }

    #[test]
    fn expiry_warnings_name_the_threshold_crossed_and_turn_critical_within_a_day() {
        let cases = [
            (days(20), None),
            (days(14), Some(("14d", "warning"))),
            (days(8), Some(("14d", "warning"))),
            (
                days(7) - SignedDuration::from_secs(1),
                Some(("7d", "warning")),
            ),
            (days(2), Some(("3d", "warning"))),
            (SignedDuration::from_hours(5), Some(("1d", "critical"))),
        ];
        for (left, want) in cases {
            let mut t = token("ana");
            t.expires = Expiry::At(now() + left);
            let alerts = run(&[t]);
            match want {
                None => assert!(alerts.is_empty(), "{left:?}"),
                Some((window, severity)) => {
                    assert_eq!(names(&alerts), [TOKEN_EXPIRING], "{left:?}");
                    assert_eq!(alerts[0].labels[WINDOW], window, "{left:?}");
                    assert_eq!(alerts[0].labels["severity"], severity, "{left:?}");
                }
            }
        }
    }

    #[test]
    fn renewal_failures_data_access_and_flags_each_raise_their_alert() {
        let mut failing = token("ana");
        failing.renewal_failures = 3;
        let mut attention = token("bob");
        attention.status = TokenStatus::NeedsAttention;
        let mut lapsing = token("cy");
        lapsing.data_access_expires_at = Some(now() + days(10));
        let mut fine = token("dee");
        fine.data_access_expires_at = Some(now() + days(30));
        let mut flagged = token("eve");
        flagged.flags = vec!["app id differs: Meta reports 999".into()];
        let alerts = run(&[failing, attention, lapsing, fine, flagged]);
        let got: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.name(), a.labels["token"].as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (RENEWAL_FAILED, "ana"),
                (RENEWAL_FAILED, "bob"),
                (DATA_ACCESS_LAPSING, "cy"),
                (TOKEN_FLAGGED, "eve"),
            ]
        );
        assert!(alerts[0].annotations["description"].contains("3 renewal attempt"));
        assert!(alerts[3].annotations["description"].contains("app id differs"));
    }
}
