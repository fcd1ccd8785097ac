//! The routing tree, after Alertmanager's `route:`: which receiver hears about an alert, and how
//! its alerts are grouped and paced.
//!
//! What lives here: [`Route`], the config shape (every field but the root's receiver optional,
//! unset fields inherited from the parent); [`RouteTree`], the checked tree with every field
//! resolved; first-match/`continue` matching; group labels and group keys. What does not: the
//! groups themselves and their timers (`dispatch.rs`), and receivers' delivery settings.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::alert::matcher::{Matchers, check_label_name, escape};
use crate::alert::{Labels, label};
use crate::id::{InvalidInput, quote};

/// How long a new group waits for more alerts before its first notification.
pub const DEFAULT_GROUP_WAIT: SignedDuration = SignedDuration::from_secs(30);
/// How long a group waits before telling about changes after a notification.
pub const DEFAULT_GROUP_INTERVAL: SignedDuration = SignedDuration::from_secs(5 * 60);
/// How long an unchanged, still firing group waits before it is sent again.
pub const DEFAULT_REPEAT_INTERVAL: SignedDuration = SignedDuration::from_secs(4 * 3_600);

/// The `group_by` value that means "every label": each distinct alert is its own group.
pub const GROUP_BY_ALL: &str = "...";

/// One node of the routing tree as configured.
///
/// ```toml
/// [alerts.route]
/// receiver = "ops"
/// group_by = ["alertname", "token"]
/// group_wait = "30s"
/// group_interval = "5m"
/// repeat_interval = "4h"
///
/// [[alerts.route.routes]]
/// matchers = ['severity="critical"']
/// receiver = "pager"
/// continue = true
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Required on the root; children inherit their parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// All must match for the alert to take this route; the root has none.
    #[serde(default, skip_serializing_if = "Matchers::is_empty")]
    pub matchers: Matchers,
    /// Labels whose values split alerts into groups; `["..."]` means all labels, `[]` one
    /// group for everything. Inherited when unset; `["alertname"]` at the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub group_wait: Option<SignedDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub group_interval: Option<SignedDuration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub repeat_interval: Option<SignedDuration>,
    /// After this route matches, keep looking at its later siblings (Alertmanager's
    /// `continue`).
    #[serde(default, rename = "continue", skip_serializing_if = "is_false")]
    pub continue_matching: bool,
    /// Child routes, tried in order; the first that matches wins unless it says `continue`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Route {
    /// A root route that sends everything to `receiver` with the defaults.
    pub fn to(receiver: &str) -> Self {
        Self {
            receiver: Some(receiver.to_owned()),
            ..Self::default()
        }
    }

    /// A child route for alerts matching `matchers`.
    pub fn matching(matchers: Matchers) -> Self {
        Self {
            matchers,
            ..Self::default()
        }
    }
}

/// Which labels make up a group's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Every label (`["..."]`).
    All,
    /// These labels, sorted and without repeats; an alert without one of them is grouped as
    /// if the label were absent.
    Labels(Vec<String>),
}

impl GroupBy {
    /// The labels of `alert_labels` that make up its group's identity.
    pub fn group_labels(&self, alert_labels: &Labels) -> Labels {
        match self {
            Self::All => alert_labels.clone(),
            Self::Labels(names) => names
                .iter()
                .filter_map(|n| alert_labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// One route with every setting worked out, inside a [`RouteTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRoute {
    /// Position in the tree (depth first, root 0); stable while the config is.
    index: usize,
    /// Alertmanager's route key: the matchers of each route from the root down, joined by `/`,
    /// such as `{}/{severity="critical"}`.
    key: String,
    children: Vec<usize>,
    pub receiver: String,
    /// This route's own matchers (its ancestors' matched too, or it would not be reached).
    pub matchers: Matchers,
    pub group_by: GroupBy,
    pub group_wait: SignedDuration,
    pub group_interval: SignedDuration,
    pub repeat_interval: SignedDuration,
    pub continue_matching: bool,
}

impl ResolvedRoute {
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The labels that identify the group `alert_labels` falls in on this route.
    pub fn group_labels(&self, alert_labels: &Labels) -> Labels {
        self.group_by.group_labels(alert_labels)
    }

    /// The group key receivers see, as Alertmanager spells it:
    /// `{}/{severity="critical"}:{alertname="token_dead", token="ana"}`.
    pub fn group_key(&self, group_labels: &Labels) -> String {
        format!("{}:{}", self.key, format_label_set(group_labels))
    }
}

/// `{a="x", b="y"}`, sorted by name: Prometheus' `LabelSet.String()`.
pub fn format_label_set(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{name}=\"{}\"", escape(value));
    }
    out.push('}');
    out
}

/// The checked routing tree. Built from a [`Route`] with [`RouteTree::new`]; serialises back
/// to the same `Route`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Route", into = "Route")]
pub struct RouteTree {
    config: Route,
    /// Depth first; the root is at 0 and every index in `children` is valid.
    routes: Vec<ResolvedRoute>,
}

impl RouteTree {
    /// Check `config` and work out every route's settings. The root must name a receiver,
    /// have no matchers and no `continue`; intervals must be longer than zero.
    pub fn new(config: Route) -> Result<Self, InvalidInput> {
        if config.receiver.as_deref().is_none_or(str::is_empty) {
            return Err(InvalidInput::new(
                "the root route needs a `receiver`: every alert must go somewhere",
            ));
        }
        if !config.matchers.is_empty() {
            return Err(InvalidInput::new(
                "the root route must not have `matchers`: it is where every alert starts",
            ));
        }
        if config.continue_matching {
            return Err(InvalidInput::new(
                "the root route cannot `continue`: it has no siblings",
            ));
        }
        let defaults = Inherited {
            receiver: String::new(),
            group_by: GroupBy::Labels(vec![label::ALERTNAME.to_owned()]),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
        };
        let mut routes = Vec::new();
        resolve(&config, None, &defaults, &mut routes)?;
        Ok(Self { config, routes })
    }

    /// The config this tree was built from.
    pub fn config(&self) -> &Route {
        &self.config
    }

    pub fn root(&self) -> &ResolvedRoute {
        // Never out of bounds: `new`, the only way to build a tree, pushes the root first.
        &self.routes[0]
    }

    /// The route at `index` ([`ResolvedRoute::index`]).
    pub fn get(&self, index: usize) -> Option<&ResolvedRoute> {
        self.routes.get(index)
    }

    /// Every route, depth first.
    pub fn routes(&self) -> &[ResolvedRoute] {
        &self.routes
    }

    pub fn children(&self, route: &ResolvedRoute) -> impl Iterator<Item = &ResolvedRoute> {
        route.children.iter().filter_map(|i| self.routes.get(*i))
    }

    /// Every receiver named in the tree.
    pub fn receivers(&self) -> BTreeSet<&str> {
        self.routes.iter().map(|r| r.receiver.as_str()).collect()
    }

    /// The routes an alert with `labels` takes, as Alertmanager picks them: starting at the
    /// root, the children are tried in order; a matching child's own matches are taken, and
    /// the search stops there unless that child has `continue`. A route none of whose children
    /// match is itself the match. The root matches everything, so the result is never empty.
    pub fn match_routes(&self, labels: &Labels) -> Vec<&ResolvedRoute> {
        let mut out = Vec::new();
        if let Some(root) = self.routes.first() {
            self.match_into(root, labels, &mut out);
        }
        out
    }

    fn match_into<'a>(
        &'a self,
        route: &'a ResolvedRoute,
        labels: &Labels,
        out: &mut Vec<&'a ResolvedRoute>,
    ) -> bool {
        if !route.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for child in self.children(route) {
            if self.match_into(child, labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(route);
        }
        true
    }
}

impl TryFrom<Route> for RouteTree {
    type Error = InvalidInput;
    fn try_from(route: Route) -> Result<Self, Self::Error> {
        Self::new(route)
    }
}

impl From<RouteTree> for Route {
    fn from(tree: RouteTree) -> Self {
        tree.config
    }
}

/// What a route passes down to its children.
struct Inherited {
    receiver: String,
    group_by: GroupBy,
    group_wait: SignedDuration,
    group_interval: SignedDuration,
    repeat_interval: SignedDuration,
}

fn resolve(
    route: &Route,
    parent: Option<(usize, &str)>,
    inherited: &Inherited,
    out: &mut Vec<ResolvedRoute>,
) -> Result<usize, InvalidInput> {
    let key = match parent {
        None => route.matchers.to_string(),
        Some((_, parent_key)) => format!("{parent_key}/{}", route.matchers),
    };
    let bad = |what: String| InvalidInput::new(format!("route {}: {what}", quote(&key)));
    let receiver = match &route.receiver {
        Some(r) if r.trim().is_empty() => return Err(bad("`receiver` is empty".to_owned())),
        Some(r) => r.clone(),
        None => inherited.receiver.clone(),
    };
    let group_by = match &route.group_by {
        None => inherited.group_by.clone(),
        Some(names) if names.iter().any(|n| n == GROUP_BY_ALL) => {
            if names.len() > 1 {
                return Err(bad(format!(
                    "`group_by` holds `{GROUP_BY_ALL}` (all labels) and other names; write \
                     `[\"{GROUP_BY_ALL}\"]` alone"
                )));
            }
            GroupBy::All
        }
        Some(names) => {
            for n in names {
                check_label_name(n).map_err(|e| bad(format!("`group_by`: {e}")))?;
            }
            let set: BTreeSet<&String> = names.iter().collect();
            GroupBy::Labels(set.into_iter().cloned().collect())
        }
    };
    let group_wait = route.group_wait.unwrap_or(inherited.group_wait);
    let group_interval = route.group_interval.unwrap_or(inherited.group_interval);
    let repeat_interval = route.repeat_interval.unwrap_or(inherited.repeat_interval);
    if group_wait.is_negative() {
        return Err(bad("`group_wait` is negative".to_owned()));
    }
    // A zero interval would ask to be woken again at the same instant, forever.
    for (name, d) in [
        ("group_interval", group_interval),
        ("repeat_interval", repeat_interval),
    ] {
        if !d.is_positive() {
            return Err(bad(format!("`{name}` must be longer than zero")));
        }
    }
    let index = out.len();
    out.push(ResolvedRoute {
        index,
        key: key.clone(),
        children: Vec::new(),
        receiver: receiver.clone(),
        matchers: route.matchers.clone(),
        group_by: group_by.clone(),
        group_wait,
        group_interval,
        repeat_interval,
        continue_matching: route.continue_matching,
    });
    let passed = Inherited {
        receiver,
        group_by,
        group_wait,
        group_interval,
        repeat_interval,
    };
    let mut children = Vec::with_capacity(route.routes.len());
    for child in &route.routes {
        children.push(resolve(child, Some((index, &key)), &passed, out)?);
    }
    if let Some(me) = out.get_mut(index) {
        me.children = children;
    }
    Ok(index)
}

/// Durations in config as people write them (`30s`, `5m`, `4h`), through
/// [`crate::duration::parse_duration`], and written back in the largest exact unit.
pub(crate) mod opt_duration {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::duration::parse_duration;

    pub fn serialize<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_exact(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SignedDuration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The largest unit that writes `d` exactly: `4h`, `90s`, `1500ms`.
pub(crate) fn format_exact(d: SignedDuration) -> String {
    let millis = d.as_millis();
    if millis % 1_000 != 0 {
        return format!("{millis}ms");
    }
    let secs = millis / 1_000;
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::matcher::Matcher;
    use crate::duration::parse_duration;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ms(text: &str) -> Matchers {
        Matchers::parse(text).unwrap()
    }

    fn receivers(tree: &RouteTree, l: &Labels) -> Vec<String> {
        tree.match_routes(l)
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    /// root(ops) → [critical(pager, continue), token=acme-*(acme) → [warning(acme-warn)],
    /// alertname=token_dead(dead)]
    fn tree() -> RouteTree {
        RouteTree::new(Route {
            receiver: Some("ops".into()),
            group_by: Some(vec!["alertname".into(), "token".into()]),
            group_wait: Some(SignedDuration::from_secs(10)),
            routes: vec![
                Route {
                    receiver: Some("pager".into()),
                    continue_matching: true,
                    group_by: Some(vec!["...".into()]),
                    ..Route::matching(ms("severity=critical"))
                },
                Route {
                    receiver: Some("acme".into()),
                    repeat_interval: Some(SignedDuration::from_secs(3_600)),
                    routes: vec![Route {
                        receiver: Some("acme-warn".into()),
                        group_by: Some(vec![]),
                        ..Route::matching(ms("severity=warning"))
                    }],
                    ..Route::matching(ms("token=~\"acme-.*\""))
                },
                Route {
                    receiver: Some("dead".into()),
                    ..Route::matching(ms("alertname=token_dead"))
                },
            ],
            ..Route::default()
        })
        .unwrap()
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let t = tree();
        // Nothing below matches: the root.
        assert_eq!(receivers(&t, &labels(&[("alertname", "x")])), ["ops"]);
        // Critical continues to the next siblings; acme matches and stops the search, so
        // `dead` is not reached.
        assert_eq!(
            receivers(
                &t,
                &labels(&[
                    ("alertname", "token_dead"),
                    ("severity", "critical"),
                    ("token", "acme-1")
                ])
            ),
            ["pager", "acme"]
        );
        assert_eq!(
            receivers(
                &t,
                &labels(&[("alertname", "token_dead"), ("severity", "critical")])
            ),
            ["pager", "dead"]
        );
        // A child that matches replaces its parent.
        assert_eq!(
            receivers(&t, &labels(&[("token", "acme-1"), ("severity", "warning")])),
            ["acme-warn"]
        );
        assert_eq!(receivers(&t, &labels(&[("token", "acme-1")])), ["acme"]);
        // Only the critical route matches, and it continues into nothing: it is still the
        // match, and the root is not added.
        assert_eq!(
            receivers(&t, &labels(&[("severity", "critical")])),
            ["pager"]
        );
    }

    #[test]
    fn children_inherit_what_they_leave_unset() {
        let t = tree();
        let root = t.root();
        assert_eq!(root.group_wait, SignedDuration::from_secs(10));
        assert_eq!(root.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(root.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        let l = labels(&[("token", "acme-1"), ("severity", "warning")]);
        let warn = t.match_routes(&l)[0];
        assert_eq!(warn.group_wait, SignedDuration::from_secs(10));
        assert_eq!(warn.repeat_interval, SignedDuration::from_secs(3_600));
        assert_eq!(warn.group_by, GroupBy::Labels(vec![]));
        assert_eq!(warn.key(), "{}/{token=~\"acme-.*\"}/{severity=\"warning\"}");
        let acme = t.match_routes(&labels(&[("token", "acme-1")]))[0];
        assert_eq!(
            acme.group_by,
            GroupBy::Labels(vec!["alertname".into(), "token".into()])
        );
        let pager = t.match_routes(&labels(&[("severity", "critical")]))[0];
        assert_eq!(pager.group_by, GroupBy::All);
        assert_eq!(t.receivers().len(), 5);
        assert_eq!(t.children(t.root()).count(), 3);

        // With nothing set, Alertmanager's defaults and `alertname` grouping.
        let plain = RouteTree::new(Route::to("ops")).unwrap();
        let r = plain.root();
        assert_eq!(r.group_wait, DEFAULT_GROUP_WAIT);
        assert_eq!(r.group_by, GroupBy::Labels(vec!["alertname".into()]));
        assert_eq!(r.key(), "{}");
    }

    #[test]
    fn group_keys_are_spelled_like_alertmanager() {
        let t = tree();
        let l = labels(&[
            ("alertname", "token_dead"),
            ("token", "acme-\"1\""),
            ("app_id", "9"),
        ]);
        let acme = t.match_routes(&l)[0];
        let g = acme.group_labels(&l);
        assert_eq!(
            g,
            labels(&[("alertname", "token_dead"), ("token", "acme-\"1\"")])
        );
        assert_eq!(
            acme.group_key(&g),
            "{}/{token=~\"acme-.*\"}:{alertname=\"token_dead\", token=\"acme-\\\"1\\\"\"}"
        );
        // A missing group_by label is left out, not set to "".
        let root = t.root();
        assert_eq!(
            root.group_key(&root.group_labels(&labels(&[("alertname", "x")]))),
            "{}:{alertname=\"x\"}"
        );
    }

    #[test]
    fn refuses_trees_that_cannot_work() {
        let child = |r: Route| Route {
            routes: vec![r],
            ..Route::to("ops")
        };
        for (route, says) in [
            (Route::default(), "needs a `receiver`"),
            (
                Route {
                    matchers: ms("a=b"),
                    ..Route::to("ops")
                },
                "must not have `matchers`",
            ),
            (
                Route {
                    continue_matching: true,
                    ..Route::to("ops")
                },
                "cannot `continue`",
            ),
            (
                Route {
                    group_interval: Some(SignedDuration::ZERO),
                    ..Route::to("ops")
                },
                "`group_interval` must be longer than zero",
            ),
            (
                child(Route {
                    repeat_interval: Some(SignedDuration::from_secs(-1)),
                    ..Route::matching(ms("a=b"))
                }),
                "route `{}/{a=\\\"b\\\"}`: `repeat_interval`",
            ),
            (
                child(Route {
                    group_by: Some(vec!["...".into(), "token".into()]),
                    ..Route::matching(ms("a=b"))
                }),
                "alone",
            ),
            (
                child(Route {
                    group_by: Some(vec!["to-ken".into()]),
                    ..Route::matching(ms("a=b"))
                }),
                "not a label name",
            ),
            (
                child(Route {
                    receiver: Some(" ".into()),
                    ..Route::matching(ms("a=b"))
                }),
                "`receiver` is empty",
            ),
        ] {
            let err = RouteTree::new(route).unwrap_err();
            assert!(
                err.message().contains(says),
                "{} lacks {says}",
                err.message()
            );
        }
    }

    #[test]
    fn reads_and_writes_toml() {
        let text = r#"
            receiver = "ops"
            group_by = ["alertname", "token"]
            group_wait = "45s"
            repeat_interval = "12h"

            [[routes]]
            matchers = ['severity="critical"', 'token=~"acme-.*"']
            receiver = "pager"
            continue = true
            group_interval = "90s"

            [[routes]]
            matchers = '{alertname="token_dead"}'
            receiver = "dead"
        "#;
        let tree: RouteTree = toml::from_str(text).unwrap();
        assert_eq!(tree.root().group_wait, SignedDuration::from_secs(45));
        let pager = &tree.routes()[1];
        assert!(pager.continue_matching);
        assert_eq!(pager.matchers.len(), 2);
        assert_eq!(pager.group_interval, SignedDuration::from_secs(90));
        assert_eq!(pager.repeat_interval, SignedDuration::from_secs(12 * 3_600));
        let json = serde_json::to_value(&tree).unwrap();
        assert_eq!(json["repeat_interval"], "12h");
        assert_eq!(json["routes"][0]["continue"], true);
        assert_eq!(json["routes"][0]["group_interval"], "90s");
        assert_eq!(json["routes"][1]["matchers"][0], "alertname=\"token_dead\"");
        let back: RouteTree = serde_json::from_value(json).unwrap();
        assert_eq!(back, tree);

        for (bad, says) in [
            (
                "receiver = \"ops\"\ngroup_wait = \"soon\"",
                "not a duration",
            ),
            ("receiver = \"ops\"\nreciever = \"x\"", "unknown field"),
            ("group_wait = \"1s\"", "needs a `receiver`"),
            (
                "receiver = \"ops\"\n[[routes]]\nmatchers = ['a=~\"(\"']",
                "does not compile",
            ),
        ] {
            let err = toml::from_str::<RouteTree>(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn durations_are_written_in_the_largest_exact_unit() {
        for (secs_ms, text) in [
            (30_000, "30s"),
            (300_000, "5m"),
            (90_000, "90s"),
            (14_400_000, "4h"),
            (86_400_000, "1d"),
            (604_800_000, "1w"),
            (1_500, "1500ms"),
            (0, "0s"),
        ] {
            let d = SignedDuration::from_millis(secs_ms);
            assert_eq!(format_exact(d), text);
            assert_eq!(parse_duration(text).unwrap(), d);
        }
    }

    #[test]
    fn matcher_keys_escape_values() {
        let m = Matcher::new("a", crate::alert::matcher::MatchOp::Equal, "x\"y").unwrap();
        let t = RouteTree::new(Route {
            routes: vec![Route::matching(Matchers::new(vec![m]))],
            ..Route::to("ops")
        })
        .unwrap();
        assert_eq!(t.routes()[1].key(), "{}/{a=\"x\\\"y\"}");
    }
}
