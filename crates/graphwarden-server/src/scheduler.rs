//! The scheduler: cron schedules with time zones (croner), kept in the store so they survive
//! restarts, run on one instance at a time.
//!
//! Each job has one row holding its schedule and next run time. A pass ([`Scheduler::tick`])
//! claims every job that is due, in one conditional update that also moves its next run to the
//! first slot after now, so however many slots were missed while the daemon was down the job
//! runs once, and two instances never both run the same slot. Each run is recorded (start, end,
//! outcome, counts). A run cut short by a crash is marked `interrupted` at the next start, and
//! its job runs again then.
//!
//! Time comes from the [`Clock`]; the loop only sleeps between passes, so tests drive
//! [`Scheduler::tick`] with a `ManualClock` instead of waiting.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use croner::Cron;
use graphwarden_core::Clock;
use graphwarden_lifecycle::{Checker, Renewer, Selection, Severity};
use graphwarden_store::{Inventory, JobClaim, JobRecord, JobRun, StoreError};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rand::Rng as _;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use utoipa::ToSchema;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `debug_token` for every token (`graphwarden check`).
    Inspect,
    /// Renew what the renewal policy says is due (`graphwarden renew`).
    Renew,
    /// Delete job runs older than the retention period.
    Prune,
    /// Read the Event Match Quality of the configured Conversions API datasets.
    Quality,
    /// Run the security audit (`graphwarden audit`) and store it.
    Audit,
}

/// A Conversions API dataset whose Event Match Quality the `quality` job reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSpec {
    pub dataset_id: String,
    /// The stored token to read it with (a system-user token with the pixel assigned).
    pub token: graphwarden_core::TokenAlias,
    /// Score only events sent by this partner agent.
    pub agent_name: Option<String>,
}

/// One scheduled job.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub name: String,
    pub kind: JobKind,
    /// A cron expression (5 fields, or 6 with seconds; `@daily` and friends).
    pub schedule: String,
    /// An IANA time zone name (`Europe/Paris`), or `UTC`.
    pub timezone: String,
}

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub jobs: Vec<JobSpec>,
    /// Each next run is moved by a random delay up to this, so instances and jobs sharing a
    /// schedule do not all call Meta in the same second.
    pub jitter: Duration,
    /// How long a claim on a job lasts without being renewed; a run renews it while it works.
    pub lease: Duration,
    /// The longest the loop sleeps between passes (it also wakes for the next due job).
    pub max_sleep: Duration,
    /// Job runs older than this are deleted by `prune` jobs.
    pub run_retention: SignedDuration,
    /// Proxy call records older than this are deleted by `prune` jobs.
    pub call_retention: SignedDuration,
    /// Per-minute call rollups older than this are deleted by `prune` jobs.
    pub rollup_retention: SignedDuration,
    /// This instance's name in leases and runs.
    pub owner: String,
    /// What `quality` jobs read.
    pub datasets: Vec<DatasetSpec>,
    /// What `audit` jobs hold tokens and apps to.
    pub audit: graphwarden_lifecycle::audit::AuditPolicy,
    /// Stored audits older than this are deleted by `prune` jobs (the latest is always kept).
    pub audit_retention: SignedDuration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            jobs: Vec::new(),
            jitter: Duration::from_secs(60),
            lease: Duration::from_secs(600),
            max_sleep: Duration::from_secs(30),
            run_retention: SignedDuration::from_hours(24 * 90),
            call_retention: SignedDuration::from_hours(24 * 7),
            rollup_retention: SignedDuration::from_hours(24 * 90),
            owner: "graphwarden".to_owned(),
            datasets: Vec::new(),
            audit: graphwarden_lifecycle::audit::AuditPolicy::default(),
            audit_retention: SignedDuration::from_hours(24 * 365),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the schedule `{schedule}` of job `{job}` is not a cron expression: {reason}")]
    BadCron {
        job: String,
        schedule: String,
        reason: String,
    },
    #[error(
        "the time zone `{timezone}` of job `{job}` is unknown: use an IANA name like `Europe/Paris`, or `UTC`"
    )]
    BadTimeZone { job: String, timezone: String },
    #[error("the schedule `{schedule}` of job `{job}` never fires")]
    Never { job: String, schedule: String },
    #[error("there is no job named `{0}`")]
    UnknownJob(String),
    #[error("the job `{0}` is running already")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A job with its parsed schedule.
#[derive(Debug, Clone)]
struct Job {
    spec: JobSpec,
    cron: Cron,
    tz: TimeZone,
}

impl Job {
    fn parse(spec: JobSpec) -> Result<Self, ScheduleError> {
        let cron = Cron::from_str(&spec.schedule).map_err(|e| ScheduleError::BadCron {
            job: spec.name.clone(),
            schedule: spec.schedule.clone(),
            reason: e.to_string(),
        })?;
        let tz = if spec.timezone.eq_ignore_ascii_case("utc") {
            TimeZone::UTC
        } else {
            TimeZone::get(&spec.timezone).map_err(|_| ScheduleError::BadTimeZone {
                job: spec.name.clone(),
                timezone: spec.timezone.clone(),
            })?
        };
        let job = Self { spec, cron, tz };
        job.next_after(Timestamp::UNIX_EPOCH)?;
        Ok(job)
    }

    /// How the schedule is stored: a change of expression or zone is a new schedule.
    fn key(&self) -> String {
        format!("{} {}", self.spec.schedule.trim(), self.spec.timezone)
    }

    /// The first slot strictly after `after`.
    fn next_after(&self, after: Timestamp) -> Result<Timestamp, ScheduleError> {
        let zoned = after.to_zoned(self.tz.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .map(|z| z.timestamp())
            .map_err(|_| ScheduleError::Never {
                job: self.spec.name.clone(),
                schedule: self.spec.schedule.clone(),
            })
    }
}

/// A job as `graphwarden jobs` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub name: String,
    pub kind: JobKind,
    pub schedule: String,
    pub timezone: String,
    #[schema(value_type = Option<String>)]
    pub next_run_at: Option<Timestamp>,
    /// The instance running it now, if any.
    pub running_on: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub last_run: Option<JobRun>,
}

/// Runs the jobs of one inventory.
#[derive(Clone)]
pub struct Scheduler(Arc<Inner>);

struct Inner {
    inventory: Arc<Inventory>,
    checker: Checker,
    renewer: Renewer,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    jobs: BTreeMap<String, Job>,
    running: Mutex<JoinSet<()>>,
    wake: Notify,
    /// Told each time a run finishes (the alert engine looks again then).
    finished: Arc<Notify>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("jobs", &self.0.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Check every schedule; nothing is stored until [`Scheduler::register`].
    pub fn new(
        inventory: Arc<Inventory>,
        checker: Checker,
        renewer: Renewer,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Result<Self, ScheduleError> {
        let mut jobs = BTreeMap::new();
        for spec in &config.jobs {
            jobs.insert(spec.name.clone(), Job::parse(spec.clone())?);
        }
        Ok(Self(Arc::new(Inner {
            inventory,
            checker,
            renewer,
            clock,
            config,
            jobs,
            running: Mutex::new(JoinSet::new()),
            wake: Notify::new(),
            finished: Arc::new(Notify::new()),
        })))
    }

    fn jitter(&self) -> SignedDuration {
        let max = u64::try_from(self.0.config.jitter.as_millis()).unwrap_or(0);
        if max == 0 {
            return SignedDuration::ZERO;
        }
        let ms = rand::thread_rng().gen_range(0..=max);
        SignedDuration::from_millis(i64::try_from(ms).unwrap_or(0))
    }

    fn next_slot(&self, job: &Job, after: Timestamp) -> Result<Timestamp, ScheduleError> {
        let next = job.next_after(after)?;
        Ok(next.checked_add(self.jitter()).unwrap_or(next))
    }

    /// Store each job's schedule. A job whose schedule is unchanged keeps its stored next run
    /// (so a run missed while the daemon was down is still due); a new or changed one starts
    /// from its next slot. Runs interrupted by a crash are marked, and their jobs made due now.
    pub async fn register(&self) -> Result<(), ScheduleError> {
        let now = self.0.clock.now();
        let store = self.0.inventory.store();
        for job in self.0.jobs.values() {
            let next = self.next_slot(job, now)?;
            store
                .upsert_job(
                    &job.spec.name,
                    &job.key(),
                    Some(next.as_millisecond()),
                    now.as_millisecond(),
                )
                .await?;
        }
        for name in store.interrupt_stale_runs(now.as_millisecond()).await? {
            if self.0.jobs.contains_key(&name) {
                tracing::warn!(job = %name, "The last run of `{name}` was interrupted; it runs again now.");
                store.set_job_next_run(&name, now.as_millisecond()).await?;
            }
        }
        Ok(())
    }

    /// One pass: start every job that is due now; returns the ids of the runs started.
    pub async fn tick(&self) -> Result<Vec<i64>, ScheduleError> {
        let now = self.0.clock.now();
        let store = self.0.inventory.store();
        let mut started = Vec::new();
        for record in store.jobs().await? {
            let Some(job) = self.0.jobs.get(&record.name) else {
                continue;
            };
            let Some(due) = record.next_run_at else {
                continue;
            };
            if due > now {
                continue;
            }
            // Missed slots collapse into this one run; the next is the first slot after now.
            let next = self.next_slot(job, now)?;
            let claimed = store
                .claim_job(&JobClaim {
                    name: &record.name,
                    owner: &self.0.config.owner,
                    now_ms: now.as_millisecond(),
                    lease_until_ms: self.lease_until(now),
                    expected_next_ms: Some(Some(due.as_millisecond())),
                    new_next_ms: Some(next.as_millisecond()),
                })
                .await?;
            if !claimed {
                continue;
            }
            let late = now.duration_since(due)
                > SignedDuration::try_from(self.0.config.max_sleep * 2)
                    .unwrap_or(SignedDuration::MAX);
            let trigger = if late { "missed" } else { "schedule" };
            started.push(self.start(job.clone(), trigger, now).await?);
        }
        Ok(started)
    }

    /// Run a job now, outside its schedule (its next scheduled run stays where it is).
    pub async fn run_now(&self, name: &str) -> Result<i64, ScheduleError> {
        let job = self
            .0
            .jobs
            .get(name)
            .cloned()
            .ok_or_else(|| ScheduleError::UnknownJob(name.to_owned()))?;
        let now = self.0.clock.now();
        let claimed = self
            .0
            .inventory
            .store()
            .claim_job(&JobClaim {
                name,
                owner: &self.0.config.owner,
                now_ms: now.as_millisecond(),
                lease_until_ms: self.lease_until(now),
                expected_next_ms: None,
                new_next_ms: None,
            })
            .await?;
        if !claimed || self.is_running_here(name).await? {
            return Err(ScheduleError::Busy(name.to_owned()));
        }
        self.start(job, "manual", now).await
    }

    async fn is_running_here(&self, name: &str) -> Result<bool, StoreError> {
        let runs = self.0.inventory.store().job_runs(Some(name), 1).await?;
        Ok(runs
            .first()
            .is_some_and(|r| r.outcome == "running" && r.owner == self.0.config.owner))
    }

    fn lease_until(&self, now: Timestamp) -> i64 {
        let lease = i64::try_from(self.0.config.lease.as_millis()).unwrap_or(600_000);
        now.as_millisecond().saturating_add(lease)
    }

    /// Record the run and start it in the background.
    async fn start(&self, job: Job, trigger: &str, now: Timestamp) -> Result<i64, ScheduleError> {
        let store = self.0.inventory.store();
        let id = store
            .start_job_run(
                &job.spec.name,
                trigger,
                &self.0.config.owner,
                now.as_millisecond(),
            )
            .await?;
        tracing::info!(job = %job.spec.name, run = id, trigger, "Job `{}` started.", job.spec.name);
        let this = self.clone();
        let mut running = self
            .0
            .running
            .lock()
            .map_err(|_| StoreError::ConcurrentChange {
                detail: "the scheduler's state was poisoned".into(),
            })?;
        running.spawn(async move { this.execute(job, id).await });
        Ok(id)
    }

    async fn execute(&self, job: Job, id: i64) {
        let name = job.spec.name.clone();
        let work = self.work(job.spec.kind);
        let heartbeat = async {
            let every = self.0.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let now = self.0.clock.now();
                let renewed = self
                    .0
                    .inventory
                    .store()
                    .claim_job(&JobClaim {
                        name: &name,
                        owner: &self.0.config.owner,
                        now_ms: now.as_millisecond(),
                        lease_until_ms: self.lease_until(now),
                        expected_next_ms: None,
                        new_next_ms: None,
                    })
                    .await;
                if !matches!(renewed, Ok(true)) {
                    tracing::warn!(job = %name, "Could not renew the lease of job `{name}`.");
                }
            }
        };
        let (outcome, summary, counts) = tokio::select! {
            done = work => done,
            () = heartbeat => ("failed", "the lease could not be kept".to_owned(), json!({})),
        };
        let store = self.0.inventory.store();
        let finished = self.0.clock.now().as_millisecond();
        if let Err(e) = store
            .finish_job_run(id, finished, outcome, &summary, &counts)
            .await
        {
            tracing::error!(job = %name, run = id, "Could not record the end of the run: {e}");
        }
        if let Err(e) = store.release_job(&name, &self.0.config.owner).await {
            tracing::warn!(job = %name, "Could not release the lease of job `{name}`: {e}");
        }
        tracing::info!(job = %name, run = id, outcome, "Job `{name}` finished: {summary}");
        self.0.wake.notify_one();
        self.0.finished.notify_one();
    }

    /// Run the security audit and store it.
    async fn audit(&self) -> (&'static str, String, serde_json::Value) {
        let auditor = graphwarden_lifecycle::audit::Auditor::new(
            Arc::clone(&self.0.inventory),
            self.0.config.audit.clone(),
        );
        match auditor.run("scheduler").await {
            Ok(report) => {
                let s = &report.summary;
                let outcome = if s.critical + s.high > 0 {
                    "warning"
                } else {
                    "ok"
                };
                (
                    outcome,
                    format!(
                        "audit #{}: {} finding(s) ({} critical, {} high), {} new, {} resolved",
                        report.id,
                        report.findings.len(),
                        s.critical,
                        s.high,
                        s.new,
                        s.resolved
                    ),
                    serde_json::to_value(s).unwrap_or_default(),
                )
            }
            Err(e) => ("failed", e.to_string(), json!({})),
        }
    }

    /// Read every configured dataset's Event Match Quality and store it.
    async fn pull_quality(&self) -> (&'static str, String, serde_json::Value) {
        let inventory = &self.0.inventory;
        let graph = self.0.checker.graph();
        let now_ms = self.0.clock.now_ms();
        let mut scores = Vec::new();
        let mut failures = Vec::new();
        for d in &self.0.config.datasets {
            let read = async {
                let (token, secret) = inventory
                    .token_with_secret(&d.token)
                    .await
                    .map_err(|e| e.to_string())?;
                let secret = secret.map_err(|e| e.to_string())?;
                let app_secret = inventory.app_secret(&token.app_id).await.ok();
                graph
                    .dataset_quality(
                        &secret,
                        app_secret.as_ref(),
                        &d.dataset_id,
                        d.agent_name.as_deref(),
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            match read.await {
                Ok(events) => {
                    scores.extend(events.into_iter().map(|e| graphwarden_store::QualityScore {
                        dataset_id: d.dataset_id.clone(),
                        event_name: e.event_name,
                        score: e.composite_score,
                        checked_at_ms: now_ms,
                    }))
                }
                Err(e) => {
                    tracing::warn!(dataset = %d.dataset_id, error = %e, "Reading a dataset's Event Match Quality failed.");
                    failures.push(format!("{}: {e}", d.dataset_id));
                }
            }
        }
        if let Err(e) = inventory.store().insert_quality(&scores).await {
            return ("failed", e.to_string(), json!({}));
        }
        let datasets = self.0.config.datasets.len();
        let counts =
            json!({"datasets": datasets, "events": scores.len(), "failed": failures.len()});
        if datasets == 0 {
            (
                "ok",
                "no datasets are configured (`[[quality.datasets]]`)".to_owned(),
                counts,
            )
        } else if failures.is_empty() {
            (
                "ok",
                format!(
                    "{} event score(s) of {datasets} dataset(s) read",
                    scores.len()
                ),
                counts,
            )
        } else if failures.len() == datasets {
            ("failed", failures.join("; "), counts)
        } else {
            (
                "warning",
                format!(
                    "{} event score(s) read; failed: {}",
                    scores.len(),
                    failures.join("; ")
                ),
                counts,
            )
        }
    }

    async fn work(&self, kind: JobKind) -> (&'static str, String, serde_json::Value) {
        match kind {
            JobKind::Quality => self.pull_quality().await,
            JobKind::Audit => self.audit().await,
            JobKind::Inspect => {
                match self
                    .0
                    .checker
                    .check(Selection::default(), "scheduler", &|_, _| {})
                    .await
                {
                    Ok(report) => {
                        let count =
                            |s: Severity| report.tokens.iter().filter(|c| c.severity == s).count();
                        let (critical, warning, ok) = (
                            count(Severity::Critical),
                            count(Severity::Warning),
                            count(Severity::Ok),
                        );
                        (
                            "ok",
                            format!(
                                "{} token(s) checked with {} Graph request(s): {critical} critical, {warning} warning, {ok} fine",
                                report.tokens.len(),
                                report.requests
                            ),
                            json!({ "tokens": report.tokens.len(), "requests": report.requests, "critical": critical, "warning": warning, "ok": ok }),
                        )
                    }
                    Err(e) => ("failed", e.to_string(), json!({})),
                }
            }
            JobKind::Renew => match self.0.renewer.renew_all(false, "scheduler").await {
                Ok(report) => {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for r in &report.tokens {
                        *counts.entry(r.outcome).or_default() += 1;
                    }
                    let outcome = if report.exit_code() == 0 {
                        "ok"
                    } else {
                        "warning"
                    };
                    let summary = if counts.is_empty() {
                        "nothing was due".to_owned()
                    } else {
                        counts
                            .iter()
                            .map(|(k, v)| format!("{v} {k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    (outcome, summary, json!(counts))
                }
                Err(e) => ("failed", e.to_string(), json!({})),
            },
            JobKind::Prune => {
                let before = self
                    .0
                    .clock
                    .now()
                    .checked_sub(self.0.config.run_retention)
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                let store = self.0.inventory.store();
                let now = self.0.clock.now();
                let cutoff = |keep: SignedDuration| {
                    now.checked_sub(keep)
                        .unwrap_or(Timestamp::UNIX_EPOCH)
                        .as_millisecond()
                };
                let pruned = async {
                    let runs = store.prune_job_runs(before.as_millisecond()).await?;
                    let (deliveries, silences) =
                        store.prune_alert_history(before.as_millisecond()).await?;
                    let (calls, rollups) = store
                        .prune_calls(
                            cutoff(self.0.config.call_retention),
                            cutoff(self.0.config.rollup_retention),
                        )
                        .await?;
                    let audits = store
                        .prune_audits(cutoff(self.0.config.audit_retention))
                        .await?;
                    Ok::<_, StoreError>((runs, deliveries, silences, calls, rollups, audits))
                }
                .await;
                match pruned {
                    Ok((n, deliveries, silences, calls, rollups, audits)) => (
                        "ok",
                        format!(
                            "{n} job run(s), {deliveries} alert delivery record(s) and {silences} \
                             ended silence(s) older than {}, {calls} call record(s) older than {}, \
                             {rollups} call rollup(s) older than {} and {audits} audit(s) older \
                             than {} deleted",
                            graphwarden_core::duration::format_duration_short(
                                self.0.config.run_retention
                            ),
                            graphwarden_core::duration::format_duration_short(
                                self.0.config.call_retention
                            ),
                            graphwarden_core::duration::format_duration_short(
                                self.0.config.rollup_retention
                            ),
                            graphwarden_core::duration::format_duration_short(
                                self.0.config.audit_retention
                            )
                        ),
                        json!({
                            "job_runs_deleted": n,
                            "alert_deliveries_deleted": deliveries,
                            "silences_deleted": silences,
                            "call_records_deleted": calls,
                            "call_rollups_deleted": rollups,
                            "audits_deleted": audits,
                        }),
                    ),
                    Err(e) => ("failed", e.to_string(), json!({})),
                }
            }
        }
    }

    /// Notified (one permit) each time a job run finishes.
    pub fn finished_signal(&self) -> Arc<Notify> {
        Arc::clone(&self.0.finished)
    }

    /// Wait for every run started so far to finish.
    pub async fn wait_idle(&self) {
        loop {
            let joined = {
                let Ok(mut running) = self.0.running.lock() else {
                    return;
                };
                if running.is_empty() {
                    return;
                }
                // Take the set so the lock is not held across the await.
                std::mem::take(&mut *running)
            };
            let mut joined = joined;
            while joined.join_next().await.is_some() {}
        }
    }

    /// Passes until `shutdown` resolves; then no new run starts, and runs in flight finish.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!("The scheduler could not start due jobs: {e}");
            }
            let sleep = self.until_next_due().await.min(self.0.config.max_sleep);
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(sleep) => {}
                () = self.0.wake.notified() => {}
            }
        }
        tracing::info!("The scheduler is stopping; waiting for running jobs to finish.");
        self.wait_idle().await;
    }

    async fn until_next_due(&self) -> Duration {
        let now = self.0.clock.now();
        let Ok(jobs) = self.0.inventory.store().jobs().await else {
            return self.0.config.max_sleep;
        };
        jobs.iter()
            .filter_map(|j| j.next_run_at)
            .map(|at| at.duration_since(now))
            .min()
            .map_or(self.0.config.max_sleep, |d| {
                Duration::try_from(d).unwrap_or(Duration::ZERO)
            })
    }

    /// Every configured job with its next run and its last run.
    pub async fn jobs(&self) -> Result<Vec<JobView>, StoreError> {
        let store = self.0.inventory.store();
        let records: BTreeMap<String, JobRecord> = store
            .jobs()
            .await?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let now = self.0.clock.now();
        let mut out = Vec::new();
        for (name, job) in &self.0.jobs {
            let record = records.get(name);
            let running_on = record.and_then(|r| {
                let held = r.lease_until.is_some_and(|t| t >= now);
                if held { r.lease_owner.clone() } else { None }
            });
            out.push(JobView {
                name: name.clone(),
                kind: job.spec.kind,
                schedule: job.spec.schedule.clone(),
                timezone: job.spec.timezone.clone(),
                next_run_at: record.and_then(|r| r.next_run_at),
                running_on,
                last_run: store.job_runs(Some(name), 1).await?.into_iter().next(),
            });
        }
        Ok(out)
    }

    pub fn has_job(&self, name: &str) -> bool {
        self.0.jobs.contains_key(name)
    }

    /// The latest runs, newest first, of one job or all.
    pub async fn runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>, StoreError> {
        self.0.inventory.store().job_runs(job, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(schedule: &str, tz: &str) -> Result<Job, ScheduleError> {
        Job::parse(JobSpec {
            name: "t".into(),
            kind: JobKind::Inspect,
            schedule: schedule.into(),
            timezone: tz.into(),
        })
    }

    #[test]
    fn schedules_follow_their_time_zone() {
        let at: Timestamp = "2026-11-23T07:30:00Z".parse().unwrap();
        let utc = job("0 8 * * *", "UTC").unwrap();
        assert_eq!(
            utc.next_after(at).unwrap().to_string(),
            "2026-11-23T08:00:00Z"
        );
        // 08:00 in Paris is 07:00 UTC in winter: already past, so tomorrow.
        let paris = job("0 8 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            paris.next_after(at).unwrap().to_string(),
            "2026-11-24T07:00:00Z"
        );
        let six_hourly = job("0 */6 * * *", "UTC").unwrap();
        assert_eq!(
            six_hourly.next_after(at).unwrap().to_string(),
            "2026-11-23T12:00:00Z"
        );
        let monday = job("0 9 * * MON", "UTC").unwrap();
        assert_eq!(
            monday.next_after(at).unwrap().to_string(),
            "2026-11-23T09:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_the_job_named() {
        let e = job("every day", "UTC").unwrap_err().to_string();
        assert!(e.contains("job `t`") && e.contains("every day"), "{e}");
        let e = job("0 8 * * *", "Mars/Olympus").unwrap_err().to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
        assert!(job("0 8 31 2 *", "UTC").is_err(), "31 February never comes");
    }
}
