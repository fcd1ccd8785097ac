//! Renewal (design.md §2 "Crash-safe renewal"): decide per token, then write ahead — the new
//! secret is stored as *pending* before anything else, verified with `debug_token`, then
//! promoted; the old secret stays until the new one is proven. A crash at any step leaves a
//! valid stored secret, and the next run finishes or rolls back. One renewal per token at a
//! time, across processes and instances (a lease).

use std::sync::Arc;

use graphwarden_core::token::MAX_RENEWAL_FAILURES;
use graphwarden_core::{AppId, Clock, TokenKind, TokenStatus};
use graphwarden_meta::{AppCredentials, Classification, GraphClient, MetaError, assess};
use graphwarden_store::{
    Expiry, Inspection, Inventory, RenewalOverride, StoreError, Token, TokenFilter,
};
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde::Serialize;

use crate::check::inspection_for;

/// Points where a test can make the process die (`GRAPHWARDEN_FAULT_POINT` in the binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPoint {
    /// Meta issued the new token; nothing is stored yet.
    AfterExchange,
    /// The new token is stored as pending.
    AfterStage,
    /// Meta confirmed the pending token.
    AfterVerify,
    /// The pending token replaced the old one.
    AfterPromote,
}

impl FaultPoint {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "after_exchange" => Self::AfterExchange,
            "after_stage" => Self::AfterStage,
            "after_verify" => Self::AfterVerify,
            "after_promote" => Self::AfterPromote,
            _ => return None,
        })
    }
}

/// Called at each fault point; tests make it end the process.
pub type FaultHook = Arc<dyn Fn(FaultPoint) + Send + Sync>;

/// When and how tokens are renewed.
#[derive(Clone)]
pub struct RenewPolicy {
    /// Long-lived user tokens are re-exchanged this long before they expire.
    pub user_window: SignedDuration,
    /// Expiring system-user tokens are refreshed at this fraction of their life.
    pub system_user_fraction: f64,
    /// How long one renewal may hold a token's lease.
    pub lease_ttl: SignedDuration,
    /// Per-app settings (by app id), overriding the ones above; a token's own override wins.
    pub apps: std::collections::HashMap<String, RenewalOverride>,
    pub fault_hook: Option<FaultHook>,
}

/// The settings that apply to one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effective {
    pub enabled: bool,
    pub user_window: SignedDuration,
    pub system_user_fraction: f64,
}

impl RenewPolicy {
    /// Global, then the app's, then the token's own settings.
    pub fn for_token(&self, token: &Token) -> Effective {
        let mut e = Effective {
            enabled: true,
            user_window: self.user_window,
            system_user_fraction: self.system_user_fraction,
        };
        for o in [
            self.apps.get(token.app_id.as_str()),
            token.renewal_policy.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(enabled) = o.enabled {
                e.enabled = enabled;
            }
            if let Some(secs) = o.user_window_secs {
                e.user_window = SignedDuration::from_secs(secs);
            }
            if let Some(f) = o.system_user_fraction {
                e.system_user_fraction = f;
            }
        }
        e
    }
}

impl std::fmt::Debug for RenewPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewPolicy")
            .field("user_window", &self.user_window)
            .field("system_user_fraction", &self.system_user_fraction)
            .field("lease_ttl", &self.lease_ttl)
            .field("apps", &self.apps)
            .field("fault_hook", &self.fault_hook.is_some())
            .finish()
    }
}

impl Default for RenewPolicy {
    fn default() -> Self {
        Self {
            user_window: SignedDuration::from_hours(24 * 14),
            system_user_fraction: 0.75,
            lease_ttl: SignedDuration::from_mins(2),
            apps: std::collections::HashMap::new(),
            fault_hook: None,
        }
    }
}

/// What to do with one token.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    /// `fb_exchange_token` for a (new) long-lived user token.
    Exchange { reason: String },
    /// `fb_exchange_token` with `set_token_expires_in_60_days` (system users).
    Refresh { reason: String },
    /// A new Page token from the parent user token.
    Rederive { reason: String },
    /// Only a new login can help.
    Relogin { reason: String },
    /// Nothing to do now.
    Leave { reason: String },
}

impl Plan {
    pub fn reason(&self) -> &str {
        match self {
            Self::Exchange { reason }
            | Self::Refresh { reason }
            | Self::Rederive { reason }
            | Self::Relogin { reason }
            | Self::Leave { reason } => reason,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Exchange { .. } => "exchange",
            Self::Refresh { .. } => "refresh",
            Self::Rederive { .. } => "rederive",
            Self::Relogin { .. } => "relogin",
            Self::Leave { .. } => "leave",
        }
    }
}

fn days(d: SignedDuration) -> String {
    graphwarden_core::duration::format_duration_short(d)
}

/// Decide what `token` needs at `now` (pure).
pub fn plan(token: &Token, parent: Option<&Token>, now: Timestamp, policy: &RenewPolicy) -> Plan {
    if !token.status.is_usable() {
        return Plan::Relogin {
            reason: format!("the token is {}: {}", token.status, token.status.action()),
        };
    }
    if token.kind == TokenKind::App {
        return Plan::Leave {
            reason: "app tokens do not expire".into(),
        };
    }
    let effective = policy.for_token(token);
    if !effective.enabled {
        return Plan::Leave {
            reason: "renewal is turned off for this token or its app; still inspected".into(),
        };
    }
    let expires_at = match token.expires {
        Expiry::Never => {
            return Plan::Leave {
                reason: "never expires; still inspected".into(),
            };
        }
        Expiry::Unknown => {
            return Plan::Leave {
                reason: "not inspected yet: run `graphwarden check` first".into(),
            };
        }
        Expiry::At(at) => at,
    };
    let left = now.duration_until(expires_at);
    match token.kind {
        TokenKind::User if token.issued_at.is_none() => Plan::Exchange {
            reason: format!("short-lived (expires in {}): exchange for a long-lived token", days(left)),
        },
        TokenKind::User if left <= effective.user_window => Plan::Exchange {
            reason: format!("expires in {}, inside the {} renewal window", days(left), days(effective.user_window)),
        },
        TokenKind::User => Plan::Leave {
            reason: format!("expires in {}; renewal starts {} before", days(left), days(effective.user_window)),
        },
        TokenKind::SystemUser => {
            let issued = token.issued_at.unwrap_or_else(|| expires_at.checked_sub(SignedDuration::from_hours(24 * 60)).unwrap_or(expires_at));
            let life = issued.duration_until(expires_at);
            let due_secs = (life.as_secs() as f64 * effective.system_user_fraction) as i64;
            let due = issued.checked_add(SignedDuration::from_secs(due_secs)).unwrap_or(expires_at);
            if now >= due {
                Plan::Refresh {
                    reason: format!("{:.0} % of its life has passed (expires in {})", effective.system_user_fraction * 100.0, days(left)),
                }
            } else {
                Plan::Leave {
                    reason: format!("refresh due in {}", days(now.duration_until(due))),
                }
            }
        }
        TokenKind::Page => match parent {
            Some(p) if p.status.is_usable() => Plan::Rederive {
                reason: format!("expires in {}: derive it again from `{}`", days(left), p.alias),
            },
            Some(p) => Plan::Relogin {
                reason: format!("its parent `{}` is {}", p.alias, p.status),
            },
            None => Plan::Relogin {
                reason: "an expiring Page token with no recorded parent: store the user token it came from with `--parent`, or log in again".into(),
            },
        },
        TokenKind::App => Plan::Leave { reason: "app tokens do not expire".into() },
    }
}

/// What happened to one token.
#[derive(Debug, Clone, Serialize)]
pub struct Renewal {
    pub alias: String,
    pub plan: Plan,
    /// `renewed`, `finished`, `planned`, `skipped`, `relogin`, `failed`.
    pub outcome: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RenewReport {
    pub tokens: Vec<Renewal>,
}

impl RenewReport {
    /// 0 all done or nothing to do; 1 some failed for now; 2 some need a login.
    pub fn exit_code(&self) -> u8 {
        if self.tokens.iter().any(|r| r.outcome == "relogin") {
            2
        } else if self.tokens.iter().any(|r| r.outcome == "failed") {
            1
        } else {
            0
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renews tokens of one inventory.
#[derive(Debug, Clone)]
pub struct Renewer {
    inventory: Arc<Inventory>,
    graph: GraphClient,
    clock: Arc<dyn Clock>,
    policy: RenewPolicy,
    warning_window: SignedDuration,
    owner: String,
}

enum Step {
    Done(String),
    Failed(String),
    Relogin(String),
}

impl Step {
    /// The report's outcome word and detail.
    fn outcome(self) -> (&'static str, String) {
        match self {
            Self::Done(d) => ("renewed", d),
            Self::Failed(d) => ("failed", d),
            Self::Relogin(d) => ("relogin", d),
        }
    }
}

impl Renewer {
    pub fn new(
        inventory: Arc<Inventory>,
        graph: GraphClient,
        clock: Arc<dyn Clock>,
        policy: RenewPolicy,
        warning_window: SignedDuration,
        owner: String,
    ) -> Self {
        Self {
            inventory,
            graph,
            clock,
            policy,
            warning_window,
            owner,
        }
    }

    fn fault(&self, point: FaultPoint) {
        if let Some(hook) = &self.policy.fault_hook {
            hook(point);
        }
    }

    async fn credentials(&self, app_id: &AppId) -> Result<AppCredentials, StoreError> {
        Ok(AppCredentials {
            app_id: app_id.to_string(),
            secret: self.inventory.app_secret(app_id).await?,
        })
    }

    async fn parent_of(&self, token: &Token) -> Result<Option<Token>, StoreError> {
        match &token.parent_alias {
            Some(alias) => match self.inventory.token(alias).await {
                Ok(t) => Ok(Some(t)),
                Err(StoreError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    /// Plan (and unless `dry_run`, carry out) renewal of `tokens`; pending renewals left by a
    /// crash are finished first. `force_exchange` turns a `Leave` into what the kind allows now:
    /// an exchange (user), a refresh (60-day system user), a new derivation (Page, from a live
    /// parent); never-expiring system-user and app tokens are left alone.
    pub async fn renew(
        &self,
        tokens: Vec<Token>,
        dry_run: bool,
        force_exchange: bool,
        actor: &str,
    ) -> Result<RenewReport, RenewError> {
        let mut report = RenewReport::default();
        let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
        // Parents first, so Page tokens derived from a renewed user token go along with it.
        let mut tokens = tokens;
        tokens.sort_by(|a, b| {
            a.parent_id
                .is_some()
                .cmp(&b.parent_id.is_some())
                .then_with(|| a.alias.cmp(&b.alias))
        });
        for token in tokens {
            if done.contains(&token.id) {
                continue;
            }
            let token = self.inventory.token(&token.alias).await?;
            if token.pending_since.is_some() && !dry_run {
                let detail = self.finish_pending(&token, actor).await?;
                report.tokens.push(Renewal {
                    alias: token.alias.to_string(),
                    plan: Plan::Leave {
                        reason: "an interrupted renewal was waiting".into(),
                    },
                    outcome: "finished",
                    detail,
                });
                done.insert(token.id.clone());
                continue;
            }
            let parent = self.parent_of(&token).await?;
            let mut plan = plan(&token, parent.as_ref(), self.clock.now(), &self.policy);
            if force_exchange && matches!(plan, Plan::Leave { .. }) && token.status.is_usable() {
                plan = match token.kind {
                    TokenKind::User => Plan::Exchange {
                        reason: "asked for".into(),
                    },
                    TokenKind::SystemUser if matches!(token.expires, Expiry::At(_)) => {
                        Plan::Refresh {
                            reason: "asked for".into(),
                        }
                    }
                    TokenKind::Page if parent.as_ref().is_some_and(|p| p.status.is_usable()) => {
                        Plan::Rederive {
                            reason: "asked for".into(),
                        }
                    }
                    _ => plan,
                };
            }
            let (outcome, detail) = match (&plan, dry_run) {
                (Plan::Leave { reason }, _) => ("skipped", reason.clone()),
                (Plan::Relogin { reason }, _) => ("relogin", reason.clone()),
                (_, true) => (
                    "planned",
                    format!("would {}: {}", plan.name(), plan.reason()),
                ),
                (_, false) => self
                    .carry_out(&token, &plan, parent.as_ref(), actor)
                    .await?
                    .outcome(),
            };
            done.insert(token.id.clone());
            report.tokens.push(Renewal {
                alias: token.alias.to_string(),
                plan: plan.clone(),
                outcome,
                detail,
            });
            // A renewed user token takes its Page tokens along (§3.4).
            if outcome == "renewed" && token.kind == TokenKind::User {
                let fresh_parent = self.inventory.token(&token.alias).await?;
                for child in self.inventory.children(&token).await? {
                    if child.kind != TokenKind::Page || done.contains(&child.id) {
                        continue;
                    }
                    let child_plan = Plan::Rederive {
                        reason: format!("its parent `{}` was renewed", token.alias),
                    };
                    let step = self
                        .carry_out(&child, &child_plan, Some(&fresh_parent), actor)
                        .await?;
                    let (outcome, detail) = step.outcome();
                    done.insert(child.id.clone());
                    report.tokens.push(Renewal {
                        alias: child.alias.to_string(),
                        plan: child_plan,
                        outcome,
                        detail,
                    });
                }
            }
        }
        Ok(report)
    }

    /// Renew every stored token that needs it (and finish interrupted renewals).
    pub async fn renew_all(&self, dry_run: bool, actor: &str) -> Result<RenewReport, RenewError> {
        let tokens = self.inventory.tokens(&TokenFilter::default()).await?;
        self.renew(tokens, dry_run, false, actor).await
    }

    /// A pending secret left by an interrupted renewal: promote it if Meta confirms it,
    /// discard it if Meta rejects it, keep it if Meta cannot be asked.
    async fn finish_pending(&self, token: &Token, actor: &str) -> Result<String, StoreError> {
        let Some(pending) = self.inventory.pending_secret(token).await? else {
            return Ok("nothing was pending".into());
        };
        let app = self.credentials(&token.app_id).await?;
        match self.graph.debug_token(&pending, &app).await {
            Ok((data, _)) if data.is_valid => {
                self.inventory
                    .promote_renewal(
                        token,
                        serde_json::json!({ "finished_after_interruption": true }),
                        actor,
                    )
                    .await?;
                let fresh = self.inventory.token(&token.alias).await?;
                let a = assess(&data, self.clock.now(), self.warning_window);
                self.inventory
                    .record_inspection(&fresh, inspection_for(&fresh, &a, self.clock.now()), actor)
                    .await?;
                Ok("finished an interrupted renewal: Meta confirmed the new token, which now replaces the old one".into())
            }
            Ok((data, _)) => {
                let why = data
                    .error
                    .map(|e| e.message)
                    .unwrap_or_else(|| "not valid".into());
                self.inventory.discard_renewal(token, &why, actor).await?;
                Ok(format!(
                    "discarded an interrupted renewal: Meta rejects the new token ({why}); the old one stays"
                ))
            }
            Err(e) => Ok(format!("an interrupted renewal is still pending: {e}")),
        }
    }

    async fn carry_out(
        &self,
        token: &Token,
        plan: &Plan,
        parent: Option<&Token>,
        actor: &str,
    ) -> Result<Step, StoreError> {
        if !self
            .inventory
            .acquire_renewal_lease(token, &self.owner, self.policy.lease_ttl)
            .await?
        {
            return Ok(Step::Failed(
                "another renewal of this token is in progress".into(),
            ));
        }
        let result = self.carry_out_leased(token, plan, parent, actor).await;
        // Promotion releases the lease itself; on every other path give it back.
        let _ = self
            .inventory
            .release_renewal_lease(token, &self.owner)
            .await;
        result
    }

    async fn carry_out_leased(
        &self,
        token: &Token,
        plan: &Plan,
        parent: Option<&Token>,
        actor: &str,
    ) -> Result<Step, StoreError> {
        let app = self.credentials(&token.app_id).await?;
        let issued = match plan {
            Plan::Exchange { .. } | Plan::Refresh { .. } => {
                let old = self.inventory.open_token_secret(&token.alias).await?;
                self.graph
                    .exchange(&old, &app, matches!(plan, Plan::Refresh { .. }))
                    .await
                    .map(|i| i.token)
            }
            Plan::Rederive { .. } => {
                let Some(parent) = parent else {
                    return Ok(Step::Relogin("no parent token to derive from".into()));
                };
                let Some(page_id) = token.page_id.as_ref() else {
                    return Ok(Step::Relogin(
                        "the Page id is not recorded: run `graphwarden check` first".into(),
                    ));
                };
                let parent_secret = self.inventory.open_token_secret(&parent.alias).await?;
                match self.graph.accounts(&parent_secret, &app).await {
                    Ok(pages) => match pages.into_iter().find(|p| p.id == page_id.as_str()) {
                        Some(p) => Ok(p.access_token),
                        None => {
                            return Ok(Step::Relogin(format!(
                                "`{}` no longer lists Page {page_id}: the role on the Page is gone",
                                parent.alias
                            )));
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            Plan::Relogin { reason } => return Ok(Step::Relogin(reason.clone())),
            Plan::Leave { reason } => return Ok(Step::Done(reason.clone())),
        };
        let new_secret: SecretString = match issued {
            Ok(s) => s,
            Err(e) => return self.failed(token, &e, actor).await,
        };
        self.fault(FaultPoint::AfterExchange);
        self.install_leased(token, &new_secret, plan.name(), plan.reason(), &app, actor)
            .await
    }

    /// Replace `token`'s secret with `new_secret` the crash-safe way (stage, verify, promote),
    /// for a login or a derivation that produced it outside a renewal plan.
    pub async fn replace_secret(
        &self,
        token: &Token,
        new_secret: &SecretString,
        how: &str,
        actor: &str,
    ) -> Result<Result<String, String>, StoreError> {
        if !self
            .inventory
            .acquire_renewal_lease(token, &self.owner, self.policy.lease_ttl)
            .await?
        {
            return Ok(Err("another renewal of this token is in progress".into()));
        }
        let app = self.credentials(&token.app_id).await?;
        let step = self
            .install_leased(token, new_secret, how, how, &app, actor)
            .await;
        let _ = self
            .inventory
            .release_renewal_lease(token, &self.owner)
            .await;
        Ok(match step? {
            Step::Done(d) => Ok(d),
            Step::Failed(d) | Step::Relogin(d) => Err(d),
        })
    }

    async fn install_leased(
        &self,
        token: &Token,
        new_secret: &SecretString,
        how: &str,
        reason: &str,
        app: &AppCredentials,
        actor: &str,
    ) -> Result<Step, StoreError> {
        // Meta may hand back the token already held (Page tokens are reused): nothing to replace.
        if self.inventory.holds_secret(token, new_secret).await? {
            return Ok(Step::Done("Meta returned the token already stored".into()));
        }
        match self
            .inventory
            .stage_renewal(token, &self.owner, new_secret, how, actor)
            .await
        {
            Ok(()) => {}
            // Meta handed back a token we already hold (a reused Page token): nothing to replace.
            Err(StoreError::DuplicateToken { alias }) if alias == token.alias.as_str() => {
                return Ok(Step::Done("Meta returned the token already stored".into()));
            }
            Err(e) => return Err(e),
        }
        self.fault(FaultPoint::AfterStage);
        let (data, _) = match self.graph.debug_token(new_secret, app).await {
            Ok(answer) => answer,
            // Leave the pending secret: the next run proves or discards it.
            Err(e) => {
                return Ok(Step::Failed(format!(
                    "the new token waits to be verified ({e})"
                )));
            }
        };
        if !data.is_valid
            || data
                .app_id
                .as_deref()
                .is_some_and(|a| a != token.app_id.as_str())
        {
            let why = data
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_else(|| "not valid for this app".into());
            self.inventory.discard_renewal(token, &why, actor).await?;
            let failures = self.inventory.renewal_failed(token, &why, actor).await?;
            return Ok(Step::Failed(format!(
                "Meta rejects the new token ({why}); attempt {failures}"
            )));
        }
        self.fault(FaultPoint::AfterVerify);
        self.inventory
            .promote_renewal(
                token,
                serde_json::json!({ "how": how, "reason": reason }),
                actor,
            )
            .await?;
        self.fault(FaultPoint::AfterPromote);
        let fresh = self.inventory.token(&token.alias).await?;
        let now = self.clock.now();
        let a = assess(&data, now, self.warning_window);
        self.inventory
            .record_inspection(&fresh, inspection_for(&fresh, &a, now), actor)
            .await?;
        let expiry = match a.expires_at {
            Some(at) => format!("expires {}", at.strftime("%Y-%m-%d")),
            None => "never expires".into(),
        };
        Ok(Step::Done(format!(
            "{how}: new token {} ({expiry})",
            fresh.hint
        )))
    }

    /// A failed Graph call: dead tokens need a login; anything else counts toward
    /// `needs_attention`.
    async fn failed(
        &self,
        token: &Token,
        err: &MetaError,
        actor: &str,
    ) -> Result<Step, StoreError> {
        match err.class() {
            Classification::TokenDead { status } | Classification::NeedsUserAction { status } => {
                let inspection = Inspection::status_only(
                    status,
                    err.to_string(),
                    self.clock.now(),
                    token.flags.clone(),
                );
                self.inventory
                    .record_inspection(token, inspection, actor)
                    .await?;
                Ok(Step::Relogin(format!(
                    "Meta refused to renew it: {err}. {}",
                    status.action()
                )))
            }
            _ => {
                let failures = self
                    .inventory
                    .renewal_failed(token, &err.to_string(), actor)
                    .await?;
                if failures >= MAX_RENEWAL_FAILURES {
                    let inspection = Inspection::status_only(
                        TokenStatus::NeedsAttention,
                        format!("renewal failed {failures} times in a row; last: {err}"),
                        self.clock.now(),
                        token.flags.clone(),
                    );
                    self.inventory
                        .record_inspection(token, inspection, actor)
                        .await?;
                }
                Ok(Step::Failed(format!(
                    "{err} (attempt {failures}; {})",
                    err.class().action()
                )))
            }
        }
    }
}
