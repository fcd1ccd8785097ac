//! The dispatcher: alerts in, notifications out, on Alertmanager's timetable. Pure and driven by
//! the clock it is handed: no I/O, no threads, no wall clock.
//!
//! What lives here: [`Dispatcher`], which sorts alerts into groups (one per route and group
//! key, see `route.rs`), keeps each group's timers and what each receiver was last told, and
//! says which [`Notification`]s are due at a given time, leaving out silenced and inhibited
//! alerts; [`DispatchConfig`] and [`DispatchState`], its two halves. What does not: evaluating
//! alert rules, delivering notifications, storing state or silences.
//!
//! The timetable, as in Alertmanager:
//! - a new group waits `group_wait` before its first notification, so alerts raised together
//!   arrive together (an alert that started more than `group_wait` ago does not wait);
//! - after that the group is looked at every `group_interval`, and a notification goes out
//!   only when a firing alert is new to the receiver, or (with `send_resolved`) an alert has
//!   resolved since the last one, or every firing alert has resolved;
//! - an unchanged group that still fires is sent again once `repeat_interval` has passed since
//!   the last notification;
//! - a resolved alert leaves the group at the first look after it resolved, told about or not,
//!   and a group with no alerts left is forgotten.
//!
//! Crash safety: [`Dispatcher::flush`] records what it returns as sent. The daemon stores the
//! new [`DispatchState`] and the returned notifications (in an outbox its senders drain) in one
//! transaction, so a restart neither loses a notification nor sends one twice. The state is
//! plain serde data for that purpose; a property test below checks that a round trip through
//! JSON after any step changes nothing that is sent.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::alert::inhibit::{InhibitRule, Inhibitor, default_rules};
use crate::alert::route::{ResolvedRoute, RouteTree};
use crate::alert::silence::{Silence, silenced_by};
use crate::alert::{Alert, AlertStatus, Labels, Notification, NotifiedAlert};
use crate::id::InvalidInput;

/// What the dispatcher is told to do: where alerts go, what inhibits what, and which receivers
/// want resolved notifications.
///
/// ```toml
/// [alerts]
/// send_resolved = { pager = false }
///
/// [alerts.route]
/// receiver = "ops"
///
/// [[alerts.inhibit_rules]]
/// source_matchers = ['alertname="token_dead"']
/// target_matchers = ['alertname="token_expiring"']
/// equal = ["token"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    pub route: RouteTree,
    /// When left out of the config, graphwarden's [`default_rules`]; when given, exactly these.
    #[serde(default = "default_rules")]
    pub inhibit_rules: Vec<InhibitRule>,
    /// Receivers named here with `false` are not told when alerts resolve (Alertmanager's
    /// `send_resolved: false`); every other receiver is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub send_resolved: BTreeMap<String, bool>,
}

impl DispatchConfig {
    /// `route` with graphwarden's default inhibition rules, resolved notifications for all.
    pub fn new(route: RouteTree) -> Self {
        Self {
            route,
            inhibit_rules: default_rules(),
            send_resolved: BTreeMap::new(),
        }
    }

    /// The checks serde cannot make: each inhibition rule's.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.inhibit_rules
            .iter()
            .try_for_each(InhibitRule::validate)
    }

    pub fn sends_resolved(&self, receiver: &str) -> bool {
        self.send_resolved.get(receiver).copied().unwrap_or(true)
    }
}

/// Everything the dispatcher remembers between calls: the alerts its groups hold, and each
/// group's timers and last notification. Persist it after every [`Dispatcher::upsert`] and
/// [`Dispatcher::flush`]; hand it back to [`Dispatcher::restore`]. Unknown fields are
/// ignored when it is read, so a state written by a newer release still loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispatchState {
    /// Every alert some group holds, by fingerprint.
    alerts: BTreeMap<String, Alert>,
    /// Written as a list: JSON object keys cannot be pairs.
    #[serde(with = "group_list")]
    groups: BTreeMap<GroupId, Group>,
}

impl DispatchState {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.groups.is_empty()
    }
}

/// A group is one receiver's view of one group key: two routes that give the same key and
/// receiver share it, so that receiver is told once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupId {
    group_key: String,
    receiver: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Group {
    group_key: String,
    receiver: String,
    /// [`ResolvedRoute::index`] of the route that made the group, for its timings.
    route: usize,
    /// The `group_by` labels and their values.
    labels: Labels,
    /// Fingerprints of the group's alerts.
    alerts: BTreeSet<String>,
    created_at: Timestamp,
    /// When the group is next looked at.
    next_flush: Timestamp,
    /// Whether it has been looked at once: `group_wait` is over.
    flushed: bool,
    /// What the receiver was last told, Alertmanager's notification log entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_notified: Option<Sent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    at: Timestamp,
    /// Fingerprints of the firing alerts in that notification.
    firing: BTreeSet<String>,
    /// Fingerprints of the resolved alerts that were not muted then, sent or not.
    resolved: BTreeSet<String>,
}

impl Group {
    fn new(id: &GroupId, route: &ResolvedRoute, labels: Labels, now: Timestamp) -> Self {
        Self {
            group_key: id.group_key.clone(),
            receiver: id.receiver.clone(),
            route: route.index(),
            labels,
            alerts: BTreeSet::new(),
            created_at: now,
            next_flush: after(now, route.group_wait),
            flushed: false,
            last_notified: None,
        }
    }

    /// Alertmanager's shortcut: an alert that started more than `group_wait` ago has already
    /// waited, so a group that has not spoken yet speaks at once.
    fn hurry_for(&mut self, alert: &Alert, route: &ResolvedRoute, now: Timestamp) {
        if !self.flushed && after(alert.starts_at, route.group_wait) < now {
            self.next_flush = self.next_flush.min(now);
        }
    }

    /// Look at the group now: the notification due, if any. Resolved alerts leave the group.
    fn flush(
        &mut self,
        alerts: &BTreeMap<String, Alert>,
        route: &ResolvedRoute,
        send_resolved: bool,
        muted: impl Fn(&Alert) -> bool,
        now: Timestamp,
    ) -> Option<Notification> {
        self.flushed = true;
        self.next_flush = after(now, route.group_interval);
        let shown: Vec<(&str, &Alert)> = self
            .alerts
            .iter()
            .filter_map(|fp| alerts.get(fp).map(|a| (fp.as_str(), a)))
            .filter(|(_, a)| !muted(a))
            .collect();

        // Everything muted: nothing is sent and nothing logged, as in Alertmanager, whose
        // pipeline stops before its dedup stage when no alert is left.
        let mut notification = None;
        if !shown.is_empty() {
            // Borrowed sets: a quiet tick, the common case, then allocates no strings.
            let (mut firing, mut resolved) = (BTreeSet::new(), BTreeSet::new());
            for (fp, a) in &shown {
                match a.status() {
                    AlertStatus::Firing => firing.insert(*fp),
                    AlertStatus::Resolved => resolved.insert(*fp),
                };
            }
            let last = self.last_notified.as_ref();
            if needs_update(last, &firing, &resolved, send_resolved, route, now) {
                let mut sent: Vec<&Alert> = shown
                    .iter()
                    .map(|(_, a)| *a)
                    .filter(|a| send_resolved || a.status() == AlertStatus::Firing)
                    .collect();
                // Label order reads well in a message; sorted only when one is sent.
                sent.sort_by(|a, b| a.labels.cmp(&b.labels));
                // A receiver without `send_resolved` whose alerts all resolved hears nothing,
                // but the log still records that nothing fires any more.
                if !sent.is_empty() {
                    notification = Some(Notification::new(
                        &self.receiver,
                        &self.group_key,
                        self.labels.clone(),
                        sent.into_iter().map(NotifiedAlert::from).collect(),
                    ));
                }
                let owned = |set: BTreeSet<&str>| set.into_iter().map(str::to_owned).collect();
                self.last_notified = Some(Sent {
                    at: now,
                    firing: owned(firing),
                    resolved: owned(resolved),
                });
            }
        }
        // Resolved alerts are done with here: just told about, muted, or unwanted by the
        // receiver. Keeping them would tell about them again after the next change.
        self.alerts.retain(|fp| {
            alerts
                .get(fp)
                .is_some_and(|a| a.status() == AlertStatus::Firing)
        });
        notification
    }
}

/// Alertmanager's `DedupStage.needsUpdate`, with the repeat interval counted inclusively so a
/// repeat lands on the group's own tick rather than one `group_interval` after it.
fn needs_update(
    last: Option<&Sent>,
    firing: &BTreeSet<&str>,
    resolved: &BTreeSet<&str>,
    send_resolved: bool,
    route: &ResolvedRoute,
    now: Timestamp,
) -> bool {
    let Some(last) = last else {
        // Never told: tell when something fires; alerts that fired and resolved unseen are
        // news to nobody.
        return !firing.is_empty();
    };
    if !firing.iter().all(|fp| last.firing.contains(*fp)) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: say so once, whatever `send_resolved` says, so the log no
        // longer holds firing alerts.
        return !last.firing.is_empty();
    }
    if send_resolved && !resolved.iter().all(|fp| last.resolved.contains(*fp)) {
        return true;
    }
    now >= after(last.at, route.repeat_interval)
}

/// `t + d`, saturating instead of failing at the end of time.
fn after(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// One alert as `GET /api/v1/alerts` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertView {
    pub alert: Alert,
    pub fingerprint: String,
    /// Ids of the active silences that mute it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<String>,
    /// The receivers whose groups hold it.
    pub receivers: Vec<String>,
}

impl AlertView {
    pub fn status(&self) -> AlertStatus {
        self.alert.status()
    }

    /// Silenced or inhibited: left out of notifications.
    pub fn is_muted(&self) -> bool {
        !self.silenced_by.is_empty() || !self.inhibited_by.is_empty()
    }
}

/// One group as an API or the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView<'a> {
    pub group_key: &'a str,
    pub receiver: &'a str,
    pub labels: &'a Labels,
    pub alerts: Vec<&'a Alert>,
    pub created_at: Timestamp,
    pub next_flush: Timestamp,
    pub last_notified_at: Option<Timestamp>,
}

/// The alert engine's state machine; see the module documentation for the timetable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatcher {
    config: DispatchConfig,
    state: DispatchState,
}

impl Dispatcher {
    pub fn new(config: DispatchConfig) -> Self {
        Self {
            config,
            state: DispatchState::default(),
        }
    }

    /// Pick up `state` saved earlier under `config` or an older config. Alerts are routed
    /// again; a group whose key and receiver survive keeps its timers and what its receiver
    /// was told, so an unchanged config continues exactly where it stopped. A group that is
    /// new under `config` starts its `group_wait` now, and takes only firing alerts: a
    /// resolved alert is news only to groups that were told it fired.
    pub fn restore(config: DispatchConfig, state: DispatchState, now: Timestamp) -> Self {
        let DispatchState {
            alerts: old_alerts,
            groups: old_groups,
        } = state;
        let mut state = DispatchState::default();
        for (fp, alert) in old_alerts {
            let firing = alert.status() == AlertStatus::Firing;
            let mut held = false;
            for route in config.route.match_routes(&alert.labels) {
                let labels = route.group_labels(&alert.labels);
                let id = GroupId {
                    group_key: route.group_key(&labels),
                    receiver: route.receiver.clone(),
                };
                let old = old_groups.get(&id);
                if !firing && !old.is_some_and(|g| g.alerts.contains(&fp)) {
                    continue;
                }
                let group = state.groups.entry(id).or_insert_with_key(|id| match old {
                    Some(g) => Group {
                        route: route.index(),
                        alerts: BTreeSet::new(),
                        ..g.clone()
                    },
                    None => Group::new(id, route, labels, now),
                });
                if old.is_none() {
                    group.hurry_for(&alert, route, now);
                }
                group.alerts.insert(fp.clone());
                held = true;
            }
            if held {
                state.alerts.insert(fp, alert);
            }
        }
        Self { config, state }
    }

    /// Switch to `config`, keeping what can be kept (see [`Dispatcher::restore`]).
    pub fn reconfigure(&mut self, config: DispatchConfig, now: Timestamp) {
        let state = std::mem::take(&mut self.state);
        *self = Self::restore(config, state, now);
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    pub fn state(&self) -> &DispatchState {
        &self.state
    }

    pub fn into_state(self) -> DispatchState {
        self.state
    }

    /// A new or updated alert; one with the same labels (fingerprint) is replaced. A firing
    /// alert joins the group of every route it takes. A resolved one (`ends_at` set) only
    /// updates the alert already known: an alert nobody was told about needs no resolution,
    /// and re-sent resolutions are not told twice.
    pub fn upsert(&mut self, alert: Alert, now: Timestamp) {
        let fp = alert.fingerprint();
        if alert.status() == AlertStatus::Resolved {
            if let Some(known) = self.state.alerts.get_mut(&fp) {
                *known = alert;
            }
            return;
        }
        for route in self.config.route.match_routes(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let id = GroupId {
                group_key: route.group_key(&labels),
                receiver: route.receiver.clone(),
            };
            let group = self
                .state
                .groups
                .entry(id)
                .or_insert_with_key(|id| Group::new(id, route, labels, now));
            group.alerts.insert(fp.clone());
            group.hurry_for(&alert, route, now);
        }
        self.state.alerts.insert(fp, alert);
    }

    /// The notifications due at `now`, in group key order, recorded as sent. Alerts muted by
    /// an active silence in `silences` or by an inhibition rule are left out; a group with
    /// nothing left to say sends nothing. Call it at [`Dispatcher::next_wakeup`] (or later;
    /// early calls return nothing and change nothing).
    pub fn flush(&mut self, now: Timestamp, silences: &[Silence]) -> Vec<Notification> {
        let Self { config, state } = self;
        let DispatchState { alerts, groups } = state;
        let due: Vec<GroupId> = groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut any_dropped = false;
        {
            // One snapshot for the whole call: every group sees the same sources.
            let inhibitor = Inhibitor::with_fingerprints(
                &config.inhibit_rules,
                alerts.iter().map(|(fp, a)| (fp.as_str(), a)),
            );
            let muted = |a: &Alert| {
                silences.iter().any(|s| s.mutes(&a.labels, now))
                    || inhibitor.is_inhibited(&a.labels)
            };
            for id in due {
                let Some(group) = groups.get_mut(&id) else {
                    continue;
                };
                // A group from a state whose config lost the route (hand-edited, or restored
                // without `restore`) falls back to the root's timings.
                let route = config
                    .route
                    .get(group.route)
                    .unwrap_or_else(|| config.route.root());
                let before = group.alerts.len();
                let send_resolved = config.sends_resolved(&group.receiver);
                if let Some(n) = group.flush(alerts, route, send_resolved, muted, now) {
                    out.push(n);
                }
                any_dropped |= group.alerts.len() != before;
                if group.alerts.is_empty() {
                    groups.remove(&id);
                }
            }
        }
        if any_dropped {
            // Alerts no group holds any more have been dealt with everywhere.
            let held: BTreeSet<&String> = groups.values().flat_map(|g| g.alerts.iter()).collect();
            alerts.retain(|fp, _| held.contains(fp));
        }
        out
    }

    /// When [`Dispatcher::flush`] next has something to look at; `None` when there are no
    /// groups. Changes after [`Dispatcher::upsert`].
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.state.groups.values().map(|g| g.next_flush).min()
    }

    /// Every alert the dispatcher holds: firing ones, and resolved ones not yet dealt with.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.state.alerts.values()
    }

    pub fn alert(&self, fingerprint: &str) -> Option<&Alert> {
        self.state.alerts.get(fingerprint)
    }

    /// Every alert held, in fingerprint order, with what mutes it at `now` and who hears
    /// about it. Filter on [`AlertView::status`] for the active ones.
    pub fn alert_views(&self, now: Timestamp, silences: &[Silence]) -> Vec<AlertView> {
        let inhibitor = Inhibitor::with_fingerprints(
            &self.config.inhibit_rules,
            self.state.alerts.iter().map(|(fp, a)| (fp.as_str(), a)),
        );
        let mut receivers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for g in self.state.groups.values() {
            for fp in &g.alerts {
                receivers.entry(fp).or_default().insert(&g.receiver);
            }
        }
        self.state
            .alerts
            .iter()
            .map(|(fp, a)| AlertView {
                alert: a.clone(),
                fingerprint: fp.clone(),
                silenced_by: silenced_by(silences, &a.labels, now),
                inhibited_by: inhibitor.inhibited_by(&a.labels),
                receivers: receivers
                    .get(fp.as_str())
                    .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Every group, in group key order.
    pub fn groups(&self) -> impl Iterator<Item = GroupView<'_>> {
        self.state.groups.values().map(|g| GroupView {
            group_key: &g.group_key,
            receiver: &g.receiver,
            labels: &g.labels,
            alerts: g
                .alerts
                .iter()
                .filter_map(|fp| self.state.alerts.get(fp))
                .collect(),
            created_at: g.created_at,
            next_flush: g.next_flush,
            last_notified_at: g.last_notified.as_ref().map(|s| s.at),
        })
    }
}

mod group_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Group, GroupId};

    pub fn serialize<S: Serializer>(
        groups: &BTreeMap<GroupId, Group>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(groups.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<GroupId, Group>, D::Error> {
        Ok(Vec::<Group>::deserialize(d)?
            .into_iter()
            .map(|g| {
                let id = GroupId {
                    group_key: g.group_key.clone(),
                    receiver: g.receiver.clone(),
                };
                (id, g)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::inhibit::{TOKEN_DEAD, TOKEN_EXPIRING};
    use crate::alert::matcher::Matchers;
    use crate::alert::route::Route;
    use proptest::prelude::*;

    const SEC: SignedDuration = SignedDuration::from_secs(1);
    const MIN: SignedDuration = SignedDuration::from_secs(60);
    const HOUR: SignedDuration = SignedDuration::from_secs(3_600);

    fn t0() -> Timestamp {
        Timestamp::from_second(1_767_225_600).unwrap()
    }

    fn alert(name: &str, token: &str, starts: Timestamp) -> Alert {
        Alert {
            labels: [("alertname", name), ("token", token)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            annotations: Labels::new(),
            starts_at: starts,
            ends_at: None,
        }
    }

    fn resolved(mut a: Alert, at: Timestamp) -> Alert {
        a.ends_at = Some(at);
        a
    }

    fn dispatcher(route: Route) -> Dispatcher {
        Dispatcher::new(DispatchConfig::new(RouteTree::new(route).unwrap()))
    }

    /// Shorthand for what a notification says: `token:status` per alert.
    fn said(n: &Notification) -> Vec<String> {
        n.alerts
            .iter()
            .map(|a| format!("{}:{}", a.labels["token"], a.status.as_str()))
            .collect()
    }

    /// Flush at every wake-up up to and including `end`, as the daemon's loop would.
    fn run_until(
        d: &mut Dispatcher,
        end: Timestamp,
        silences: &[Silence],
    ) -> Vec<(Timestamp, Notification)> {
        let mut out = Vec::new();
        while let Some(at) = d.next_wakeup().filter(|w| *w <= end) {
            out.extend(d.flush(at, silences).into_iter().map(|n| (at, n)));
        }
        out
    }

    #[test]
    fn a_new_group_waits_then_changes_wait_for_the_group_interval() {
        let mut d = dispatcher(Route::to("ops"));
        assert_eq!(d.next_wakeup(), None);
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        assert_eq!(d.next_wakeup(), Some(t0() + 30 * SEC));
        assert!(d.flush(t0() + 29 * SEC, &[]).is_empty());
        let sent = d.flush(t0() + 30 * SEC, &[]);
        assert_eq!(sent.len(), 1);
        let n = &sent[0];
        assert_eq!(n.receiver, "ops");
        assert_eq!(n.group_key, "{}:{alertname=\"token_expiring\"}");
        assert_eq!(n.group_labels["alertname"], TOKEN_EXPIRING);
        assert_eq!(said(n), ["ana:firing"]);
        assert_eq!(d.next_wakeup(), Some(t0() + 5 * MIN + 30 * SEC));

        // A second alert a minute later waits for the group's next tick.
        d.upsert(alert(TOKEN_EXPIRING, "ben", t0() + MIN), t0() + MIN);
        assert_eq!(d.next_wakeup(), Some(t0() + 5 * MIN + 30 * SEC));
        assert!(d.flush(t0() + 5 * MIN + 29 * SEC, &[]).is_empty());
        let sent = d.flush(t0() + 5 * MIN + 30 * SEC, &[]);
        assert_eq!(said(&sent[0]), ["ana:firing", "ben:firing"]);
        // Nothing new: nothing sent at the following ticks.
        assert!(run_until(&mut d, t0() + HOUR, &[]).is_empty());
        // Re-sending a firing alert the group already told about changes nothing.
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0() + HOUR);
        assert!(run_until(&mut d, t0() + 2 * HOUR, &[]).is_empty());
    }

    #[test]
    fn an_unchanged_firing_group_is_sent_again_after_the_repeat_interval() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        let first = t0() + 30 * SEC;
        let sent = run_until(&mut d, first + 4 * HOUR, &[]);
        let times: Vec<Timestamp> = sent.iter().map(|(at, _)| *at).collect();
        assert_eq!(times, [first, first + 4 * HOUR]);
        let sent = run_until(&mut d, first + 8 * HOUR - SEC, &[]);
        assert!(sent.is_empty());
        let sent = run_until(&mut d, first + 8 * HOUR, &[]);
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn a_resolved_alert_is_sent_once_then_forgotten() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(alert(TOKEN_EXPIRING, "ben", t0()), t0());
        assert_eq!(d.flush(t0() + 30 * SEC, &[]).len(), 1);

        let ben = resolved(alert(TOKEN_EXPIRING, "ben", t0()), t0() + MIN);
        d.upsert(ben.clone(), t0() + MIN);
        let sent = run_until(&mut d, t0() + HOUR, &[]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, t0() + 5 * MIN + 30 * SEC);
        assert_eq!(said(&sent[0].1), ["ana:firing", "ben:resolved"]);
        assert_eq!(sent[0].1.status, AlertStatus::Firing);
        assert_eq!(d.alerts().count(), 1, "ben is dropped once told");
        // The same resolution sent again by the rules is not news.
        d.upsert(ben, t0() + HOUR);
        assert!(run_until(&mut d, t0() + 2 * HOUR, &[]).is_empty());

        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "ana", t0()), t0() + 2 * HOUR),
            t0() + 2 * HOUR,
        );
        let sent = run_until(&mut d, t0() + 3 * HOUR, &[]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.status, AlertStatus::Resolved);
        assert_eq!(said(&sent[0].1), ["ana:resolved"]);
        assert_eq!(d.alerts().count(), 0);
        assert_eq!(d.next_wakeup(), None);
        assert!(d.state().is_empty());

        // A resolution for an alert nobody heard of is ignored.
        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "cleo", t0()), t0()),
            t0() + 3 * HOUR,
        );
        assert!(d.state().is_empty());
    }

    #[test]
    fn an_alert_that_resolves_before_the_first_notification_is_never_sent() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "ana", t0()), t0() + 10 * SEC),
            t0() + 10 * SEC,
        );
        assert!(run_until(&mut d, t0() + HOUR, &[]).is_empty());
        assert!(d.state().is_empty());
    }

    #[test]
    fn a_receiver_without_send_resolved_hears_only_firing_alerts() {
        let mut config = DispatchConfig::new(RouteTree::new(Route::to("pager")).unwrap());
        config.send_resolved.insert("pager".into(), false);
        let mut d = Dispatcher::new(config);
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(alert(TOKEN_EXPIRING, "ben", t0()), t0());
        assert_eq!(d.flush(t0() + 30 * SEC, &[]).len(), 1);
        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "ben", t0()), t0() + MIN),
            t0() + MIN,
        );
        // Ben's resolution is not news to this receiver: the next message is the repeat.
        let sent = run_until(&mut d, t0() + 5 * HOUR, &[]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, t0() + 30 * SEC + 4 * HOUR);
        assert_eq!(said(&sent[0].1), ["ana:firing"]);
        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "ana", t0()), t0() + 5 * HOUR),
            t0() + 5 * HOUR,
        );
        assert!(run_until(&mut d, t0() + 6 * HOUR, &[]).is_empty());
        assert!(d.state().is_empty());
    }

    #[test]
    fn a_silence_mutes_until_it_ends() {
        let mut d = dispatcher(Route::to("ops"));
        let silence = Silence {
            id: "s1".into(),
            matchers: Matchers::parse("token=ana").unwrap(),
            starts_at: t0(),
            ends_at: t0() + 10 * MIN,
            created_by: "ana".into(),
            comment: "rotating".into(),
        };
        let silences = [silence];
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(alert(TOKEN_EXPIRING, "ben", t0()), t0());
        let views = d.alert_views(t0() + MIN, &silences);
        assert_eq!(views.len(), 2);
        let ana = views
            .iter()
            .find(|v| v.alert.labels["token"] == "ana")
            .unwrap();
        assert_eq!(ana.silenced_by, ["s1"]);
        assert!(ana.is_muted());
        assert_eq!(ana.receivers, ["ops"]);

        let sent = run_until(&mut d, t0() + 10 * MIN, &silences);
        assert_eq!(sent.len(), 1, "only ben while ana is silenced");
        assert_eq!(said(&sent[0].1), ["ben:firing"]);
        // The silence ended at 10m; ana is new to the receiver at the next tick.
        let sent = run_until(&mut d, t0() + 11 * MIN, &silences);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, t0() + 10 * MIN + 30 * SEC);
        assert_eq!(said(&sent[0].1), ["ana:firing", "ben:firing"]);
        assert!(
            d.alert_views(t0() + 11 * MIN, &silences)
                .iter()
                .all(|v| !v.is_muted())
        );
    }

    #[test]
    fn a_group_whose_alerts_are_all_silenced_sends_nothing() {
        let mut d = dispatcher(Route::to("ops"));
        let silences = [Silence {
            id: "all".into(),
            matchers: Matchers::parse("alertname=~\"token_.*\"").unwrap(),
            starts_at: t0(),
            ends_at: t0() + 24 * HOUR,
            created_by: "ana".into(),
            comment: "migration".into(),
        }];
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        assert!(run_until(&mut d, t0() + 10 * HOUR, &silences).is_empty());
        // Resolving while silenced: dropped without a word.
        d.upsert(
            resolved(alert(TOKEN_EXPIRING, "ana", t0()), t0() + 11 * HOUR),
            t0() + 11 * HOUR,
        );
        assert!(run_until(&mut d, t0() + 12 * HOUR, &silences).is_empty());
        assert!(d.state().is_empty());
    }

    #[test]
    fn a_dead_token_mutes_its_expiring_alert_until_it_resolves() {
        let mut d = dispatcher(Route::to("ops"));
        let dead = alert(TOKEN_DEAD, "ana", t0());
        d.upsert(dead.clone(), t0());
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(alert(TOKEN_EXPIRING, "ben", t0()), t0());
        let sent = d.flush(t0() + 30 * SEC, &[]);
        let by_name: BTreeMap<&str, Vec<String>> = sent
            .iter()
            .map(|n| (n.group_labels["alertname"].as_str(), said(n)))
            .collect();
        assert_eq!(by_name[TOKEN_DEAD], ["ana:firing"]);
        assert_eq!(
            by_name[TOKEN_EXPIRING],
            ["ben:firing"],
            "ana's is inhibited"
        );
        let views = d.alert_views(t0() + MIN, &[]);
        let inhibited: Vec<&AlertView> = views.iter().filter(|v| v.is_muted()).collect();
        assert_eq!(inhibited.len(), 1);
        assert_eq!(inhibited[0].alert.labels["token"], "ana");
        assert_eq!(inhibited[0].alert.name(), TOKEN_EXPIRING);
        assert_eq!(inhibited[0].inhibited_by, [dead.fingerprint()]);
        assert!(run_until(&mut d, t0() + HOUR, &[]).is_empty());

        // Ana is re-authorized but still close to expiry: the dead alert resolves and the
        // expiring one, still firing, is news at the next tick.
        d.upsert(resolved(dead, t0() + HOUR), t0() + HOUR);
        let sent = run_until(&mut d, t0() + HOUR + 5 * MIN, &[]);
        let by_name: BTreeMap<&str, Vec<String>> = sent
            .iter()
            .map(|(_, n)| (n.group_labels["alertname"].as_str(), said(n)))
            .collect();
        assert_eq!(by_name[TOKEN_DEAD], ["ana:resolved"]);
        assert_eq!(by_name[TOKEN_EXPIRING], ["ana:firing", "ben:firing"]);
        assert!(
            d.alert_views(t0() + 2 * HOUR, &[])
                .iter()
                .all(|v| !v.is_muted())
        );
    }

    #[test]
    fn an_alert_told_before_it_was_inhibited_waits_for_the_repeat() {
        // Alertmanager's rule, kept: un-muting is not news when the receiver was told
        // already; the reminder comes with the repeat interval.
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        assert_eq!(d.flush(t0() + 30 * SEC, &[]).len(), 1);
        let dead = alert(TOKEN_DEAD, "ana", t0() + MIN);
        d.upsert(dead.clone(), t0() + MIN);
        d.upsert(resolved(dead, t0() + HOUR), t0() + HOUR);
        let sent = run_until(&mut d, t0() + 30 * SEC + 4 * HOUR, &[]);
        let expiring: Vec<Timestamp> = sent
            .iter()
            .filter(|(_, n)| n.group_labels["alertname"] == TOKEN_EXPIRING)
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(expiring, [t0() + 30 * SEC + 4 * HOUR]);
    }

    #[test]
    fn every_matching_route_gets_its_own_group() {
        let tree = Route {
            group_by: Some(vec!["alertname".into(), "token".into()]),
            routes: vec![
                Route {
                    receiver: Some("pager".into()),
                    continue_matching: true,
                    group_wait: Some(SignedDuration::ZERO),
                    ..Route::matching(Matchers::parse("alertname=token_dead").unwrap())
                },
                Route {
                    receiver: Some("acme".into()),
                    ..Route::matching(Matchers::parse("token=~\"acme-.*\"").unwrap())
                },
            ],
            ..Route::to("ops")
        };
        let mut d = dispatcher(tree);
        d.upsert(alert(TOKEN_DEAD, "acme-1", t0()), t0());
        let now = d.flush(t0(), &[]);
        assert_eq!(now.len(), 1, "the pager route has no group_wait");
        assert_eq!(now[0].receiver, "pager");
        assert_eq!(
            now[0].group_key,
            "{}/{alertname=\"token_dead\"}:{alertname=\"token_dead\", token=\"acme-1\"}"
        );
        let later = d.flush(t0() + 30 * SEC, &[]);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].receiver, "acme");
        assert_eq!(
            d.alert_views(t0(), &[])[0].receivers,
            ["acme".to_owned(), "pager".to_owned()]
        );
        assert_eq!(d.groups().count(), 2);
    }

    #[test]
    fn an_alert_that_started_long_ago_does_not_wait() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_DEAD, "ana", t0() - HOUR), t0());
        assert_eq!(d.next_wakeup(), Some(t0()));
        assert_eq!(d.flush(t0(), &[]).len(), 1);
    }

    #[test]
    fn a_restart_continues_where_it_stopped() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        assert_eq!(d.flush(t0() + 30 * SEC, &[]).len(), 1);
        let saved = serde_json::to_string(d.state()).unwrap();
        let config = d.config().clone();
        let state: DispatchState = serde_json::from_str(&saved).unwrap();
        let mut again = Dispatcher::restore(config, state, t0() + HOUR);
        assert_eq!(again, d);
        // Not repeated on start, and the repeat is still due on time.
        let sent = run_until(&mut again, t0() + 30 * SEC + 4 * HOUR, &[]);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, t0() + 30 * SEC + 4 * HOUR);
    }

    #[test]
    fn a_new_config_keeps_what_receivers_were_told() {
        let mut d = dispatcher(Route::to("ops"));
        d.upsert(alert(TOKEN_EXPIRING, "ana", t0()), t0());
        d.upsert(alert(TOKEN_DEAD, "ben", t0()), t0());
        assert_eq!(d.flush(t0() + 30 * SEC, &[]).len(), 2);
        // Dead tokens now also page; everything else is as before.
        let tree = RouteTree::new(Route {
            routes: vec![Route {
                receiver: Some("pager".into()),
                continue_matching: true,
                ..Route::matching(Matchers::parse("alertname=token_dead").unwrap())
            }],
            ..Route::to("ops")
        })
        .unwrap();
        d.reconfigure(DispatchConfig::new(tree), t0() + HOUR);
        let sent = run_until(&mut d, t0() + 2 * HOUR, &[]);
        assert_eq!(sent.len(), 1, "only the new pager group speaks");
        assert_eq!(sent[0].1.receiver, "pager");
        // Ben's token has been dead for an hour: the new group does not wait.
        assert_eq!(sent[0].0, t0() + HOUR);
    }

    #[test]
    fn config_reads_from_toml_with_default_inhibition() {
        let config: DispatchConfig =
            toml::from_str("send_resolved = { pager = false }\n[route]\nreceiver = 'ops'\n")
                .unwrap();
        config.validate().unwrap();
        assert_eq!(config.inhibit_rules, default_rules());
        assert!(!config.sends_resolved("pager"));
        assert!(config.sends_resolved("ops"));
        let config: DispatchConfig =
            toml::from_str("inhibit_rules = []\n[route]\nreceiver = 'ops'\n").unwrap();
        assert!(config.inhibit_rules.is_empty());
    }

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Op {
        Fire(usize),
        Resolve(usize),
        Advance(i64),
        Flush,
        FlushAtWakeup,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..NAMES.len() * TOKENS.len()).prop_map(Op::Fire),
            2 => (0..NAMES.len() * TOKENS.len()).prop_map(Op::Resolve),
            2 => (0i64..3_000).prop_map(Op::Advance),
            1 => Just(Op::Flush),
            3 => Just(Op::FlushAtWakeup),
        ]
    }

    const NAMES: [&str; 3] = [TOKEN_DEAD, TOKEN_EXPIRING, "usage_high"];
    const TOKENS: [&str; 2] = ["ana", "ben"];

    fn property_config() -> DispatchConfig {
        let tree = RouteTree::new(Route {
            repeat_interval: Some(HOUR),
            routes: vec![
                Route {
                    receiver: Some("pager".into()),
                    continue_matching: true,
                    group_by: Some(vec!["...".into()]),
                    ..Route::matching(Matchers::parse("alertname=token_dead").unwrap())
                },
                Route {
                    receiver: Some("ana".into()),
                    group_wait: Some(10 * SEC),
                    ..Route::matching(Matchers::parse("token=ana").unwrap())
                },
            ],
            ..Route::to("ops")
        })
        .unwrap();
        let mut config = DispatchConfig::new(tree);
        config.send_resolved.insert("ana".into(), false);
        config
    }

    fn property_silences() -> Vec<Silence> {
        vec![Silence {
            id: "s".into(),
            matchers: Matchers::parse("{alertname=usage_high, token=ben}").unwrap(),
            starts_at: t0() + 1_000 * SEC,
            ends_at: t0() + 5_000 * SEC,
            created_by: "p".into(),
            comment: "c".into(),
        }]
    }

    /// How to carry the dispatcher from one step to the next.
    #[derive(Debug, Clone, Copy)]
    enum Carry {
        InMemory,
        /// Through JSON, the whole dispatcher.
        Json,
        /// Through JSON, the state only, picked up with `restore`.
        Restore,
    }

    fn run(ops: &[Op], carry: Carry) -> (Vec<(Timestamp, Notification)>, Dispatcher) {
        let config = property_config();
        let silences = property_silences();
        let mut d = Dispatcher::new(config.clone());
        let mut now = t0();
        let mut started: Vec<Option<Timestamp>> = vec![None; NAMES.len() * TOKENS.len()];
        let mut out = Vec::new();
        let make = |i: usize, starts: Timestamp| {
            alert(NAMES[i % NAMES.len()], TOKENS[i / NAMES.len()], starts)
        };
        for op in ops {
            match op {
                Op::Fire(i) => {
                    // Rules re-send a firing alert with its original start.
                    let starts = *started[*i].get_or_insert(now);
                    d.upsert(make(*i, starts), now);
                }
                Op::Resolve(i) => {
                    let starts = started[*i].take().unwrap_or(now);
                    d.upsert(resolved(make(*i, starts), now), now);
                }
                Op::Advance(secs) => now += SignedDuration::from_secs(*secs),
                Op::Flush => out.extend(d.flush(now, &silences).into_iter().map(|n| (now, n))),
                Op::FlushAtWakeup => {
                    if let Some(w) = d.next_wakeup() {
                        now = now.max(w);
                    }
                    out.extend(d.flush(now, &silences).into_iter().map(|n| (now, n)));
                }
            }
            d = match carry {
                Carry::InMemory => d,
                Carry::Json => serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap(),
                Carry::Restore => {
                    let json = serde_json::to_string(d.state()).unwrap();
                    Dispatcher::restore(config.clone(), serde_json::from_str(&json).unwrap(), now)
                }
            };
        }
        (out, d)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn a_state_round_trip_after_any_step_changes_nothing(
            ops in proptest::collection::vec(op(), 0..60)
        ) {
            let (plain, end) = run(&ops, Carry::InMemory);
            let (json, json_end) = run(&ops, Carry::Json);
            let (restored, restored_end) = run(&ops, Carry::Restore);
            prop_assert_eq!(&plain, &json);
            prop_assert_eq!(&plain, &restored);
            prop_assert_eq!(&end, &json_end);
            prop_assert_eq!(&end, &restored_end);
        }

        #[test]
        fn notifications_are_paced_and_never_repeat_early(
            ops in proptest::collection::vec(op(), 0..80)
        ) {
            let (sent, _) = run(&ops, Carry::InMemory);
            let mut last: BTreeMap<(String, String), (Timestamp, Vec<String>, bool)> =
                BTreeMap::new();
            for (at, n) in &sent {
                prop_assert!(!n.alerts.is_empty());
                let content: Vec<String> = n
                    .alerts
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.fingerprint, a.status.as_str(), a.starts_at))
                    .collect();
                let firing = n.firing().next().is_some();
                let key = (n.group_key.clone(), n.receiver.clone());
                if let Some((prev_at, prev, prev_firing)) = last.get(&key) {
                    // A group that still held a firing alert lives on, ticking every
                    // group_interval (5m on every route here).
                    if *prev_firing {
                        prop_assert!(*at >= *prev_at + 5 * MIN, "{} too soon", n.group_key);
                    }
                    // The same thing again only after the repeat interval (1h here).
                    if *prev == content {
                        prop_assert!(*at >= *prev_at + HOUR, "{} repeated early", n.group_key);
                    }
                }
                last.insert(key, (*at, content, firing));
            }
        }
    }
}
