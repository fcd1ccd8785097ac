//! The security audit: what the field recommends checking every week, from what graphwarden
//! already knows — the inventory, the last inspections, the proxy's call records and the event
//! log — without calling Meta.
//!
//! [`findings`] is pure: tokens, apps, usage and policy in, findings out, each with a severity,
//! the evidence and the action to take. [`Auditor::run`] gathers the inputs, stores the audit and
//! compares it with the previous one, so a report says what is new and what was resolved.
//! [`render`] turns a report into Markdown or one self-contained HTML page.

pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use graphwarden_core::{TokenKind, TokenStatus};
use graphwarden_store::{App, AuditRecord, ChainReport, Inventory, NewEvent, Token, TokenFilter};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// What the audit holds tokens and apps to.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPolicy {
    /// A token older than this (since it was issued or stored) is due for rotation.
    pub rotation_age: SignedDuration,
    /// A token without calls through the proxy for this long is a revoke candidate.
    pub unused_after: SignedDuration,
    /// An app secret not changed for this long is due for a reset.
    pub app_secret_age: SignedDuration,
    /// Data access lapsing within this is a finding.
    pub data_access_warning: SignedDuration,
    /// The Meta user and system-user ids tokens may act as; empty: not checked.
    pub expected_user_ids: Vec<String>,
    /// The ad accounts, Pages and businesses granular scopes may target; empty: not checked.
    pub expected_targets: Vec<String>,
    /// Calls within `unused_after` by a personal user token that mark it as doing automation.
    pub automation_calls: i64,
}

impl Default for AuditPolicy {
    fn default() -> Self {
        Self {
            rotation_age: SignedDuration::from_hours(24 * 60),
            unused_after: SignedDuration::from_hours(24 * 30),
            app_secret_age: SignedDuration::from_hours(24 * 365),
            data_access_warning: SignedDuration::from_hours(24 * 14),
            expected_user_ids: Vec::new(),
            expected_targets: Vec::new(),
            automation_calls: 100,
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One thing the audit found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    /// What was checked, e.g. `excess_scope` (see docs/operations.md for the list).
    pub rule: String,
    pub severity: Severity,
    /// The token at fault, when it is one.
    #[serde(default)]
    pub alias: Option<String>,
    /// The app at fault, or the token's app.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The scope, id or setting at fault.
    #[serde(default)]
    pub subject: Option<String>,
    pub title: String,
    pub evidence: String,
    pub action: String,
    /// Not in the previous audit.
    #[serde(default)]
    pub new: bool,
}

impl Finding {
    /// What makes a finding the same one in two audits.
    pub fn key(&self) -> (&str, Option<&str>, Option<&str>, Option<&str>) {
        (
            &self.rule,
            self.alias.as_deref(),
            self.app_id.as_deref(),
            self.subject.as_deref(),
        )
    }
}

/// Calls through the proxy by one token, within the policy's `unused_after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCalls {
    pub calls: i64,
    pub last_at: Option<Timestamp>,
}

/// Everything [`findings`] looks at.
#[derive(Debug, Clone)]
pub struct AuditInput<'a> {
    pub tokens: &'a [Token],
    pub apps: &'a [App],
    /// Calls per token alias within `policy.unused_after`.
    pub calls: &'a HashMap<String, TokenCalls>,
    /// Whether the proxy recorded any call in that window (without calls, usage is unknown).
    pub calls_recorded: bool,
    /// The Marketing API access tier per app, from the latest usage headers that named one.
    pub tiers: &'a BTreeMap<String, String>,
    /// The event log's hash chain, when it was checked.
    pub chain: Option<&'a ChainReport>,
    pub now: Timestamp,
    pub policy: &'a AuditPolicy,
}

/// Scopes that let a token change things rather than read them.
fn writes(scope: &str) -> bool {
    scope.contains("manage")
        || scope.starts_with("publish_")
        || matches!(
            scope,
            "ads_management" | "business_management" | "whatsapp_business_messaging"
        )
}

fn days(d: SignedDuration) -> i64 {
    d.as_secs() / 86_400
}

/// Build a finding about a token.
fn about(token: &Token, rule: &str, severity: Severity) -> Finding {
    Finding {
        rule: rule.to_owned(),
        severity,
        alias: Some(token.alias.to_string()),
        app_id: Some(token.app_id.to_string()),
        subject: None,
        title: String::new(),
        evidence: String::new(),
        action: String::new(),
        new: false,
    }
}

impl Finding {
    fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    fn says(
        mut self,
        title: impl Into<String>,
        evidence: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        self.title = title.into();
        self.evidence = evidence.into();
        self.action = action.into();
        self
    }
}

/// Every finding, most severe first.
pub fn findings(input: &AuditInput<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let by_id: HashMap<&str, &Token> = input.tokens.iter().map(|t| (t.id.as_str(), t)).collect();
    if let Some(chain) = input.chain
        && !chain.intact()
    {
        out.push(Finding {
            rule: "event_log_tampered".into(),
            severity: Severity::Critical,
            alias: None,
            app_id: None,
            subject: Some("event_log".into()),
            title: "The event log was tampered with".into(),
            evidence: chain
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            action: "Restore the database from a trusted backup and find out who had write access \
                     to it (`graphwarden events verify` names every problem)."
                .into(),
            new: false,
        });
    }
    for app in input.apps {
        app_findings(app, input, &mut out);
    }
    for token in input.tokens {
        token_findings(token, &by_id, input, &mut out);
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.alias.cmp(&b.alias))
            .then_with(|| a.app_id.cmp(&b.app_id))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
    });
    out
}

fn app_findings(app: &App, input: &AuditInput<'_>, out: &mut Vec<Finding>) {
    let app_finding = |rule: &str, severity| Finding {
        rule: rule.to_owned(),
        severity,
        alias: None,
        app_id: Some(app.app_id.to_string()),
        subject: None,
        title: String::new(),
        evidence: String::new(),
        action: String::new(),
        new: false,
    };
    if !app.approved && app.token_count > 0 {
        out.push(
            app_finding("app_not_approved", Severity::High)
                .subject("approved")
                .says(
                    format!("App {} ({}) is not approved", app.app_id, app.name),
                    format!(
                        "{} stored token(s) use an app not marked approved",
                        app.token_count
                    ),
                    format!(
                        "Confirm the app is yours and approved, then re-register it with \
                         `graphwarden app add {} --approved`; otherwise revoke its tokens.",
                        app.app_id
                    ),
                ),
        );
    }
    let age = app.updated_at.duration_until(input.now);
    if age > input.policy.app_secret_age {
        out.push(
            app_finding("app_secret_old", Severity::Medium)
                .subject("app_secret")
                .says(
                    format!("The secret of app {} is {} days old", app.app_id, days(age)),
                    format!(
                        "stored {}; the policy is {} days",
                        app.updated_at.strftime("%Y-%m-%d"),
                        days(input.policy.app_secret_age)
                    ),
                    "Reset the app secret in the app dashboard (Settings > Basic), store the new \
                     one, and renew the tokens derived with it.",
                ),
        );
    }
    if let Some(tier) = input.tiers.get(app.app_id.as_str())
        && tier != "standard_access"
    {
        out.push(
            app_finding("access_tier", Severity::Info)
                .subject(tier.clone())
                .says(
                    format!("App {} has Marketing API {tier}", app.app_id),
                    "the usage headers of its recent calls report this tier: lower rate limits \
                     (ads_management 60 points per 300 s, blocks of 300 s)",
                    "Apply for Advanced Access to ads_management (standard_access) in the App \
                     Review if the app's traffic needs it.",
                ),
        );
    }
}

fn token_findings(
    token: &Token,
    by_id: &HashMap<&str, &Token>,
    input: &AuditInput<'_>,
    out: &mut Vec<Finding>,
) {
    let policy = input.policy;
    let now = input.now;
    let alias = token.alias.as_str();
    let usable = token.status.is_usable();

    if !usable && token.status != TokenStatus::Unknown {
        out.push(about(token, "dead_token", Severity::Medium).says(
            format!(
                "`{alias}` no longer works ({}) and is still stored",
                token.status
            ),
            if token.status_cause.is_empty() {
                format!("status {}", token.status)
            } else {
                token.status_cause.clone()
            },
            token.status.action(),
        ));
    }

    // The app and the user Meta reports, against what was recorded and expected.
    for flag in &token.flags {
        let rule = if flag.contains("belongs to app") {
            Some(("app_mismatch", Severity::Critical, "app_id"))
        } else if flag.contains("acts as user") {
            Some(("user_changed", Severity::Critical, "user_id"))
        } else {
            None
        };
        if let Some((rule, severity, subject)) = rule {
            out.push(about(token, rule, severity).subject(subject).says(
                format!("`{alias}`: {flag}"),
                "the last inspection (`debug_token`) disagrees with what was recorded",
                "Find out who issued this token; if it is not yours, revoke it \
                 (`graphwarden revoke`) and remove it.",
            ));
        }
    }
    if let Some(user) = &token.meta_user_id
        && !policy.expected_user_ids.is_empty()
        && token.kind != TokenKind::App
        && !policy.expected_user_ids.iter().any(|u| u == user.as_str())
    {
        out.push(
            about(token, "unexpected_user", Severity::High)
                .subject(user.to_string())
                .says(
                    format!("`{alias}` acts as user {user}, who is not on the expected list"),
                    "audit.expected_user_ids does not name this Meta user or system user",
                    "If this is a former employee's or an outsider's token, revoke it; \
                     otherwise add the id to `audit.expected_user_ids`.",
                ),
        );
    }

    // Scopes: beyond the declared needs, and needs not granted.
    if let Some(granted) = &token.scopes
        && usable
    {
        if token.scopes_needed.is_empty() {
            if token.kind != TokenKind::App {
                out.push(about(token, "needs_undeclared", Severity::Low).subject("scopes_needed").says(
                    format!("`{alias}` has no declared needs"),
                    format!("granted: {}", granted.join(", ")),
                    format!(
                        "Declare what it needs (`graphwarden token add … --scopes-needed`) so the \
                         audit can tell excess permission; granted now: {}.",
                        granted.join(",")
                    ),
                ));
            }
        } else {
            let needed: BTreeSet<&str> = token.scopes_needed.iter().map(|s| s.as_str()).collect();
            // `public_profile` comes with every login and grants nothing to act on.
            for scope in granted
                .iter()
                .filter(|s| !needed.contains(s.as_str()) && *s != "public_profile")
            {
                let severity = if writes(scope) {
                    Severity::High
                } else {
                    Severity::Medium
                };
                out.push(about(token, "excess_scope", severity).subject(scope.clone()).says(
                    format!("`{alias}` holds `{scope}`, which its declared needs do not cover"),
                    format!(
                        "needs: {}; granted: {}",
                        token.scopes_needed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                        granted.join(", ")
                    ),
                    format!(
                        "Issue a new token without `{scope}` (least privilege), store it, and \
                         revoke this one{}.",
                        if writes(scope) {
                            "; a reporting token should hold only read scopes"
                        } else {
                            ""
                        }
                    ),
                ));
            }
            for scope in needed.iter().filter(|s| !granted.iter().any(|g| g == *s)) {
                out.push(
                    about(token, "missing_scope", Severity::High)
                        .subject(*scope)
                        .says(
                            format!("`{alias}` lacks `{scope}`, which it is declared to need"),
                            format!("granted: {}", granted.join(", ")),
                            format!(
                                "Calls that need `{scope}` will fail: log in again asking for it \
                         (`graphwarden login {} --scopes …`).",
                                token.app_id
                            ),
                        ),
                );
            }
        }
    }
    if !policy.expected_targets.is_empty()
        && let Some(granular) = &token.granular_scopes
    {
        for g in granular {
            for target in g
                .target_ids
                .iter()
                .filter(|t| !policy.expected_targets.iter().any(|e| e == *t))
            {
                out.push(
                    about(token, "unexpected_target", Severity::High)
                        .subject(format!("{}:{target}", g.scope))
                        .says(
                            format!("`{alias}` reaches {target} through `{}`", g.scope),
                            "the target is not in audit.expected_targets",
                            "Remove the asset from the token's grant (or the system user's \
                             assigned assets), or add it to `audit.expected_targets`.",
                        ),
                );
            }
        }
    }

    // Owner and purpose.
    if token.owner.trim().is_empty() {
        out.push(
            about(token, "no_owner", Severity::Low)
                .subject("owner")
                .says(
                    format!("`{alias}` has no owner"),
                    "nobody is recorded as answering for it",
                    "Record who owns it (`--owner` when storing it).",
                ),
        );
    }
    if token.purpose.trim().is_empty() {
        out.push(
            about(token, "no_purpose", Severity::Low)
                .subject("purpose")
                .says(
                    format!("`{alias}` has no recorded purpose"),
                    "without a purpose, excess permission and disuse cannot be judged",
                    "Record what it is for (`--purpose` when storing it).",
                ),
        );
    }

    // Use, from the proxy's records.
    let calls = input.calls.get(alias).copied().unwrap_or_default();
    let stored_for = token.created_at.duration_until(now);
    if input.calls_recorded && usable && calls.calls == 0 && stored_for > policy.unused_after {
        out.push(about(token, "unused", Severity::Low).subject("last_call").says(
            format!("`{alias}` was not used for {} days", days(policy.unused_after)),
            "no call through the proxy in that time",
            format!("A revoke candidate: `graphwarden revoke {alias} --dry-run` shows what it would break."),
        ));
    }
    if token.kind == TokenKind::User && usable && calls.calls >= policy.automation_calls {
        out.push(
            about(token, "personal_token_automation", Severity::Medium)
                .subject("kind")
                .says(
                    format!("`{alias}` is a personal user token doing automation"),
                    format!(
                        "{} calls through the proxy in {} days",
                        calls.calls,
                        days(policy.unused_after)
                    ),
                    "Use a system-user token for automated work: it does not die with a person's \
             password, session or job (`graphwarden token mint-system-user`).",
                ),
        );
    }

    // Age.
    let issued = token.issued_at.unwrap_or(token.created_at);
    let age = issued.duration_until(now);
    if usable && token.kind != TokenKind::App && age > policy.rotation_age {
        out.push(about(token, "rotation_due", Severity::Medium).subject("age").says(
            format!("`{alias}` is {} days old", days(age)),
            format!(
                "issued {}; the rotation policy is {} days",
                issued.strftime("%Y-%m-%d"),
                days(policy.rotation_age)
            ),
            "Rotate it: issue a fresh token, store it under the same alias, revoke the old one.",
        ));
    }

    // Lineage.
    if let Some(parent_id) = &token.parent_id
        && usable
    {
        match by_id.get(parent_id.as_str()) {
            Some(parent) if !parent.status.is_usable() => {
                out.push(about(token, "parent_dead", Severity::High).subject(parent.alias.to_string()).says(
                    format!("`{alias}` was derived from `{}`, which is {}", parent.alias, parent.status),
                    format!("parent status: {}", parent.status),
                    format!(
                        "Its renewal depends on the parent: revive `{}` (`graphwarden login`), \
                         then derive this token again.",
                        parent.alias
                    ),
                ));
            }
            None => {
                out.push(about(token, "parent_dead", Severity::Medium).subject("parent").says(
                    format!("`{alias}` was derived from a token that is no longer stored"),
                    "its parent was removed",
                    "It cannot be derived again when it dies: store a new parent and derive it from that.",
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(lapse) = token.data_access_expires_at
        && usable
    {
        let left = now.duration_until(lapse);
        if left <= policy.data_access_warning {
            let (severity, title) = if left <= SignedDuration::ZERO {
                (Severity::High, format!("`{alias}` lost data access"))
            } else {
                (
                    Severity::Medium,
                    format!("`{alias}` loses data access in {} days", days(left).max(0)),
                )
            };
            out.push(about(token, "data_access_lapsing", severity).subject("data_access_expires_at").says(
                title,
                format!("data access expires {}", lapse.strftime("%Y-%m-%d %H:%M UTC")),
                format!(
                    "The user must log in again before then: `graphwarden login {} --alias {alias}`.",
                    token.app_id
                ),
            ));
        }
    }
}

/// How many findings of each severity, and what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditSummary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
    pub new: usize,
    pub resolved: usize,
    pub tokens: usize,
    pub apps: usize,
}

/// One stored audit, compared with the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditReport {
    pub id: i64,
    #[schema(value_type = String)]
    pub at: Timestamp,
    pub actor: String,
    pub previous_id: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub previous_at: Option<Timestamp>,
    pub summary: AuditSummary,
    pub findings: Vec<Finding>,
    /// Findings of the previous audit that are gone now.
    pub resolved: Vec<Finding>,
}

/// Mark what is new against `previous` and list what it held that is gone.
pub fn compare(
    mut current: Vec<Finding>,
    previous: Option<&[Finding]>,
) -> (Vec<Finding>, Vec<Finding>) {
    let Some(previous) = previous else {
        current.iter_mut().for_each(|f| f.new = true);
        return (current, Vec::new());
    };
    let before: BTreeSet<_> = previous.iter().map(Finding::key).collect();
    for f in &mut current {
        f.new = !before.contains(&f.key());
    }
    let now: BTreeSet<_> = current.iter().map(Finding::key).collect();
    let resolved = previous
        .iter()
        .filter(|f| !now.contains(&f.key()))
        .cloned()
        .map(|mut f| {
            f.new = false;
            f
        })
        .collect();
    (current, resolved)
}

fn summarize(findings: &[Finding], resolved: usize, tokens: usize, apps: usize) -> AuditSummary {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    AuditSummary {
        critical: count(Severity::Critical),
        high: count(Severity::High),
        medium: count(Severity::Medium),
        low: count(Severity::Low),
        info: count(Severity::Info),
        new: findings.iter().filter(|f| f.new).count(),
        resolved,
        tokens,
        apps,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] graphwarden_store::StoreError),
    #[error("stored audit {id} cannot be read: {detail}")]
    Corrupt { id: i64, detail: String },
}

impl AuditReport {
    fn from_record(
        record: &AuditRecord,
        previous: Option<&AuditRecord>,
    ) -> Result<Self, AuditError> {
        let parse = |r: &AuditRecord| -> Result<Vec<Finding>, AuditError> {
            serde_json::from_value(r.findings.clone()).map_err(|e| AuditError::Corrupt {
                id: r.id,
                detail: e.to_string(),
            })
        };
        let current = parse(record)?;
        let before = previous.map(parse).transpose()?;
        let (findings, resolved) = compare(current, before.as_deref());
        let tokens = record.summary["tokens"].as_u64().unwrap_or(0) as usize;
        let apps = record.summary["apps"].as_u64().unwrap_or(0) as usize;
        Ok(Self {
            id: record.id,
            at: Timestamp::from_millisecond(record.at_ms).unwrap_or(Timestamp::UNIX_EPOCH),
            actor: record.actor.clone(),
            previous_id: previous.map(|p| p.id),
            previous_at: previous.and_then(|p| Timestamp::from_millisecond(p.at_ms).ok()),
            summary: summarize(&findings, resolved.len(), tokens, apps),
            findings,
            resolved,
        })
    }
}

/// Gathers the inputs, runs the audit and stores it.
#[derive(Debug, Clone)]
pub struct Auditor {
    inventory: Arc<Inventory>,
    policy: AuditPolicy,
}

impl Auditor {
    pub fn new(inventory: Arc<Inventory>, policy: AuditPolicy) -> Self {
        Self { inventory, policy }
    }

    /// Audit now, store the result (with an `audit.completed` event naming `actor`), and
    /// compare it with the previous audit.
    pub async fn run(&self, actor: &str) -> Result<AuditReport, AuditError> {
        let inventory = &self.inventory;
        let store = inventory.store();
        let now = inventory.clock().now();
        let tokens = inventory.tokens(&TokenFilter::default()).await?;
        let apps = inventory.apps().await?;
        let since = now
            .checked_sub(self.policy.unused_after)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        // Rollups are per minute: take in the minute the window starts in.
        let since_ms = since.as_millisecond();
        let rollups = store
            .rollups_since(since_ms - since_ms.rem_euclid(60_000))
            .await?;
        let mut calls: HashMap<String, TokenCalls> = HashMap::new();
        for r in &rollups {
            let entry = calls.entry(r.token_alias.clone()).or_default();
            entry.calls += r.calls;
            let at = Timestamp::from_millisecond(r.minute_ms).ok();
            entry.last_at = entry.last_at.max(at);
        }
        let mut tiers = BTreeMap::new();
        // Newest first: the first tier seen per app is the current one.
        for call in store.recent_calls(None, 5_000).await? {
            if let (Some(app), Some(usage)) = (&call.app_id, &call.usage)
                && !tiers.contains_key(&**app)
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(usage)
                && let Some(tier) = find_tier(&json)
            {
                tiers.insert(app.to_string(), tier);
            }
        }
        let chain = inventory.verify_events().await?;
        let found = findings(&AuditInput {
            tokens: &tokens,
            apps: &apps,
            calls: &calls,
            calls_recorded: !rollups.is_empty(),
            tiers: &tiers,
            chain: Some(&chain),
            now,
            policy: &self.policy,
        });
        let previous = store.latest_audit().await?;
        let summary = summarize(&found, 0, tokens.len(), apps.len());
        let findings_json = serde_json::to_value(&found).map_err(|e| AuditError::Corrupt {
            id: 0,
            detail: e.to_string(),
        })?;
        let mut record = AuditRecord {
            id: 0,
            at_ms: now.as_millisecond(),
            actor: actor.to_owned(),
            findings: findings_json,
            summary: serde_json::to_value(&summary).unwrap_or_default(),
        };
        let event = NewEvent {
            at: now.as_millisecond(),
            actor: actor.to_owned(),
            action: "audit.completed",
            token_id: None,
            token_alias: None,
            app_id: None,
            detail: serde_json::json!({
                "findings": found.len(),
                "critical": summary.critical,
                "high": summary.high,
            }),
        };
        record.id = store.insert_audit(&record, &event).await?;
        AuditReport::from_record(&record, previous.as_ref())
    }

    /// The latest stored audit (or the one with `id`), compared with the one before it.
    pub async fn stored(&self, id: Option<i64>) -> Result<Option<AuditReport>, AuditError> {
        let store = self.inventory.store();
        let record = match id {
            Some(id) => store.audit(id).await?,
            None => store.latest_audit().await?,
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let previous = store.audit_before(record.id).await?;
        AuditReport::from_record(&record, previous.as_ref()).map(Some)
    }
}

/// The first `ads_api_access_tier` anywhere in a call's usage values.
fn find_tier(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => map
            .get("ads_api_access_tier")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .or_else(|| map.values().find_map(find_tier)),
        serde_json::Value::Array(items) => items.iter().find_map(find_tier),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphwarden_core::{AppId, Scope, TokenAlias};
    use graphwarden_store::Expiry;

    fn now() -> Timestamp {
        "2026-12-01T12:00:00Z".parse().unwrap()
    }

    fn token(alias: &str) -> Token {
        Token {
            id: format!("id-{alias}"),
            alias: TokenAlias::parse(alias).unwrap(),
            kind: TokenKind::SystemUser,
            app_id: AppId::parse("1234567890").unwrap(),
            hint: "EAAB…abcd".into(),
            meta_user_id: None,
            page_id: None,
            business_id: None,
            parent_id: None,
            parent_alias: None,
            owner: "ops".into(),
            requested_by: String::new(),
            purpose: "reporting".into(),
            scopes_needed: vec![Scope::parse("ads_read").unwrap()],
            tags: Vec::new(),
            created_at: now() - SignedDuration::from_hours(24),
            updated_at: now(),
            status: TokenStatus::Valid,
            status_cause: String::new(),
            expires: Expiry::Never,
            data_access_expires_at: None,
            issued_at: None,
            scopes: Some(vec!["ads_read".into()]),
            granular_scopes: None,
            last_checked_at: None,
            last_used_at: None,
            flags: Vec::new(),
            meta_kind: None,
            pending_since: None,
            renewal_failures: 0,
            lease_until: None,
            renewal_policy: None,
        }
    }

    fn run(tokens: &[Token], calls: &HashMap<String, TokenCalls>, recorded: bool) -> Vec<Finding> {
        findings(&AuditInput {
            tokens,
            apps: &[],
            calls,
            calls_recorded: recorded,
            tiers: &BTreeMap::new(),
            chain: None,
            now: now(),
            policy: &AuditPolicy::default(),
        })
    }

    #[test]
    fn a_well_kept_token_has_no_findings() {
        assert_eq!(run(&[token("fine")], &HashMap::new(), false), vec![]);
    }

    #[test]
    fn write_scopes_beyond_the_needs_are_high_and_read_scopes_medium() {
        let mut t = token("wide");
        t.scopes = Some(vec![
            "ads_read".into(),
            "ads_management".into(),
            "read_insights".into(),
        ]);
        let found = run(&[t], &HashMap::new(), false);
        let severity = |scope: &str| {
            found
                .iter()
                .find(|f| f.subject.as_deref() == Some(scope))
                .map(|f| f.severity)
        };
        assert_eq!(severity("ads_management"), Some(Severity::High));
        assert_eq!(severity("read_insights"), Some(Severity::Medium));
        assert_eq!(
            found[0].subject.as_deref(),
            Some("ads_management"),
            "most severe first"
        );
    }

    #[test]
    fn disuse_is_only_judged_when_the_proxy_recorded_calls() {
        let mut old = token("idle");
        old.created_at = now() - SignedDuration::from_hours(24 * 45);
        let rule = |found: Vec<Finding>| found.iter().any(|f| f.rule == "unused");
        assert!(!rule(run(
            std::slice::from_ref(&old),
            &HashMap::new(),
            false
        )));
        assert!(rule(run(std::slice::from_ref(&old), &HashMap::new(), true)));
        let used = HashMap::from([(
            "idle".to_owned(),
            TokenCalls {
                calls: 1,
                last_at: Some(now()),
            },
        )]);
        assert!(!rule(run(&[old], &used, true)));
    }

    #[test]
    fn dead_tokens_are_not_held_to_live_rules() {
        let mut t = token("gone");
        t.status = TokenStatus::Revoked;
        t.scopes = Some(vec!["ads_management".into()]);
        t.issued_at = Some(now() - SignedDuration::from_hours(24 * 400));
        let found = run(&[t], &HashMap::new(), true);
        assert_eq!(
            found.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(),
            vec!["dead_token"]
        );
    }

    #[test]
    fn compare_marks_new_and_lists_resolved_by_rule_token_and_subject() {
        let f = |rule: &str, alias: &str, subject: &str| Finding {
            rule: rule.into(),
            severity: Severity::Low,
            alias: Some(alias.into()),
            app_id: None,
            subject: Some(subject.into()),
            title: "t".into(),
            evidence: "e".into(),
            action: "a".into(),
            new: false,
        };
        let before = vec![
            f("excess_scope", "a", "ads_management"),
            f("no_owner", "b", "owner"),
        ];
        let now = vec![
            f("excess_scope", "a", "ads_management"),
            f("excess_scope", "a", "business_management"),
        ];
        let (current, resolved) = compare(now.clone(), Some(&before));
        assert_eq!(
            current.iter().map(|f| f.new).collect::<Vec<_>>(),
            vec![false, true]
        );
        assert_eq!(resolved, vec![f("no_owner", "b", "owner")]);
        let (first, none) = compare(now, None);
        assert!(first.iter().all(|f| f.new) && none.is_empty());
    }

    #[test]
    fn the_tier_is_found_wherever_the_usage_names_it() {
        let usage = serde_json::json!({
            "business_use_case": [{"object_id": "1", "ads_api_access_tier": "standard_access"}]
        });
        assert_eq!(find_tier(&usage).as_deref(), Some("standard_access"));
        assert_eq!(
            find_tier(&serde_json::json!({"app": {"call_count": 1}})),
            None
        );
    }
}
