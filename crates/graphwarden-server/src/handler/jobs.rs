//! `/api/v1/jobs`: the scheduled jobs, their runs, and running one now.

use axum::Json;
use axum::extract::{Path, Query, State};
use graphwarden_core::Role;
use graphwarden_store::JobRun;
use http::StatusCode;
use jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::handler::Limit;
use crate::scheduler::{JobView, ScheduleError};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: i64,
    pub job: String,
    /// `schedule`, `missed` (caught up at start), or `manual`.
    pub trigger: String,
    /// The instance that ran it.
    pub owner: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// `running`, `ok`, `warning`, `failed` or `interrupted`.
    pub outcome: String,
    pub summary: String,
    #[schema(value_type = Object)]
    pub counts: serde_json::Value,
}

impl From<JobRun> for RunView {
    fn from(r: JobRun) -> Self {
        Self {
            id: r.id,
            job: r.job,
            trigger: r.trigger,
            owner: r.owner,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            summary: r.summary,
            counts: r.counts,
        }
    }
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::UnknownJob(_) => ApiError::not_found(e.to_string()),
        ScheduleError::Busy(_) => ApiError::conflict(e.to_string()),
        ScheduleError::Store(s) => ApiError::from(s),
        other => ApiError::internal(other),
    }
}

/// Every scheduled job with its next and last run.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "list_jobs", tag = "jobs", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<JobView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<JobView>>, ApiError> {
    caller.require(Role::Reader)?;
    Ok(Json(state.scheduler().jobs().await?))
}

/// The latest runs of one job, newest first.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/runs", operation_id = "job_runs", tag = "jobs", security(("bearer" = [])),
    params(("name" = String, Path, description = "The job's name"), Limit),
    responses(
        (status = 200, body = Vec<RunView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<RunView>>, ApiError> {
    caller.require(Role::Reader)?;
    if !state.scheduler().has_job(&name) {
        return Err(schedule_error(ScheduleError::UnknownJob(name)));
    }
    let runs = state.scheduler().runs(Some(&name), limit.get()).await?;
    Ok(Json(runs.into_iter().map(RunView::from).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub run_id: i64,
}

/// Run a job now; it runs in the background (follow it in its runs).
#[utoipa::path(post, path = "/api/v1/jobs/{name}/run", operation_id = "run_job", tag = "jobs", security(("bearer" = [])),
    params(("name" = String, Path, description = "The job's name")),
    responses(
        (status = 202, body = Started),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The job is running already", body = ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Started>), ApiError> {
    caller.require(Role::Operator)?;
    let run_id = state
        .scheduler()
        .run_now(&name)
        .await
        .map_err(schedule_error)?;
    tracing::info!(job = %name, run = run_id, actor = %caller.actor(), "Job `{name}` started by hand.");
    Ok((StatusCode::ACCEPTED, Json(Started { run_id })))
}
