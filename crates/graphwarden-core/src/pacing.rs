//! Pacing calls to Graph on Meta's own usage figures (`meta-graph-reference.md` §8), so callers
//! slow down before Meta throttles them and never prolong a block Meta has started.
//!
//! State is kept per key: the app, the token, the ad account's score, and each business use
//! case (ad account, business or Page, with its type). Below the soft threshold calls flow.
//! Between the soft and the hard threshold calls for that key are spaced out, more the closer
//! it is to the hard one. At the hard threshold, after a throttle error, or while Meta's
//! `estimated_time_to_regain_access` (or an ad account's `reset_time_duration`) runs, the key
//! is held: a call waits if the hold ends within the caller's patience, and is otherwise
//! refused with a Meta-shaped throttle error and a retry time. A hold that came from the
//! percentages alone lets one probe call through when it ends, whose headers say whether the
//! key has cooled; the others keep waiting for that answer. Keys a call does not touch keep
//! flowing. Pure: time is an argument.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::usage::Usage;

/// Thresholds and waits.
#[derive(Debug, Clone, PartialEq)]
pub struct PacingConfig {
    /// Above this percentage, calls for the key are spaced out.
    pub soft_percent: f64,
    /// At or above this percentage, calls for the key are held.
    pub hard_percent: f64,
    /// The spacing just below the hard threshold (it grows linearly from zero at the soft one).
    pub max_spacing: Duration,
    /// How long a key at the hard threshold is held before one probe call may go through.
    pub probe_after: Duration,
    /// How long a key is held after a throttle error that says nothing of when it ends.
    pub throttle_hold: Duration,
}

impl Default for PacingConfig {
    fn default() -> Self {
        Self {
            soft_percent: 75.0,
            hard_percent: 95.0,
            max_spacing: Duration::from_millis(1000),
            probe_after: Duration::from_secs(30),
            throttle_hold: Duration::from_secs(60),
        }
    }
}

/// What pacing state is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum PaceKey {
    /// The app's platform limit (`X-App-Usage`, code 4).
    App { app_id: String },
    /// One token (user-level limits, code 17 and 32; and tokens whose app is not known).
    Token { fingerprint: String },
    /// An ad account's API score (`X-Ad-Account-Usage`, 17/2446079).
    AdAccount { account_id: String },
    /// A business use case of one business object (`X-Business-Use-Case-Usage`, 8000x).
    UseCase { object_id: String, kind: String },
}

impl PaceKey {
    /// The key as one line of text (`app:ID`, `token:FINGERPRINT`, `ad_account:ID`,
    /// `use_case:OBJECT:TYPE`), as stored; [`PaceKey::parse`] reads it back.
    pub fn id(&self) -> String {
        match self {
            Self::App { app_id } => format!("app:{app_id}"),
            Self::Token { fingerprint } => format!("token:{fingerprint}"),
            Self::AdAccount { account_id } => format!("ad_account:{account_id}"),
            Self::UseCase { object_id, kind } => format!("use_case:{object_id}:{kind}"),
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        let (scope, rest) = id.split_once(':')?;
        Some(match scope {
            "app" => Self::App {
                app_id: rest.to_owned(),
            },
            "token" => Self::Token {
                fingerprint: rest.to_owned(),
            },
            "ad_account" => Self::AdAccount {
                account_id: rest.to_owned(),
            },
            "use_case" => {
                let (object_id, kind) = rest.rsplit_once(':')?;
                Self::UseCase {
                    object_id: object_id.to_owned(),
                    kind: kind.to_owned(),
                }
            }
            _ => return None,
        })
    }

    /// The Meta-shaped code and subcode a held call is refused with.
    fn throttle_code(&self) -> (i64, Option<i64>, &'static str) {
        match self {
            Self::App { .. } => (4, None, "(#4) Application request limit reached"),
            Self::Token { .. } => (17, None, "(#17) User request limit reached"),
            Self::AdAccount { .. } => (17, Some(2_446_079), "(#17) User request limit reached"),
            Self::UseCase { kind, .. } => {
                let (code, text) = match kind.as_str() {
                    "ads_insights" | "insights_throttle" => (
                        80000,
                        "(#80000) There have been too many calls from this ad-account.",
                    ),
                    "pages" => (
                        80001,
                        "(#80001) There have been too many calls to this Page account.",
                    ),
                    "instagram" => (
                        80002,
                        "(#80002) There have been too many calls to this Instagram account.",
                    ),
                    "custom_audience" => (
                        80003,
                        "(#80003) There have been too many calls for this custom audience.",
                    ),
                    "leadgen" => (80005, "(#80005) There have been too many leadgen calls."),
                    "messenger" => (80006, "(#80006) There have been too many messenger calls."),
                    "whatsapp_business_management" => {
                        (80008, "(#80008) There have been too many WhatsApp calls.")
                    }
                    "catalog_management" => {
                        (80009, "(#80009) There have been too many catalog calls.")
                    }
                    "catalog_batch" => (
                        80014,
                        "(#80014) There have been too many catalog batch calls.",
                    ),
                    _ => (
                        80004,
                        "(#80004) There have been too many calls to this ad-account.",
                    ),
                };
                (code, Some(2_446_079), text)
            }
        }
    }

    /// How a person would name the key.
    pub fn describe(&self) -> String {
        match self {
            Self::App { app_id } => format!("app {app_id}"),
            Self::Token { .. } => "this token".to_owned(),
            Self::AdAccount { account_id } => format!("ad account act_{account_id}"),
            Self::UseCase { object_id, kind } => format!("{kind} calls of {object_id}"),
        }
    }
}

/// Why a key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldCause {
    /// The usage percentage reached the hard threshold; a probe may test it when the hold ends.
    Usage,
    /// Meta said so: a throttle error or a regain time. Only time ends it.
    Meta,
}

#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    percent: f64,
    observed_ms: i64,
    held_until_ms: i64,
    hold: Option<HoldCause>,
    /// The code Meta throttled with, when a throttle error started the hold.
    meta_code: Option<(i64, Option<i64>)>,
    next_slot_ms: i64,
    /// Changed by an observation here since the last [`Pacer::export`].
    dirty: bool,
}

impl KeyState {
    fn new(now_ms: i64) -> Self {
        Self {
            percent: 0.0,
            observed_ms: now_ms,
            held_until_ms: 0,
            hold: None,
            meta_code: None,
            next_slot_ms: 0,
            dirty: false,
        }
    }
}

/// One key's state as proxy instances sharing a database exchange it: each writes what it
/// observed ([`Pacer::export`]) and merges what the others did ([`Pacer::import`]), so a limit
/// one instance sees holds the calls of all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedKey {
    pub key: PaceKey,
    pub percent: f64,
    /// When the percentage was read (epoch ms).
    pub observed_ms: i64,
    /// Held until then (epoch ms; 0: not held).
    pub held_until_ms: i64,
    pub hold: Option<HoldCause>,
    /// The code and subcode Meta throttled with.
    pub meta_code: Option<(i64, Option<i64>)>,
}

/// A held call's refusal, shaped like Meta's own throttle error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub key: PaceKey,
    pub retry_after: Duration,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
}

/// What to do with a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Go,
    /// Wait this long. With `recheck`, the key was held: ask again after waiting. Without, a
    /// slot was reserved: go after waiting.
    Wait {
        wait: Duration,
        recheck: bool,
    },
    Refuse(Refusal),
}

/// A key's state as metrics and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub key: PaceKey,
    pub percent: f64,
    pub held_for: Option<Duration>,
    pub hold: Option<HoldCause>,
}

/// What a response is about, so its headers land on the right keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub app_id: Option<&'a str>,
    pub token_fingerprint: Option<&'a str>,
    /// The ad account the path names, without `act_`.
    pub ad_account: Option<&'a str>,
    /// The object the path names.
    pub object_id: Option<&'a str>,
    /// The business use case the call counts against (from the path).
    pub use_case: Option<&'a str>,
}

impl Subject<'_> {
    /// The keys a call about this subject must pass.
    pub fn keys(&self) -> Vec<PaceKey> {
        let mut keys = Vec::with_capacity(5);
        if let Some(app_id) = self.app_id {
            keys.push(PaceKey::App {
                app_id: app_id.to_owned(),
            });
        }
        if let Some(fp) = self.token_fingerprint {
            keys.push(PaceKey::Token {
                fingerprint: fp.to_owned(),
            });
        }
        if let Some(account) = self.ad_account {
            keys.push(PaceKey::AdAccount {
                account_id: account.to_owned(),
            });
            let kind = self.use_case.unwrap_or("ads_management");
            keys.push(PaceKey::UseCase {
                object_id: account.to_owned(),
                kind: kind.to_owned(),
            });
            if kind == "ads_insights" {
                keys.push(PaceKey::UseCase {
                    object_id: account.to_owned(),
                    kind: "insights_throttle".to_owned(),
                });
            }
        } else if let Some(object) = self.object_id
            && object.bytes().all(|b| b.is_ascii_digit())
        {
            // A Page's use case is keyed by the Page id.
            keys.push(PaceKey::UseCase {
                object_id: object.to_owned(),
                kind: "pages".to_owned(),
            });
        }
        keys
    }

    fn app_or_token(&self) -> Option<PaceKey> {
        self.app_id
            .map(|a| PaceKey::App {
                app_id: a.to_owned(),
            })
            .or_else(|| self.token_key())
    }

    fn token_key(&self) -> Option<PaceKey> {
        self.token_fingerprint.map(|f| PaceKey::Token {
            fingerprint: f.to_owned(),
        })
    }
}

/// Whether Meta's error code is a throttle (§7.2).
pub fn is_throttle_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 341 | 613 | 80000..=80014)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Keys not observed for this long are forgotten when the table grows large.
const FORGET_AFTER_MS: i64 = 2 * 3600 * 1000;
const MAX_KEYS: usize = 50_000;

/// The pacing state of every key.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacingConfig,
    keys: HashMap<PaceKey, KeyState>,
    /// Keys above the soft threshold (their calls are spaced), kept as keys change.
    hot_keys: usize,
    /// No key is held after this (an upper bound: a hold that ends early leaves it).
    held_max: i64,
}

impl Pacer {
    pub fn new(config: PacingConfig) -> Self {
        Self {
            config,
            keys: HashMap::new(),
            hot_keys: 0,
            held_max: 0,
        }
    }

    pub fn config(&self) -> &PacingConfig {
        &self.config
    }

    /// Whether no key holds or spaces calls now, so that [`Pacer::decide`] would let any call
    /// go: the proxy then does not build a call's keys. Answered from counts kept as keys
    /// change (no scan of the keys).
    pub fn is_calm(&self, now_ms: i64) -> bool {
        now_ms >= self.calm_from()
    }

    /// From when on (ms) the pacer is calm, as it stands: [`Pacer::is_calm`] is
    /// `now_ms >= calm_from()` until the next change. `i64::MAX` while a key spaces calls.
    /// (The proxy mirrors it into an atomic after each change, so that a call need not take
    /// the pacer's lock to learn there is nothing to decide.)
    pub fn calm_from(&self) -> i64 {
        if self.hot_keys == 0 {
            self.held_max
        } else {
            i64::MAX
        }
    }

    /// Count the hot keys and the last hold again, after keys were replaced or forgotten.
    fn recount(&mut self) {
        let soft = self.config.soft_percent;
        self.hot_keys = self.keys.values().filter(|st| st.percent > soft).count();
        self.held_max = self
            .keys
            .values()
            .map(|st| st.held_until_ms)
            .max()
            .unwrap_or(0);
    }

    /// One key's percentage went from `before` to `after` and it is held until `held_until`.
    fn key_changed(&mut self, before: f64, after: f64, held_until: i64) {
        let soft = self.config.soft_percent;
        match (before > soft, after > soft) {
            (false, true) => self.hot_keys += 1,
            (true, false) => self.hot_keys = self.hot_keys.saturating_sub(1),
            _ => {}
        }
        self.held_max = self.held_max.max(held_until);
    }

    /// Decide about a call that must pass `keys`, by a caller willing to wait `patience`.
    pub fn decide(&mut self, now_ms: i64, keys: &[PaceKey], patience: Duration) -> Decision {
        let patience_ms = ms(patience);
        let soft = self.config.soft_percent;
        let hard = self.config.hard_percent.max(soft);
        let mut refusal: Option<Refusal> = None;
        let mut hold_wait: i64 = 0;
        let mut slot_wait: i64 = 0;
        let mut spaced: Vec<&PaceKey> = Vec::new();
        for key in keys {
            let Some(st) = self.keys.get_mut(key) else {
                continue;
            };
            if st.held_until_ms > now_ms {
                let remaining = st.held_until_ms - now_ms;
                if remaining > patience_ms {
                    let (code, subcode, text) = st
                        .meta_code
                        .map(|(c, s)| (c, s, ""))
                        .unwrap_or_else(|| key.throttle_code());
                    let retry_after = Duration::from_millis(u64::try_from(remaining).unwrap_or(0));
                    let worse = refusal.as_ref().is_none_or(|r| r.retry_after < retry_after);
                    if worse {
                        let head = if text.is_empty() {
                            format!("(#{code}) Calls are being throttled.")
                        } else {
                            text.to_owned()
                        };
                        refusal = Some(Refusal {
                            key: key.clone(),
                            retry_after,
                            code,
                            subcode,
                            message: format!(
                                "{head} graphwarden is holding calls for {} for {} more \
                                 seconds, so that Meta's block is not prolonged; retry after \
                                 that.",
                                key.describe(),
                                (remaining + 999) / 1000
                            ),
                        });
                    }
                } else {
                    hold_wait = hold_wait.max(remaining);
                }
                continue;
            }
            if st.percent >= hard && st.hold != Some(HoldCause::Meta) {
                // The hold has ended with no news since: this call is the probe; hold the
                // others until its answer comes back.
                st.held_until_ms = now_ms.saturating_add(ms(self.config.probe_after));
                st.hold = Some(HoldCause::Usage);
                self.held_max = self.held_max.max(st.held_until_ms);
                continue;
            }
            if st.percent > soft {
                spaced.push(key);
            }
        }
        if let Some(r) = refusal {
            return Decision::Refuse(r);
        }
        if hold_wait > 0 {
            return Decision::Wait {
                wait: Duration::from_millis(u64::try_from(hold_wait).unwrap_or(0)),
                recheck: true,
            };
        }
        let span = (hard - soft).max(f64::EPSILON);
        let max_spacing = ms(self.config.max_spacing) as f64;
        let mut reserved: Vec<(PaceKey, i64)> = Vec::new();
        for key in spaced {
            let Some(st) = self.keys.get(key) else {
                continue;
            };
            let fraction = ((st.percent - soft) / span).clamp(0.0, 1.0);
            let spacing = (max_spacing * fraction) as i64;
            let slot = st.next_slot_ms.max(now_ms);
            slot_wait = slot_wait.max(slot - now_ms);
            reserved.push((key.clone(), spacing));
        }
        if slot_wait > patience_ms {
            let key = reserved
                .first()
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| PaceKey::Token {
                    fingerprint: String::new(),
                });
            let (code, subcode, text) = key.throttle_code();
            return Decision::Refuse(Refusal {
                retry_after: Duration::from_millis(u64::try_from(slot_wait).unwrap_or(0)),
                message: format!(
                    "{text} graphwarden is spacing out calls for {} near Meta's limit, and \
                     more are queued than can wait; retry in {} seconds.",
                    key.describe(),
                    (slot_wait + 999) / 1000
                ),
                key,
                code,
                subcode,
            });
        }
        let go_at = now_ms + slot_wait;
        for (key, spacing) in reserved {
            if let Some(st) = self.keys.get_mut(&key) {
                st.next_slot_ms = go_at + spacing;
            }
        }
        if slot_wait > 0 {
            Decision::Wait {
                wait: Duration::from_millis(u64::try_from(slot_wait).unwrap_or(0)),
                recheck: false,
            }
        } else {
            Decision::Go
        }
    }

    fn state(&mut self, key: PaceKey, now_ms: i64) -> &mut KeyState {
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(&key) {
            self.keys.retain(|_, s| {
                now_ms - s.observed_ms < FORGET_AFTER_MS || s.held_until_ms > now_ms
            });
            self.recount();
        }
        self.keys
            .entry(key)
            .or_insert_with(|| KeyState::new(now_ms))
    }

    /// A usage percentage seen for `key`.
    fn percent(&mut self, key: PaceKey, percent: f64, now_ms: i64) {
        let hard = self.config.hard_percent;
        let probe = ms(self.config.probe_after);
        let st = self.state(key, now_ms);
        let before = st.percent;
        st.percent = percent;
        st.observed_ms = now_ms;
        st.dirty = true;
        if percent >= hard {
            if st.held_until_ms <= now_ms || st.hold == Some(HoldCause::Usage) {
                st.held_until_ms = st.held_until_ms.max(now_ms.saturating_add(probe));
                if st.hold != Some(HoldCause::Meta) {
                    st.hold = Some(HoldCause::Usage);
                }
            }
        } else if st.hold == Some(HoldCause::Usage) {
            st.held_until_ms = 0;
            st.hold = None;
        }
        let held_until = st.held_until_ms;
        self.key_changed(before, percent, held_until);
    }

    /// Meta blocked `key` for `wait` (a throttle error, or a regain time).
    fn block(
        &mut self,
        key: PaceKey,
        wait: Duration,
        code: Option<(i64, Option<i64>)>,
        now_ms: i64,
    ) {
        let until = now_ms.saturating_add(ms(wait));
        let st = self.state(key, now_ms);
        st.observed_ms = now_ms;
        st.dirty = true;
        if until > st.held_until_ms || st.hold != Some(HoldCause::Meta) {
            st.held_until_ms = st.held_until_ms.max(until);
        }
        st.hold = Some(HoldCause::Meta);
        if code.is_some() {
            st.meta_code = code;
        }
        let (percent, held_until) = (st.percent, st.held_until_ms);
        self.key_changed(percent, percent, held_until);
    }

    /// Learn from one response (or one batch item): its usage headers and, when it failed,
    /// Meta's error code and subcode.
    pub fn observe(
        &mut self,
        now_ms: i64,
        subject: &Subject<'_>,
        usage: &Usage,
        error: Option<(i64, Option<i64>)>,
    ) {
        let max3 = |a: f64, b: f64, c: f64| a.max(b).max(c);
        if let Some(p) = usage.app.as_ref()
            && let Some(key) = subject.app_or_token()
        {
            self.percent(
                key,
                max3(p.call_count, p.total_cputime, p.total_time),
                now_ms,
            );
        }
        if let Some(p) = usage.page.as_ref()
            && let Some(object) = subject.object_id
        {
            self.percent(
                PaceKey::UseCase {
                    object_id: object.to_owned(),
                    kind: "pages".to_owned(),
                },
                max3(p.call_count, p.total_cputime, p.total_time),
                now_ms,
            );
        }
        if let Some(a) = usage.ad_account.as_ref()
            && let Some(account) = subject.ad_account
        {
            let key = PaceKey::AdAccount {
                account_id: account.to_owned(),
            };
            self.percent(key.clone(), a.acc_id_util_pct, now_ms);
            if a.acc_id_util_pct >= 100.0 && a.reset_time_duration > 0.0 {
                let wait = Duration::from_secs_f64(a.reset_time_duration.min(86_400.0));
                self.block(key, wait, None, now_ms);
            }
        }
        for e in &usage.business_use_case {
            let key = PaceKey::UseCase {
                object_id: e.object_id.trim_start_matches("act_").to_owned(),
                kind: e.kind.clone(),
            };
            self.percent(
                key.clone(),
                max3(e.call_count, e.total_cputime, e.total_time),
                now_ms,
            );
            if e.estimated_time_to_regain_access > 0.0 {
                let wait = Duration::from_secs_f64(
                    (e.estimated_time_to_regain_access * 60.0).min(86_400.0),
                );
                self.block(key, wait, None, now_ms);
            }
        }
        if let Some(i) = usage.insights.as_ref()
            && let Some(account) = subject.ad_account
        {
            self.percent(
                PaceKey::UseCase {
                    object_id: account.to_owned(),
                    kind: "insights_throttle".to_owned(),
                },
                i.acc_id_util_pct,
                now_ms,
            );
        }
        let Some((code, subcode)) = error else {
            return;
        };
        if !is_throttle_code(code) {
            return;
        }
        let wait = usage.regain_wait().unwrap_or(self.config.throttle_hold);
        let key = match code {
            4 | 341 => subject.app_or_token(),
            17 | 613 => subject
                .ad_account
                .map(|a| PaceKey::AdAccount {
                    account_id: a.to_owned(),
                })
                .or_else(|| subject.token_key()),
            32 => subject.token_key(),
            _ => {
                // A business use case: the entry Meta reports blocked, else the path's
                // account or object with the type the code names.
                let kind = match code {
                    80000 => "ads_insights",
                    80001 => "pages",
                    80002 => "instagram",
                    80003 => "custom_audience",
                    80005 => "leadgen",
                    80006 => "messenger",
                    80008 => "whatsapp_business_management",
                    80009 => "catalog_management",
                    80014 => "catalog_batch",
                    _ => "ads_management",
                };
                if usage
                    .business_use_case
                    .iter()
                    .any(|e| e.estimated_time_to_regain_access > 0.0)
                {
                    None
                } else {
                    subject
                        .ad_account
                        .or(subject.object_id)
                        .map(|o| PaceKey::UseCase {
                            object_id: o.to_owned(),
                            kind: kind.to_owned(),
                        })
                }
            }
        };
        if let Some(key) = key {
            self.block(key, wait, Some((code, subcode)), now_ms);
        }
        // The regain times themselves were applied above, per entry.
    }

    /// Every key's state, for metrics and the API.
    /// The keys observations here changed since the last export, for the other instances.
    pub fn export(&mut self) -> Vec<SharedKey> {
        self.keys
            .iter_mut()
            .filter(|(_, st)| st.dirty)
            .map(|(key, st)| {
                st.dirty = false;
                SharedKey {
                    key: key.clone(),
                    percent: st.percent,
                    observed_ms: st.observed_ms,
                    held_until_ms: st.held_until_ms,
                    hold: st.hold,
                    meta_code: st.meta_code,
                }
            })
            .collect()
    }

    /// Merge what other instances observed: a newer percentage replaces an older one (and
    /// ends a hold that came from the percentage alone when it fell below the hard threshold,
    /// as an answer here would); a hold that runs longer than this instance's is taken over,
    /// Meta's own holds winning over usage holds. Imported state is not exported again.
    pub fn import(&mut self, now_ms: i64, shared: &[SharedKey]) {
        let hard = self.config.hard_percent;
        for s in shared {
            if !self.keys.contains_key(&s.key) {
                if self.keys.len() >= MAX_KEYS {
                    continue;
                }
                let mut fresh = KeyState::new(now_ms);
                // Older than anything shared, so the first row always applies (and no
                // arithmetic on it can overflow).
                fresh.observed_ms = 0;
                self.keys.insert(s.key.clone(), fresh);
            }
            let Some(st) = self.keys.get_mut(&s.key) else {
                continue;
            };
            if s.observed_ms > st.observed_ms {
                st.percent = s.percent;
                st.observed_ms = s.observed_ms;
                if s.percent < hard && st.hold == Some(HoldCause::Usage) {
                    st.held_until_ms = 0;
                    st.hold = None;
                }
            }
            if s.held_until_ms > now_ms {
                match s.hold {
                    Some(HoldCause::Meta) => {
                        st.held_until_ms = st.held_until_ms.max(s.held_until_ms);
                        st.hold = Some(HoldCause::Meta);
                        if s.meta_code.is_some() {
                            st.meta_code = s.meta_code;
                        }
                    }
                    Some(HoldCause::Usage)
                        if st.hold != Some(HoldCause::Meta)
                            && (s.percent >= hard || st.percent >= hard) =>
                    {
                        st.held_until_ms = st.held_until_ms.max(s.held_until_ms);
                        st.hold = Some(HoldCause::Usage);
                    }
                    _ => {}
                }
            }
        }
        if !shared.is_empty() {
            self.recount();
        }
    }

    pub fn snapshot(&self, now_ms: i64) -> Vec<KeyView> {
        let mut out: Vec<KeyView> = self
            .keys
            .iter()
            .map(|(key, st)| KeyView {
                key: key.clone(),
                percent: st.percent,
                held_for: (st.held_until_ms > now_ms).then(|| {
                    Duration::from_millis(u64::try_from(st.held_until_ms - now_ms).unwrap_or(0))
                }),
                hold: (st.held_until_ms > now_ms).then_some(st.hold).flatten(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(headers: &[(&str, &str)]) -> Usage {
        Usage::from_headers(headers.iter().copied())
    }

    fn subject() -> Subject<'static> {
        Subject {
            app_id: Some("1"),
            token_fingerprint: Some("fp"),
            ad_account: Some("42"),
            object_id: Some("act_42"),
            use_case: Some("ads_management"),
        }
    }

    const PATIENCE: Duration = Duration::from_secs(5);

    #[test]
    fn below_the_soft_threshold_calls_flow() {
        let mut p = Pacer::new(PacingConfig::default());
        let keys = subject().keys();
        assert_eq!(p.decide(0, &keys, PATIENCE), Decision::Go);
        p.observe(
            0,
            &subject(),
            &usage(&[(
                "x-app-usage",
                r#"{"call_count":50,"total_time":1,"total_cputime":1}"#,
            )]),
            None,
        );
        assert_eq!(p.decide(1, &keys, PATIENCE), Decision::Go);
    }

    #[test]
    fn calm_is_answered_only_while_decide_would_let_every_call_go() {
        let mut p = Pacer::new(PacingConfig::default());
        assert!(p.is_calm(0), "no keys yet");
        let app = |pct: u32| {
            usage(&[(
                "x-app-usage",
                &format!(r#"{{"call_count":{pct},"total_time":1,"total_cputime":1}}"#),
            )])
        };
        p.observe(0, &subject(), &app(50), None);
        assert!(p.is_calm(1), "below the soft threshold");
        p.observe(2, &subject(), &app(80), None);
        assert!(!p.is_calm(3), "above the soft threshold calls are spaced");
        p.observe(4, &subject(), &app(10), None);
        assert!(p.is_calm(5), "back below");
        // A throttle error holds the key for a while, then the pacer is calm again.
        p.observe(10, &subject(), &Usage::default(), Some((4, None)));
        assert!(!p.is_calm(11));
        let held = p.decide(11, &subject().keys(), Duration::ZERO);
        assert!(matches!(held, Decision::Refuse(_)));
        let until = 10 + ms(PacingConfig::default().throttle_hold);
        assert!(!p.is_calm(until - 1));
        assert!(p.is_calm(until));
        assert_eq!(p.decide(until, &subject().keys(), PATIENCE), Decision::Go);
        // Two hot keys: calm only once both are back below.
        let other_app = Subject {
            app_id: Some("2"),
            ..subject()
        };
        p.observe(until + 1, &subject(), &app(80), None);
        p.observe(until + 1, &other_app, &app(80), None);
        p.observe(until + 2, &subject(), &app(10), None);
        assert!(!p.is_calm(until + 3), "the other app is still above");
        p.observe(until + 4, &other_app, &app(10), None);
        assert!(p.is_calm(until + 5));
        // State shared by another instance counts too.
        let mut other = Pacer::new(PacingConfig::default());
        other.observe(20, &subject(), &app(90), None);
        let shared = other.export();
        p.import(21, &shared);
        assert!(!p.is_calm(22));
    }

    #[test]
    fn between_the_thresholds_calls_are_spaced_out() {
        let mut p = Pacer::new(PacingConfig::default());
        let keys = subject().keys();
        // 85 % is half-way from 75 to 95: half a second between calls.
        p.observe(
            0,
            &subject(),
            &usage(&[(
                "x-app-usage",
                r#"{"call_count":85,"total_time":1,"total_cputime":1}"#,
            )]),
            None,
        );
        assert_eq!(p.decide(0, &keys, PATIENCE), Decision::Go);
        assert_eq!(
            p.decide(0, &keys, PATIENCE),
            Decision::Wait {
                wait: Duration::from_millis(500),
                recheck: false
            }
        );
        assert_eq!(
            p.decide(100, &keys, PATIENCE),
            Decision::Wait {
                wait: Duration::from_millis(900),
                recheck: false
            }
        );
        // A queue longer than the caller's patience is refused, not queued further.
        let mut last = Decision::Go;
        for _ in 0..20 {
            last = p.decide(100, &keys, PATIENCE);
        }
        assert!(
            matches!(last, Decision::Refuse(ref r) if r.code == 4),
            "{last:?}"
        );
    }

    #[test]
    fn at_the_hard_threshold_the_key_is_held_then_probed() {
        let mut p = Pacer::new(PacingConfig::default());
        let keys = subject().keys();
        p.observe(
            0,
            &subject(),
            &usage(&[(
                "x-business-use-case-usage",
                r#"{"42":[{"type":"ads_management","call_count":96,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#,
            )]),
            None,
        );
        match p.decide(1000, &keys, PATIENCE) {
            Decision::Refuse(r) => {
                assert_eq!(r.code, 80004);
                assert_eq!(r.subcode, Some(2_446_079));
                assert_eq!(r.retry_after, Duration::from_secs(29));
                assert!(
                    r.message.contains("ads_management calls of 42"),
                    "{}",
                    r.message
                );
            }
            other => panic!("{other:?}"),
        }
        // An insights call to the same account is another use case: it flows.
        let insights = Subject {
            use_case: Some("ads_insights"),
            ..subject()
        };
        assert_eq!(p.decide(1000, &insights.keys(), PATIENCE), Decision::Go);
        // After the hold one probe goes; the next waits for its answer.
        assert_eq!(p.decide(30_001, &keys, PATIENCE), Decision::Go);
        assert!(matches!(
            p.decide(30_002, &keys, PATIENCE),
            Decision::Refuse(_)
        ));
        // The probe's answer says the account cooled down: calls flow again.
        p.observe(
            30_100,
            &subject(),
            &usage(&[(
                "x-business-use-case-usage",
                r#"{"42":[{"type":"ads_management","call_count":20,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#,
            )]),
            None,
        );
        assert_eq!(p.decide(30_101, &keys, PATIENCE), Decision::Go);
    }

    #[test]
    fn a_throttle_error_holds_for_the_regain_time_and_short_holds_are_waited_out() {
        let mut p = Pacer::new(PacingConfig::default());
        let keys = subject().keys();
        p.observe(
            0,
            &subject(),
            &usage(&[(
                "x-business-use-case-usage",
                r#"{"42":[{"type":"ads_management","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":2}]}"#,
            )]),
            Some((80004, Some(2_446_079))),
        );
        match p.decide(0, &keys, PATIENCE) {
            Decision::Refuse(r) => assert_eq!(r.retry_after, Duration::from_secs(120)),
            other => panic!("{other:?}"),
        }
        // A lower percentage does not end a block Meta set: only time does.
        p.observe(
            1000,
            &subject(),
            &usage(&[(
                "x-business-use-case-usage",
                r#"{"42":[{"type":"ads_management","call_count":1,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":0}]}"#,
            )]),
            None,
        );
        assert!(matches!(
            p.decide(1000, &keys, PATIENCE),
            Decision::Refuse(_)
        ));
        assert_eq!(
            p.decide(117_000, &keys, PATIENCE),
            Decision::Wait {
                wait: Duration::from_secs(3),
                recheck: true
            }
        );
        assert_eq!(p.decide(120_000, &keys, PATIENCE), Decision::Go);
    }

    #[test]
    fn instances_share_what_they_observe() {
        let mut a = Pacer::new(PacingConfig::default());
        let mut b = Pacer::new(PacingConfig::default());
        let keys = subject().keys();
        // A sees Meta block the ad account's use case; B, which never saw it, holds too.
        a.observe(
            0,
            &subject(),
            &usage(&[(
                "x-business-use-case-usage",
                r#"{"42":[{"type":"ads_management","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":2}]}"#,
            )]),
            Some((80004, Some(2_446_079))),
        );
        let shared = a.export();
        assert!(!shared.is_empty());
        assert!(a.export().is_empty(), "exported once");
        assert_eq!(b.decide(10, &keys, PATIENCE), Decision::Go);
        b.import(10, &shared);
        match b.decide(10, &keys, PATIENCE) {
            Decision::Refuse(r) => {
                assert_eq!((r.code, r.subcode), (80004, Some(2_446_079)));
                assert!(r.retry_after > Duration::from_secs(100));
            }
            other => panic!("{other:?}"),
        }
        assert!(b.export().is_empty(), "imported state is not sent back");

        // A usage hold from the percentage alone ends on either side when a newer answer
        // says the key cooled.
        let hot = usage(&[(
            "x-app-usage",
            r#"{"call_count":97,"total_time":1,"total_cputime":1}"#,
        )]);
        let cool = usage(&[(
            "x-app-usage",
            r#"{"call_count":20,"total_time":1,"total_cputime":1}"#,
        )]);
        let app = [PaceKey::App { app_id: "1".into() }];
        a.observe(200_000, &subject(), &hot, None);
        b.import(200_000, &a.export());
        assert!(matches!(
            b.decide(200_001, &app, Duration::ZERO),
            Decision::Refuse(_)
        ));
        a.observe(201_000, &subject(), &cool, None);
        b.import(201_000, &a.export());
        assert_eq!(b.decide(201_001, &app, Duration::ZERO), Decision::Go);
        // An older reading never overwrites a newer one.
        b.observe(202_000, &subject(), &hot, None);
        b.import(
            202_000,
            &[SharedKey {
                key: app[0].clone(),
                percent: 10.0,
                observed_ms: 150_000,
                held_until_ms: 0,
                hold: None,
                meta_code: None,
            }],
        );
        assert!(matches!(
            b.decide(202_001, &app, Duration::ZERO),
            Decision::Refuse(_)
        ));
    }

    #[test]
    fn pace_keys_round_trip_as_text() {
        for key in [
            PaceKey::App { app_id: "1".into() },
            PaceKey::Token {
                fingerprint: "abc".into(),
            },
            PaceKey::AdAccount {
                account_id: "42".into(),
            },
            PaceKey::UseCase {
                object_id: "42".into(),
                kind: "ads_management".into(),
            },
        ] {
            assert_eq!(PaceKey::parse(&key.id()), Some(key));
        }
        assert_eq!(PaceKey::parse("nonsense"), None);
        assert_eq!(PaceKey::parse("use_case:nokind"), None);
    }

    #[test]
    fn throttle_codes_land_on_their_keys() {
        let mut p = Pacer::new(PacingConfig::default());
        let none = Usage::default();
        // Code 4: the whole app.
        p.observe(0, &subject(), &none, Some((4, None)));
        let other_account = Subject {
            ad_account: Some("7"),
            object_id: Some("act_7"),
            ..subject()
        };
        assert!(matches!(
            p.decide(0, &other_account.keys(), PATIENCE),
            Decision::Refuse(ref r) if r.code == 4
        ));
        // Another app keeps flowing.
        let other_app = Subject {
            app_id: Some("2"),
            token_fingerprint: Some("fp2"),
            ..subject()
        };
        assert_eq!(p.decide(0, &other_app.keys(), PATIENCE), Decision::Go);
        // Code 17 on an ad account: that account's score.
        let mut p = Pacer::new(PacingConfig::default());
        p.observe(0, &subject(), &none, Some((17, Some(2_446_079))));
        assert!(matches!(
            p.decide(0, &subject().keys(), PATIENCE),
            Decision::Refuse(ref r) if r.code == 17 && r.retry_after == Duration::from_secs(60)
        ));
        assert_eq!(p.decide(0, &other_account.keys(), PATIENCE), Decision::Go);
        // Not a throttle: nothing held.
        let mut p = Pacer::new(PacingConfig::default());
        p.observe(0, &subject(), &none, Some((190, Some(460))));
        assert_eq!(p.decide(0, &subject().keys(), PATIENCE), Decision::Go);
        assert!(p.snapshot(0).is_empty());
    }

    #[test]
    fn an_ad_account_score_at_its_limit_holds_for_its_reset_time() {
        let mut p = Pacer::new(PacingConfig::default());
        p.observe(
            0,
            &subject(),
            &usage(&[(
                "x-ad-account-usage",
                r#"{"acc_id_util_pct":100,"reset_time_duration":300}"#,
            )]),
            None,
        );
        let view = p.snapshot(0);
        let held = view
            .iter()
            .find(|v| matches!(v.key, PaceKey::AdAccount { .. }))
            .unwrap();
        assert_eq!(held.held_for, Some(Duration::from_secs(300)));
        assert_eq!(held.hold, Some(HoldCause::Meta));
    }
}
