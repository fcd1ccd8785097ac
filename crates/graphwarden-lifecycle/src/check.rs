//! Inspection: `debug_token` for every token, batched up to 50 a request with the app token,
//! bounded concurrency, pacing on the usage headers, and the results written to the store with
//! an event for each change (design.md §2 token state machine).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, Clock, MetaId, TokenAlias, TokenKind, TokenStatus};
use graphwarden_meta::{
    AppCredentials, Assessment, Classification, DebugData, GraphClient, MAX_BATCH, MetaError,
    assess,
};
use graphwarden_store::{
    Expiry, GranularScope, Inspection, InspectionDetails, Inventory, StoreError, Token, TokenFilter,
};
use jiff::{SignedDuration, Timestamp};
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
    /// Tokens read from the store at a time: a round holds about this many, plus the batches
    /// in flight, whatever the size of the inventory.
    pub page_size: usize,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        Self {
            warning_window: SignedDuration::from_hours(24 * 7),
            concurrency: 4,
            pace_above_percent: 75.0,
            max_wait: Duration::from_secs(60),
            page_size: 1_000,
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

/// One token after the round: what the report shows, not the whole stored token, so a round
/// over a large inventory keeps a few hundred bytes per token until it is printed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub alias: TokenAlias,
    pub kind: TokenKind,
    pub app_id: AppId,
    pub status: TokenStatus,
    pub cause: String,
    pub expires: Expiry,
    pub data_access_expires_at: Option<Timestamp>,
    pub scopes: Option<Vec<String>>,
    pub flags: Vec<String>,
    pub checked_at: Option<Timestamp>,
    pub severity: Severity,
    /// Why it is a warning, when it is one.
    pub warning: Option<String>,
    /// Whether Meta answered for this token this round.
    pub inspected: bool,
}

impl Checked {
    fn new(token: Token, severity: Severity, warning: Option<String>, inspected: bool) -> Self {
        Self {
            alias: token.alias,
            kind: token.kind,
            app_id: token.app_id,
            status: token.status,
            cause: token.status_cause,
            expires: token.expires,
            data_access_expires_at: token.data_access_expires_at,
            scopes: token.scopes,
            flags: token.flags,
            checked_at: token.last_checked_at,
            severity,
            warning,
            inspected,
        }
    }
}

/// Which tokens a round inspects.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every token the filter selects, read in keyset pages.
    Filter(TokenFilter),
    /// These tokens; an unknown alias fails the round before Meta is asked anything.
    Aliases(Vec<TokenAlias>),
}

impl Default for Selection {
    fn default() -> Self {
        Self::Filter(TokenFilter::default())
    }
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

/// A token with its opened secret (or why it could not be opened).
type Opened = (Token, Result<SecretString, StoreError>);

/// The selection, cut into batches of at most [`MAX_BATCH`] tokens of one app. The inventory is
/// read a page at a time, so memory stays bounded whatever its size.
struct Batches<'a> {
    inventory: &'a Inventory,
    page_size: usize,
    filter: TokenFilter,
    after: Option<(AppId, TokenAlias)>,
    exhausted: bool,
    pending: VecDeque<Opened>,
}

impl<'a> Batches<'a> {
    async fn new(
        inventory: &'a Inventory,
        page_size: usize,
        selection: Selection,
    ) -> Result<(Self, u64), StoreError> {
        let mut batches = Self {
            inventory,
            page_size: page_size.max(1),
            filter: TokenFilter::default(),
            after: None,
            exhausted: false,
            pending: VecDeque::new(),
        };
        let total = match selection {
            Selection::Filter(filter) => {
                let total = inventory.token_count(&filter).await?;
                batches.filter = filter;
                total
            }
            Selection::Aliases(aliases) => {
                let mut seen = HashSet::new();
                let mut tokens = Vec::new();
                for alias in aliases {
                    if seen.insert(alias.clone()) {
                        tokens.push(inventory.token_with_secret(&alias).await?);
                    }
                }
                tokens.sort_by(|(a, _), (b, _)| (&a.app_id, &a.alias).cmp(&(&b.app_id, &b.alias)));
                batches.exhausted = true;
                batches.pending = tokens.into();
                batches.pending.len() as u64
            }
        };
        Ok((batches, total))
    }

    async fn fill(&mut self) -> Result<(), StoreError> {
        while !self.exhausted && self.pending.len() < MAX_BATCH {
            let after = self.after.as_ref().map(|(app, alias)| (app, alias));
            let page = self
                .inventory
                .token_page_with_secrets(&self.filter, after, self.page_size)
                .await?;
            self.exhausted = page.len() < self.page_size;
            if let Some((last, _)) = page.last() {
                self.after = Some((last.app_id.clone(), last.alias.clone()));
            }
            self.pending.extend(page);
        }
        Ok(())
    }

    /// The next batch: consecutive tokens of one app, as many as fit.
    async fn next(&mut self) -> Result<Option<Vec<Opened>>, StoreError> {
        self.fill().await?;
        let Some((first, _)) = self.pending.front() else {
            return Ok(None);
        };
        let app = first.app_id.clone();
        let mut batch = Vec::with_capacity(MAX_BATCH.min(self.pending.len()));
        while batch.len() < MAX_BATCH && self.pending.front().is_some_and(|(t, _)| t.app_id == app)
        {
            if let Some(item) = self.pending.pop_front() {
                batch.push(item);
            }
        }
        Ok(Some(batch))
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

    /// Inspect the selection: the inventory is read a page at a time, batches run
    /// `concurrency` at a time, and each batch's results are written in one transaction as soon
    /// as it answers, so memory and commits stay bounded whatever the size of the inventory.
    /// `progress` hears `(done, total)` after each batch.
    pub async fn check(
        &self,
        selection: Selection,
        actor: &str,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<CheckReport, CheckError> {
        let (mut batches, total) =
            Batches::new(&self.inventory, self.policy.page_size, selection).await?;
        let mut credentials: HashMap<AppId, AppCredentials> = HashMap::new();
        let mut jobs = tokio::task::JoinSet::new();
        let mut report = CheckReport {
            tokens: Vec::with_capacity(usize::try_from(total).unwrap_or(0)),
            requests: 0,
            api_version: None,
        };
        // Ids answered this round, and tokens that died in it: their children are marked once
        // the round is over, except those Meta answered for themselves.
        let mut checked_ids: HashSet<String> = HashSet::new();
        let mut deaths: Vec<(String, TokenAlias, TokenStatus)> = Vec::new();
        let mut done = 0u64;
        let concurrency = self.policy.concurrency.max(1);
        loop {
            while jobs.len() < concurrency {
                let Some(batch) = batches.next().await? else {
                    break;
                };
                let app_id = batch[0].0.app_id.clone();
                let creds = match credentials.get(&app_id) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.credentials(&app_id).await?;
                        credentials.insert(app_id.clone(), c.clone());
                        c
                    }
                };
                let this = self.clone();
                jobs.spawn(async move { this.inspect_batch(&app_id, &creds, batch).await });
            }
            let Some(joined) = jobs.join_next().await else {
                break;
            };
            let Ok((batch, calls)) = joined else {
                continue;
            };
            report.requests += calls;
            done += batch.len() as u64;
            checked_ids.extend(batch.iter().map(|(t, _)| t.id.clone()));
            let checked = self.record_batch(batch, actor, &mut deaths).await?;
            report.tokens.extend(checked);
            progress(done, total);
        }
        for (id, alias, status) in deaths {
            self.mark_children(&id, &alias, status, &checked_ids, actor)
                .await?;
        }
        report.api_version = self.graph.last_api_version();
        report.tokens.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| expiry_key(a.expires).cmp(&expiry_key(b.expires)))
                .then_with(|| a.alias.cmp(&b.alias))
        });
        Ok(report)
    }

    /// Write one batch's results in one transaction and report the tokens as they now read;
    /// tokens that died are added to `deaths`.
    async fn record_batch(
        &self,
        batch: Vec<(Token, Result<Assessment, MetaError>)>,
        actor: &str,
        deaths: &mut Vec<(String, TokenAlias, TokenStatus)>,
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
                deaths.push((token.id.clone(), token.alias.clone(), outcome.current));
            }
            let mut severity = base_severity(token.status);
            if severity == Severity::Ok && (warning.is_some() || !token.flags.is_empty()) {
                severity = Severity::Warning;
            }
            let warning = warning.or_else(|| token.flags.first().cloned());
            out.push(Checked::new(token, severity, warning, inspected));
        }
        Ok(out)
    }

    /// A parent's death marks the tokens derived from it (design.md §2), unless Meta answered
    /// for them this round.
    async fn mark_children(
        &self,
        parent_id: &str,
        parent_alias: &TokenAlias,
        status: TokenStatus,
        checked: &HashSet<String>,
        actor: &str,
    ) -> Result<(), StoreError> {
        for child in self.inventory.children_of(parent_id).await? {
            if checked.contains(&child.id) || !child.status.is_usable() {
                continue;
            }
            let inspection = Inspection::status_only(
                status,
                format!("derived from `{parent_alias}`, which is {status}"),
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
        chunk: Vec<Opened>,
    ) -> (Vec<(Token, Result<Assessment, MetaError>)>, usize) {
        let mut secrets: Vec<SecretString> = Vec::with_capacity(chunk.len());
        let mut tokens = Vec::with_capacity(chunk.len());
        let mut out = Vec::new();
        for (t, secret) in chunk {
            match secret {
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
fn expiry_key(expires: Expiry) -> i64 {
    match expires {
        Expiry::At(at) => at.as_second(),
        Expiry::Never | Expiry::Unknown => i64::MAX,
    }
}
