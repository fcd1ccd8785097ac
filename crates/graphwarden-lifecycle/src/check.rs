//! Inspection: `debug_token` for every token, batched up to 50 a request with the app token,
//! bounded concurrency, pacing on the usage headers, and the results written to the store with
//! an event for each change (design.md §2 token state machine).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, Clock, MetaId, TokenKind, TokenStatus};
use graphwarden_meta::{
    AppCredentials, Assessment, Classification, DebugData, GraphClient, MAX_BATCH, MetaError,
    assess,
};
use graphwarden_store::{
    Expiry, GranularScope, Inspection, InspectionDetails, Inventory, StoreError, Token,
};
use jiff::SignedDuration;
use secrecy::SecretString;
use serde::Serialize;

/// How inspection behaves.
#[derive(Debug, Clone)]
pub struct CheckPolicy {
    /// An expiry or data-access lapse this close is a warning.
    pub warning_window: SignedDuration,
    /// Batches in flight at once.
    pub concurrency: usize,
    /// Above this usage percentage, batches are spread out.
    pub pace_above_percent: f64,
    /// The longest a throttle is waited out; beyond it the rest of the round is `unknown`.
    pub max_wait: Duration,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            warning_window: SignedDuration::from_hours(24 * 7),
            concurrency: 4,
            pace_above_percent: 75.0,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// How much attention a token needs; the exit code of `graphwarden check` is the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

impl Severity {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
        }
    }
}

/// One token after the round.
#[derive(Debug, Clone)]
pub struct Checked {
    pub token: Token,
    pub severity: Severity,
    /// Why it is a warning, when it is one.
    pub warning: Option<String>,
    /// Whether Meta answered for this token this round.
    pub inspected: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Most urgent first.
    pub tokens: Vec<Checked>,
    /// Graph requests made (batches count once).
    pub requests: usize,
    /// The API version Meta answered with (`facebook-api-version`).
    pub api_version: Option<String>,
}

impl CheckReport {
    pub fn severity(&self) -> Severity {
        self.tokens
            .iter()
            .map(|t| t.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs inspections against one inventory.
#[derive(Debug, Clone)]
pub struct Checker {
    inventory: Arc<Inventory>,
    graph: GraphClient,
    clock: Arc<dyn Clock>,
    policy: CheckPolicy,
}

/// The severity of a status, before warnings.
fn base_severity(status: TokenStatus) -> Severity {
    match status {
        TokenStatus::Valid => Severity::Ok,
        TokenStatus::Expiring | TokenStatus::Unknown => Severity::Warning,
        _ => Severity::Critical,
    }
}

/// Whether Meta's type fits the recorded kind.
fn kind_fits(kind: TokenKind, meta: &str) -> bool {
    matches!(
        (kind, meta),
        (TokenKind::User | TokenKind::SystemUser, "USER")
            | (TokenKind::Page, "PAGE")
            | (TokenKind::App, "APP")
    )
}

/// The kind Meta's type suggests (system users report `USER`).
pub fn kind_from_meta(meta: &str) -> Option<TokenKind> {
    match meta {
        "USER" => Some(TokenKind::User),
        "PAGE" => Some(TokenKind::Page),
        "APP" => Some(TokenKind::App),
        _ => None,
    }
}

/// Ask Meta about one token that is not stored yet (for `token add`).
pub async fn probe(
    graph: &GraphClient,
    secret: &SecretString,
    app: &AppCredentials,
    now: jiff::Timestamp,
    window: SignedDuration,
) -> Result<(DebugData, Assessment), MetaError> {
    let (data, _) = graph.debug_token(secret, app).await?;
    let assessment = assess(&data, now, window);
    Ok((data, assessment))
}

/// The store's form of an assessment, with discrepancy flags against what is recorded.
pub fn inspection_for(token: &Token, a: &Assessment, checked_at: jiff::Timestamp) -> Inspection {
    let mut flags = Vec::new();
    if let Some(app) = &a.app_id
        && app != token.app_id.as_str()
    {
        flags.push(format!(
            "Meta says the token belongs to app {app}, not {}",
            token.app_id
        ));
    }
    let recorded_user = match token.kind {
        TokenKind::Page | TokenKind::User | TokenKind::SystemUser => token.meta_user_id.as_ref(),
        TokenKind::App => None,
    };
    if let (Some(recorded), Some(seen)) = (recorded_user, &a.user_id)
        && recorded.as_str() != seen
    {
        flags.push(format!(
            "Meta says the token acts as user {seen}, not {recorded}"
        ));
    }
    if let Some(meta) = &a.meta_kind
        && !kind_fits(token.kind, meta)
    {
        flags.push(format!(
            "Meta reports a {meta} token, recorded as {}",
            token.kind
        ));
    }
    if let (Some(recorded), Some(seen)) = (&token.page_id, &a.profile_id)
        && recorded.as_str() != seen
    {
        flags.push(format!(
            "Meta says the token is for Page {seen}, not {recorded}"
        ));
    }
    // Renewal that keeps failing outranks "valid": someone must look before it expires.
    let (status, cause) = if a.status.is_usable()
        && token.renewal_failures >= graphwarden_core::token::MAX_RENEWAL_FAILURES
    {
        (
            TokenStatus::NeedsAttention,
            format!(
                "renewal failed {} times in a row (see `graphwarden token events {}`)",
                token.renewal_failures, token.alias
            ),
        )
    } else {
        (a.status, a.cause.clone())
    };
    Inspection {
        status,
        cause,
        checked_at,
        details: Some(InspectionDetails {
            expires: a.expires_at.map_or(Expiry::Never, Expiry::At),
            data_access_expires_at: a.data_access_expires_at,
            issued_at: a.issued_at,
            scopes: a.scopes.clone(),
            granular_scopes: a
                .granular_scopes
                .iter()
                .map(|g| GranularScope {
                    scope: g.scope.clone(),
                    target_ids: g.target_ids.clone(),
                })
                .collect(),
            meta_kind: a.meta_kind.clone(),
            meta_user_id: a.user_id.as_deref().and_then(|u| MetaId::parse(u).ok()),
            page_id: a.profile_id.as_deref().and_then(|p| MetaId::parse(p).ok()),
        }),
        flags,
    }
}

/// What a failed Graph call means for a token this round: `unknown`, with the reason.
fn unknown_for(err: &MetaError, app_id: &AppId) -> Inspection {
    let cause = match err.class() {
        Classification::AppConfiguration => format!(
            "could not check: Meta rejects the stored credentials of app {app_id} ({err}); if the app secret was reset, store the new one with `graphwarden app add`"
        ),
        Classification::Throttled { wait } => format!(
            "could not check: Meta is rate-limiting app {app_id}{}",
            wait.map(|w| format!(" for about {} min", w.as_secs().div_ceil(60)))
                .unwrap_or_default()
        ),
        _ => format!("could not check: {err}"),
    };
    Inspection {
        status: TokenStatus::Unknown,
        cause,
        checked_at: jiff::Timestamp::UNIX_EPOCH,
        details: None,
        flags: Vec::new(),
    }
}

impl Checker {
    pub fn new(
        inventory: Arc<Inventory>,
        graph: GraphClient,
        clock: Arc<dyn Clock>,
        policy: CheckPolicy,
    ) -> Self {
        Self {
            inventory,
            graph,
            clock,
            policy,
        }
    }

    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }

    pub fn policy(&self) -> &CheckPolicy {
        &self.policy
    }

    async fn credentials(&self, app_id: &AppId) -> Result<AppCredentials, StoreError> {
        Ok(AppCredentials {
            app_id: app_id.to_string(),
            secret: self.inventory.app_secret(app_id).await?,
        })
    }

    /// Inspect `tokens`: batches run `concurrency` at a time, and each batch's results are
    /// written in one transaction as soon as it answers, so memory and commits stay bounded
    /// whatever the size of the inventory.
    pub async fn check(
        &self,
        tokens: Vec<Token>,
        actor: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<CheckReport, CheckError> {
        let total = tokens.len();
        let checked_ids: HashSet<String> = tokens.iter().map(|t| t.id.clone()).collect();
        let mut by_app: BTreeMap<AppId, Vec<Token>> = BTreeMap::new();
        for t in tokens {
            by_app.entry(t.app_id.clone()).or_default().push(t);
        }
        let mut chunks: Vec<(AppCredentials, Vec<Token>)> = Vec::new();
        for (app_id, tokens) in by_app {
            let creds = self.credentials(&app_id).await?;
            let mut tokens = tokens.into_iter();
            loop {
                let chunk: Vec<Token> = tokens.by_ref().take(MAX_BATCH).collect();
                if chunk.is_empty() {
                    break;
                }
                chunks.push((creds.clone(), chunk));
            }
        }
        let mut chunks = chunks.into_iter();
        let mut jobs = tokio::task::JoinSet::new();
        let spawn = |jobs: &mut tokio::task::JoinSet<_>,
                     next: Option<(AppCredentials, Vec<Token>)>| {
            if let Some((creds, chunk)) = next {
                let this = self.clone();
                jobs.spawn(async move {
                    let app_id = chunk[0].app_id.clone();
                    this.inspect_batch(&app_id, &creds, chunk).await
                });
            }
        };
        for _ in 0..self.policy.concurrency.max(1) {
            spawn(&mut jobs, chunks.next());
        }
        let mut report = CheckReport {
            tokens: Vec::with_capacity(total),
            requests: 0,
            api_version: None,
        };
        let mut done = 0;
        while let Some(joined) = jobs.join_next().await {
            spawn(&mut jobs, chunks.next());
            let Ok((batch, calls)) = joined else {
                continue;
            };
            report.requests += calls;
            done += batch.len();
            let checked = self.record_batch(batch, &checked_ids, actor).await?;
            report.tokens.extend(checked);
            progress(done, total);
        }
        report.api_version = self.graph.last_api_version();
        report.tokens.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| expiry_key(&a.token).cmp(&expiry_key(&b.token)))
                .then_with(|| a.token.alias.cmp(&b.token.alias))
        });
        Ok(report)
    }

    /// Write one batch's results in one transaction and report the tokens as they now read.
    async fn record_batch(
        &self,
        batch: Vec<(Token, Result<Assessment, MetaError>)>,
        checked_ids: &HashSet<String>,
        actor: &str,
    ) -> Result<Vec<Checked>, StoreError> {
        let now = self.clock.now();
        let mut rows = Vec::with_capacity(batch.len());
        for (token, answer) in batch {
            let (inspection, warning, inspected) = match &answer {
                Ok(a) => (inspection_for(&token, a, now), a.warning.clone(), true),
                // The stored app secret is refused: app tokens are built from it, so they are
                // the ones the reset killed; the rest cannot be checked until it is replaced.
                Err(e)
                    if token.kind == TokenKind::App
                        && e.class() == Classification::AppConfiguration =>
                {
                    (
                        Inspection::status_only(
                            TokenStatus::AppSecretReset,
                            format!("Meta rejects the app secret this token is built from ({e})"),
                            now,
                            token.flags.clone(),
                        ),
                        None,
                        false,
                    )
                }
                Err(e) => {
                    let mut i = unknown_for(e, &token.app_id);
                    i.checked_at = now;
                    (i, None, false)
                }
            };
            rows.push((token, inspection, warning, inspected));
        }
        let outcomes = self
            .inventory
            .record_inspections(
                rows.iter().map(|(t, i, _, _)| (t, i.clone())).collect(),
                actor,
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for ((mut token, inspection, warning, inspected), outcome) in rows.into_iter().zip(outcomes)
        {
            if outcome.current == inspection.status {
                token.apply(&inspection);
            }
            if outcome.previous.is_usable() && !outcome.current.is_usable() {
                self.mark_children(&token, outcome.current, checked_ids, actor)
                    .await?;
            }
            let mut severity = base_severity(token.status);
            if severity == Severity::Ok && (warning.is_some() || !token.flags.is_empty()) {
                severity = Severity::Warning;
            }
            let warning = warning.or_else(|| token.flags.first().cloned());
            out.push(Checked {
                token,
                severity,
                warning,
                inspected,
            });
        }
        Ok(out)
    }

    /// A parent's death marks the tokens derived from it (design.md §2), unless Meta answered
    /// for them this round.
    async fn mark_children(
        &self,
        parent: &Token,
        status: TokenStatus,
        checked: &HashSet<String>,
        actor: &str,
    ) -> Result<(), StoreError> {
        for child in self.inventory.children(parent).await? {
            if checked.contains(&child.id) || !child.status.is_usable() {
                continue;
            }
            let inspection = Inspection::status_only(
                status,
                format!("derived from `{}`, which is {status}", parent.alias),
                self.clock.now(),
                child.flags.clone(),
            );
            self.inventory
                .record_inspection(&child, inspection, actor)
                .await?;
        }
        Ok(())
    }

    /// One batch (≤ 50) for one app: waits out short throttles, spreads calls when usage is
    /// high, and never turns a failure into anything but `unknown`.
    async fn inspect_batch(
        &self,
        app_id: &AppId,
        creds: &AppCredentials,
        chunk: Vec<Token>,
    ) -> (Vec<(Token, Result<Assessment, MetaError>)>, usize) {
        let mut secrets: Vec<SecretString> = Vec::with_capacity(chunk.len());
        let mut tokens = Vec::with_capacity(chunk.len());
        let mut out = Vec::new();
        for t in chunk {
            match self.inventory.open_token_secret(&t.alias).await {
                Ok(s) => {
                    secrets.push(s);
                    tokens.push(t);
                }
                Err(e) => {
                    let err = MetaError::Config {
                        detail: format!("the stored secret could not be opened: {e}"),
                    };
                    out.push((t, Err(err)));
                }
            }
        }
        if tokens.is_empty() {
            return (out, 0);
        }
        let refs: Vec<&SecretString> = secrets.iter().collect();
        let mut calls = 0;
        let mut waited = false;
        let result = loop {
            calls += 1;
            match self.graph.debug_tokens(&refs, creds).await {
                Err(e) => {
                    if let Classification::Throttled { wait: Some(wait) } = e.class()
                        && !waited
                        && wait <= self.policy.max_wait
                    {
                        tracing::info!(app = %app_id, ?wait, "Meta throttled `debug_token`; waiting it out.");
                        tokio::time::sleep(wait).await;
                        waited = true;
                        continue;
                    }
                    break Err(e);
                }
                Ok(answer) => break Ok(answer),
            }
        };
        let now = self.clock.now();
        match result {
            Ok((items, usage)) => {
                let pct = usage.max_pct();
                if pct >= self.policy.pace_above_percent {
                    // Spread the next batches out as usage nears the limit: up to 5 s a batch.
                    let over = ((pct - self.policy.pace_above_percent)
                        / (100.0 - self.policy.pace_above_percent).max(1.0))
                    .clamp(0.0, 1.0);
                    let delay = Duration::from_millis((200.0 + over * 4_800.0) as u64);
                    tracing::debug!(app = %app_id, pct, ?delay, "Pacing inspections on the usage headers.");
                    tokio::time::sleep(delay).await;
                }
                for (token, item) in tokens.into_iter().zip(items) {
                    out.push((
                        token,
                        item.map(|d| assess(&d, now, self.policy.warning_window)),
                    ));
                }
            }
            Err(e) => {
                for token in tokens {
                    out.push((token, Err(e.clone())));
                }
            }
        }
        (out, calls)
    }
}

/// Earliest expiry first; unknown and never last.
fn expiry_key(t: &Token) -> i64 {
    match t.expires {
        Expiry::At(at) => at.as_second(),
        Expiry::Never | Expiry::Unknown => i64::MAX,
    }
}
