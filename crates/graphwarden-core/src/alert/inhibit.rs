//! Inhibition, after Alertmanager's `inhibit_rules`: while an alert matching a rule's source
//! side fires, alerts matching its target side with the same values of the `equal` labels are
//! muted. A dead token need not also page about expiring soon.
//!
//! What lives here: [`InhibitRule`] (config shape and checks), graphwarden's default rules, and
//! [`Inhibitor`], which answers "is this alert inhibited, and by what" for one set of alerts.
//! What does not: which alerts exist (`dispatch.rs` hands them in) and silences (`silence.rs`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::alert::matcher::{Matcher, Matchers, check_label_name, label_value};
use crate::alert::{Alert, AlertStatus, Labels, label};
use crate::id::InvalidInput;

/// `alertname` of the alert raised while a token is dead (revoked, expired, invalid, password
/// changed, de-authorized, …: any status whose calls cannot work).
pub const TOKEN_DEAD: &str = "token_dead";
/// `alertname` of the alert raised while a token nears its expiry.
pub const TOKEN_EXPIRING: &str = "token_expiring";
/// `alertname` of the alert raised while renewing a token keeps failing.
pub const RENEWAL_FAILED: &str = "renewal_failed";
/// `alertname` of the alert raised while a token's 90-day data access nears its end.
pub const DATA_ACCESS_LAPSING: &str = "data_access_lapsing";

/// One inhibition rule.
///
/// ```toml
/// [[alerts.inhibit_rules]]
/// source_matchers = ['alertname="token_dead"']
/// target_matchers = ['alertname=~"token_expiring|renewal_failed"']
/// equal = ["token"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRule {
    /// What a firing alert must match to inhibit.
    pub source_matchers: Matchers,
    /// What an alert must match to be inhibited.
    pub target_matchers: Matchers,
    /// Labels whose values must be the same on both; a label missing from both counts as the
    /// same (both are the empty string), as in Alertmanager.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Alertmanager accepts empty sides; we refuse them, because an empty target mutes every
    /// alert while any source fires, and an empty source lets any alert mute the targets.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.source_matchers.is_empty() || self.target_matchers.is_empty() {
            return Err(InvalidInput::new(
                "an inhibition rule needs both `source_matchers` and `target_matchers`; \
                 an empty side matches every alert",
            ));
        }
        for name in &self.equal {
            check_label_name(name)
                .map_err(|e| InvalidInput::new(format!("inhibition rule `equal`: {e}")))?;
        }
        Ok(())
    }
}

/// graphwarden's own rules: a token's `token_dead` alert inhibits its `token_expiring`,
/// `renewal_failed` and `data_access_lapsing` alerts, which say nothing new about a token that
/// no longer works.
pub fn default_rules() -> Vec<InhibitRule> {
    [TOKEN_EXPIRING, RENEWAL_FAILED, DATA_ACCESS_LAPSING]
        .into_iter()
        .map(|target| InhibitRule {
            source_matchers: Matchers::new(vec![Matcher::trusted_equal(
                label::ALERTNAME,
                TOKEN_DEAD,
            )]),
            target_matchers: Matchers::new(vec![Matcher::trusted_equal(label::ALERTNAME, target)]),
            equal: vec![label::TOKEN.to_owned()],
        })
        .collect()
}

/// The inhibition rules applied to one snapshot of alerts. Build it once per evaluation: the
/// sources of every rule are indexed by their `equal` values, so each question is a lookup.
#[derive(Debug)]
pub struct Inhibitor<'a> {
    rules: Vec<IndexedRule<'a>>,
}

#[derive(Debug)]
struct IndexedRule<'a> {
    rule: &'a InhibitRule,
    /// Firing alerts that match the source side, keyed by their values of `equal`, each with
    /// its fingerprint.
    sources: BTreeMap<Vec<&'a str>, Vec<(Cow<'a, str>, &'a Alert)>>,
}

impl<'a> Inhibitor<'a> {
    /// Only firing alerts among `alerts` inhibit; resolved ones are ignored.
    pub fn new(rules: &'a [InhibitRule], alerts: impl IntoIterator<Item = &'a Alert>) -> Self {
        Self::index(
            rules,
            alerts.into_iter().map(|a| (Cow::Owned(a.fingerprint()), a)),
        )
    }

    /// As [`Inhibitor::new`], for alerts whose fingerprints the caller already holds.
    pub fn with_fingerprints(
        rules: &'a [InhibitRule],
        alerts: impl IntoIterator<Item = (&'a str, &'a Alert)>,
    ) -> Self {
        Self::index(
            rules,
            alerts.into_iter().map(|(fp, a)| (Cow::Borrowed(fp), a)),
        )
    }

    fn index(
        rules: &'a [InhibitRule],
        alerts: impl Iterator<Item = (Cow<'a, str>, &'a Alert)>,
    ) -> Self {
        let firing: Vec<(Cow<'a, str>, &'a Alert)> = alerts
            .filter(|(_, a)| a.status() == AlertStatus::Firing)
            .collect();
        let rules = rules
            .iter()
            .map(|rule| {
                let mut sources: BTreeMap<Vec<&'a str>, Vec<(Cow<'a, str>, &'a Alert)>> =
                    BTreeMap::new();
                for (fp, a) in &firing {
                    if rule.source_matchers.matches(&a.labels) {
                        sources
                            .entry(equal_values(rule, &a.labels))
                            .or_default()
                            .push((fp.clone(), a));
                    }
                }
                IndexedRule { rule, sources }
            })
            .collect();
        Self { rules }
    }

    /// The fingerprints of the firing alerts that inhibit an alert with `labels`, sorted;
    /// empty when it is not inhibited.
    pub fn inhibited_by(&self, labels: &Labels) -> Vec<String> {
        let mut out = BTreeSet::new();
        self.each_source(labels, |fp| {
            out.insert(fp.to_owned());
            true
        });
        out.into_iter().collect()
    }

    pub fn is_inhibited(&self, labels: &Labels) -> bool {
        let mut found = false;
        self.each_source(labels, |_| {
            found = true;
            false
        });
        found
    }

    /// Call `f` with each inhibiting source's fingerprint until it returns `false`.
    fn each_source(&self, labels: &Labels, mut f: impl FnMut(&str) -> bool) {
        for r in &self.rules {
            if !r.rule.target_matchers.matches(labels) {
                continue;
            }
            // An alert that matches both sides of a rule may only be inhibited by a source
            // that does not itself match the target side (Alertmanager's rule), so two such
            // alerts never mute each other, and no alert mutes itself.
            let two_sided = r.rule.source_matchers.matches(labels);
            let Some(candidates) = r.sources.get(&equal_values(r.rule, labels)) else {
                continue;
            };
            for (fp, source) in candidates {
                if &source.labels == labels {
                    continue;
                }
                if two_sided && r.rule.target_matchers.matches(&source.labels) {
                    continue;
                }
                if !f(fp) {
                    return;
                }
            }
        }
    }
}

fn equal_values<'a>(rule: &InhibitRule, labels: &'a Labels) -> Vec<&'a str> {
    rule.equal.iter().map(|n| label_value(labels, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn alert(pairs: &[(&str, &str)], resolved: bool) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: Labels::new(),
            starts_at: Timestamp::UNIX_EPOCH,
            ends_at: resolved.then_some(Timestamp::UNIX_EPOCH),
        }
    }

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source_matchers: Matchers::parse(source).unwrap(),
            target_matchers: Matchers::parse(target).unwrap(),
            equal: equal.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn a_dead_token_inhibits_its_own_lesser_alerts_only() {
        let rules = default_rules();
        for r in &rules {
            r.validate().unwrap();
            // The trusted constructors spell valid matchers.
            for m in r.source_matchers.iter().chain(&r.target_matchers) {
                assert_eq!(&Matcher::parse(&m.to_string()).unwrap(), m);
            }
        }
        let dead = alert(&[("alertname", TOKEN_DEAD), ("token", "ana")], false);
        let alerts = [dead.clone()];
        let inh = Inhibitor::new(&rules, &alerts);
        for name in [TOKEN_EXPIRING, RENEWAL_FAILED, DATA_ACCESS_LAPSING] {
            let target = alert(&[("alertname", name), ("token", "ana")], false);
            assert_eq!(inh.inhibited_by(&target.labels), vec![dead.fingerprint()]);
            let other = alert(&[("alertname", name), ("token", "ben")], false);
            assert!(!inh.is_inhibited(&other.labels), "another token's alert");
        }
        assert!(
            !inh.is_inhibited(
                &alert(&[("alertname", "usage_high"), ("token", "ana")], false).labels
            )
        );
        assert!(!inh.is_inhibited(&dead.labels), "never itself");

        // Once the dead alert resolves, nothing is inhibited.
        let resolved = [alert(&[("alertname", TOKEN_DEAD), ("token", "ana")], true)];
        let inh = Inhibitor::new(&rules, &resolved);
        assert!(!inh.is_inhibited(
            &alert(&[("alertname", TOKEN_EXPIRING), ("token", "ana")], false).labels
        ));
    }

    #[test]
    fn equal_labels_missing_on_both_sides_are_equal() {
        let rules = [rule("severity=critical", "severity=warning", &["cluster"])];
        let source = [alert(&[("severity", "critical")], false)];
        let inh = Inhibitor::new(&rules, &source);
        assert!(inh.is_inhibited(&alert(&[("severity", "warning")], false).labels));
        assert!(
            !inh.is_inhibited(&alert(&[("severity", "warning"), ("cluster", "a")], false).labels)
        );
        // No `equal` at all: any source inhibits every target.
        let rules = [rule("severity=critical", "severity=warning", &[])];
        let inh = Inhibitor::new(&rules, &source);
        assert!(
            inh.is_inhibited(&alert(&[("severity", "warning"), ("cluster", "a")], false).labels)
        );
    }

    #[test]
    fn alerts_matching_both_sides_do_not_inhibit_each_other() {
        // Both alerts match source and target; neither may mute the other.
        let rules = [rule("team=ops", "team=ops", &["team"])];
        let a = alert(&[("team", "ops"), ("x", "1")], false);
        let b = alert(&[("team", "ops"), ("x", "2")], false);
        let alerts = [a.clone(), b.clone()];
        let inh = Inhibitor::new(&rules, &alerts);
        assert!(!inh.is_inhibited(&a.labels));
        assert!(!inh.is_inhibited(&b.labels));

        // A source that matches only the source side still inhibits a two-sided alert.
        let rules = [rule(
            "severity=~\"critical|warning\"",
            "severity=warning",
            &[],
        )];
        let crit = alert(&[("severity", "critical")], false);
        let warn = alert(&[("severity", "warning")], false);
        let alerts = [crit.clone(), warn.clone()];
        let inh = Inhibitor::new(&rules, &alerts);
        assert_eq!(inh.inhibited_by(&warn.labels), vec![crit.fingerprint()]);
        assert!(!inh.is_inhibited(&crit.labels));
    }

    #[test]
    fn config_shape_and_checks() {
        let r: InhibitRule = toml::from_str(
            "source_matchers = ['alertname=\"token_dead\"']\n\
             target_matchers = '{alertname=~\"token_expiring|renewal_failed\"}'\n\
             equal = ['token']",
        )
        .unwrap();
        r.validate().unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["target_matchers"][0],
            "alertname=~\"token_expiring|renewal_failed\""
        );
        assert_eq!(serde_json::from_value::<InhibitRule>(json).unwrap(), r);
        assert!(rule("{}", "a=b", &[]).validate().is_err());
        assert!(rule("a=b", "{}", &[]).validate().is_err());
        assert!(rule("a=b", "c=d", &["bad-name"]).validate().is_err());
        assert!(
            toml::from_str::<InhibitRule>(
                "source_matchers = []\ntarget_matchers = []\nequals = []"
            )
            .is_err()
        );
    }
}
