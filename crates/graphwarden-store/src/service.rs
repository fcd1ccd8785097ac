//! What the daemon (`graphwarden serve`) keeps besides the inventory: API keys, and the
//! scheduler's jobs and runs. [`ServiceStore`] is implemented once per backend from the SQL in
//! `sql_service.rs`; [`crate::Inventory`] wraps it with events and key hashing.

use async_trait::async_trait;
use graphwarden_core::alert::{Notification, Silence};
use graphwarden_core::{Role, TokenAlias};
use jiff::Timestamp;
use serde::Serialize;

use crate::error::Result;
use crate::model::NewEvent;

/// An API key as listed: never its secret, which is shown once when it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The public part of the key (`gwk_<id>_…`), which finds its row.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// For `consumer` keys: the tokens whose secret the key may fetch.
    pub aliases: Vec<TokenAlias>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// An API key with its keyed hash, as stored.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub key: ApiKey,
    pub hash: String,
}

/// A scheduled job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    pub name: String,
    pub schedule: String,
    pub next_run_at: Option<Timestamp>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    /// `schedule`, `missed` (caught up at start), or `manual`.
    pub trigger: String,
    /// The instance that ran it.
    pub owner: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// `running`, `ok`, `warning`, `failed` or `interrupted`.
    pub outcome: String,
    pub summary: String,
    pub counts: serde_json::Value,
}

/// A local user of the dashboard, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub created_by: String,
    pub last_login_at: Option<Timestamp>,
}

/// A user as stored: with the argon2id hash of the password (a PHC string).
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
}

/// One stored security audit: its findings and summary as JSON (their shape belongs to
/// `graphwarden_lifecycle::audit`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub findings: serde_json::Value,
    pub summary: serde_json::Value,
}

/// A data-deletion request Meta forwarded for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletionRequest {
    /// The confirmation code Meta shows the user.
    pub code: String,
    pub app_id: String,
    /// The app-scoped user id.
    pub user_id: String,
    pub requested_at: Timestamp,
    pub status: String,
    pub detail: String,
}

/// A silence as stored: the silence and when it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilenceRecord {
    #[serde(flatten)]
    pub silence: Silence,
    pub created_at: Timestamp,
}

/// A fresh silence id: 16 random hex digits.
pub fn new_silence_id() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// One notification for one receiver, to be put in the outbox.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub receiver: String,
    pub notification: Notification,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Gave up: a permanent error, or too many attempts.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

pub(crate) fn delivery_state(text: &str) -> Result<DeliveryState> {
    DeliveryState::parse(text)
        .ok_or_else(|| crate::StoreError::corrupt(format!("stored delivery state `{text}`")))
}

/// One row of the outbox. Its `id` is the delivery id a receiver sees on every attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertDelivery {
    pub id: i64,
    pub receiver: String,
    pub notification: Notification,
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub state: DeliveryState,
    /// The last failure, as the receiver's error said it (never a secret).
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// Claiming a job: take its lease and move its next run time, in one statement.
#[derive(Debug, Clone)]
pub struct JobClaim<'a> {
    pub name: &'a str,
    pub owner: &'a str,
    pub now_ms: i64,
    pub lease_until_ms: i64,
    /// The next run time the claimant saw; the claim fails when another instance moved it.
    /// `None` claims whatever it is (a manual run).
    pub expected_next_ms: Option<Option<i64>>,
    pub new_next_ms: Option<i64>,
}

#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// Fails with [`crate::StoreError::NameTaken`] when a key already has this name.
    async fn insert_api_key(&self, key: &ApiKeyRecord, event: &NewEvent) -> Result<()>;
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    async fn api_keys(&self) -> Result<Vec<ApiKey>>;
    /// `false` when no live key has this name.
    async fn revoke_api_key(&self, name: &str, at_ms: i64, event: &NewEvent) -> Result<bool>;
    async fn touch_api_key(&self, id: &str, at_ms: i64) -> Result<()>;

    /// Add the job, or change its schedule (then its next run is `next_ms`). A job whose
    /// schedule is unchanged keeps its stored next run: that is what survives a restart.
    async fn upsert_job(
        &self,
        name: &str,
        schedule: &str,
        next_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<JobRecord>;
    async fn jobs(&self) -> Result<Vec<JobRecord>>;
    /// Make a job due at `next_ms` (to resume an interrupted run at once).
    async fn set_job_next_run(&self, name: &str, next_ms: i64) -> Result<()>;
    /// Take a job's lease when it is free, expired or ours, and set its next run; `false` when
    /// another instance holds it or moved its next run.
    async fn claim_job(&self, claim: &JobClaim<'_>) -> Result<bool>;
    async fn release_job(&self, name: &str, owner: &str) -> Result<()>;
    async fn start_job_run(
        &self,
        job: &str,
        trigger: &str,
        owner: &str,
        started_ms: i64,
    ) -> Result<i64>;
    async fn finish_job_run(
        &self,
        id: i64,
        finished_ms: i64,
        outcome: &str,
        summary: &str,
        counts: &serde_json::Value,
    ) -> Result<()>;
    /// Runs still marked `running` whose job is no longer leased by their owner (the process
    /// died): mark them `interrupted`; returns the jobs they belonged to, so they can resume.
    async fn interrupt_stale_runs(&self, now_ms: i64) -> Result<Vec<String>>;
    /// Delete finished runs that started before `before_ms`; returns how many.
    async fn prune_job_runs(&self, before_ms: i64) -> Result<u64>;
    /// Record a data-deletion request with its event.
    async fn insert_deletion_request(
        &self,
        request: &DeletionRequest,
        event: &NewEvent,
    ) -> Result<()>;
    async fn deletion_request(&self, code: &str) -> Result<Option<DeletionRequest>>;
    /// The latest runs, newest first, of one job or all.
    async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>>;

    /// Fails with [`crate::StoreError::NameTaken`] when the name is taken.
    async fn insert_user(&self, user: &UserRecord, event: &NewEvent) -> Result<()>;
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn users(&self) -> Result<Vec<User>>;
    /// `false` when there is no such user.
    async fn delete_user(&self, name: &str, event: &NewEvent) -> Result<bool>;
    async fn set_user_login(&self, name: &str, at_ms: i64) -> Result<()>;

    /// Store an audit with its event; returns its id.
    async fn insert_audit(&self, audit: &AuditRecord, event: &NewEvent) -> Result<i64>;
    async fn audit(&self, id: i64) -> Result<Option<AuditRecord>>;
    async fn latest_audit(&self) -> Result<Option<AuditRecord>>;
    /// The audit stored just before audit `id`.
    async fn audit_before(&self, id: i64) -> Result<Option<AuditRecord>>;
    /// The latest audits, newest first, without their findings (`findings` is `null`).
    async fn audits(&self, limit: i64) -> Result<Vec<AuditRecord>>;
    /// Delete audits made before `before_ms`, keeping the latest whatever its age.
    async fn prune_audits(&self, before_ms: i64) -> Result<u64>;

    /// The alert dispatcher's saved state (JSON), if any was saved.
    async fn alert_state(&self) -> Result<Option<String>>;
    /// Save the dispatcher's state and put the notifications its flush returned in the outbox,
    /// due at once, in one transaction; returns the new deliveries' ids.
    async fn save_alert_state(
        &self,
        state: &str,
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<Vec<i64>>;
    /// Pending deliveries due at `now_ms`, oldest first.
    async fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<AlertDelivery>>;
    /// When the next pending delivery is due.
    async fn next_delivery_at(&self) -> Result<Option<Timestamp>>;
    /// The latest deliveries, newest first.
    async fn deliveries(&self, limit: i64) -> Result<Vec<AlertDelivery>>;
    async fn mark_delivered(&self, id: i64, attempts: i64, at_ms: i64) -> Result<()>;
    /// Leave it pending, to be tried again at `next_ms`.
    async fn retry_delivery(&self, id: i64, attempts: i64, next_ms: i64, error: &str)
    -> Result<()>;
    async fn fail_delivery(&self, id: i64, attempts: i64, error: &str, at_ms: i64) -> Result<()>;

    /// Fails with [`crate::StoreError::NameTaken`] when the id is taken.
    async fn insert_silence(&self, silence: &Silence, created_ms: i64) -> Result<()>;
    /// Every silence, newest first.
    async fn silences(&self) -> Result<Vec<SilenceRecord>>;
    /// Silences that have not ended by `now_ms` (active or pending).
    async fn live_silences(&self, now_ms: i64) -> Result<Vec<Silence>>;
    /// End a silence now; `false` when there is none with this id or it has already ended.
    async fn expire_silence(&self, id: &str, now_ms: i64) -> Result<bool>;
    /// Delete delivered and failed deliveries made before `before_ms`, and silences that ended
    /// before it; returns how many of each.
    async fn prune_alert_history(&self, before_ms: i64) -> Result<(u64, u64)>;
}
