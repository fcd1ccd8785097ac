//! `/metrics`: Prometheus metrics (see [`crate::metrics`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use graphwarden_core::Role;
use graphwarden_core::alert::AlertStatus;
use graphwarden_store::{Expiry, TokenFilter};
use http::{HeaderMap, StatusCode, header};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    token: String,
    app: String,
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenOnly {
    token: String,
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaceLabels {
    scope: String,
    id: String,
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    alertname: String,
    severity: String,
    state: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn pace_labels(key: &graphwarden_core::pacing::PaceKey) -> PaceLabels {
    use graphwarden_core::pacing::PaceKey;
    let (scope, id, kind) = match key {
        PaceKey::App { app_id } => ("app", app_id.clone(), String::new()),
        // Token fingerprints are keyed hashes; a short prefix tells series apart.
        PaceKey::Token { fingerprint } => (
            "token",
            fingerprint.chars().take(12).collect(),
            String::new(),
        ),
        PaceKey::AdAccount { account_id } => ("ad_account", account_id.clone(), String::new()),
        PaceKey::UseCase { object_id, kind } => {
            ("business_use_case", object_id.clone(), kind.clone())
        }
    };
    PaceLabels {
        scope: scope.to_owned(),
        id,
        r#type: kind,
    }
}

/// Read what metrics come from state at scrape time.
async fn scraped(state: &AppState) -> Result<Registry, ApiError> {
    let mut registry = Registry::with_prefix("graphwarden");
    let now = state.clock().now();

    let status = Family::<TokenLabels, Gauge>::default();
    let expiry = Family::<TokenOnly, FloatGauge>::default();
    let data_access = Family::<TokenOnly, FloatGauge>::default();
    for t in state.inventory().tokens(&TokenFilter::default()).await? {
        let app = t.app_id.to_string();
        let token = t.alias.to_string();
        status
            .get_or_create(&TokenLabels {
                token: token.clone(),
                app: app.clone(),
                kind: t.kind.to_string(),
                status: t.status.to_string(),
            })
            .set(1);
        if let Expiry::At(at) = t.expires {
            expiry
                .get_or_create(&TokenOnly {
                    token: token.clone(),
                    app: app.clone(),
                })
                .set((at - now).get_milliseconds() as f64 / 1000.0);
        }
        if let Some(at) = t.data_access_expires_at {
            data_access
                .get_or_create(&TokenOnly { token, app })
                .set((at - now).get_milliseconds() as f64 / 1000.0);
        }
    }
    registry.register(
        "token_status",
        "1 for each token's current status (valid, expiring, expired, password_changed…)",
        status,
    );
    registry.register(
        "token_expiry_seconds",
        "Seconds until the token expires (negative once expired); absent for tokens that never expire",
        expiry,
    );
    registry.register(
        "token_data_access_expiry_seconds",
        "Seconds until the token's 90-day data access lapses",
        data_access,
    );

    if let Some(proxy) = state.proxy() {
        let percent = Family::<PaceLabels, FloatGauge>::default();
        let held = Family::<PaceLabels, FloatGauge>::default();
        for view in proxy.pacing_snapshot() {
            let labels = pace_labels(&view.key);
            percent.get_or_create(&labels).set(view.percent);
            held.get_or_create(&labels)
                .set(view.held_for.map_or(0.0, |d| d.as_secs_f64()));
        }
        registry.register(
            "pacing_usage_percent",
            "The usage percentage the pacer last saw per app, token, ad account and business use case",
            percent,
        );
        registry.register(
            "pacing_held_seconds",
            "How much longer calls for the key are held back from Meta (0 when not held)",
            held,
        );
        if let Some(stats) = proxy.recorder_stats() {
            let written = Counter::<u64>::default();
            written.inc_by(stats.written.load(Ordering::Relaxed));
            registry.register(
                "proxy_call_records_written",
                "Call records written to the database",
                written,
            );
            let lost = Counter::<u64>::default();
            lost.inc_by(stats.lost.load(Ordering::Relaxed));
            registry.register(
                "proxy_call_records_lost",
                "Call records that could not be written",
                lost,
            );
        }
    }

    let last_run = Family::<JobLabels, FloatGauge>::default();
    let mut seen: BTreeMap<String, ()> = BTreeMap::new();
    for run in state.inventory().store().job_runs(None, 500).await? {
        if run.outcome == "running" || seen.insert(run.job.clone(), ()).is_some() {
            continue;
        }
        let at = run.finished_at.unwrap_or(run.started_at);
        last_run
            .get_or_create(&JobLabels {
                job: run.job,
                outcome: run.outcome,
            })
            .set(at.as_millisecond() as f64 / 1000.0);
    }
    registry.register(
        "job_last_run_timestamp_seconds",
        "When each scheduled job last finished, labelled with its outcome (ok, warning, failed, interrupted)",
        last_run,
    );

    if let Some(engine) = state.alerts() {
        let alerts = Family::<AlertLabels, Gauge>::default();
        if let Ok(views) = engine.alerts().await {
            for v in views
                .into_iter()
                .filter(|v| v.status() == AlertStatus::Firing)
            {
                let state = if !v.silenced_by.is_empty() {
                    "silenced"
                } else if !v.inhibited_by.is_empty() {
                    "inhibited"
                } else {
                    "active"
                };
                alerts
                    .get_or_create(&AlertLabels {
                        alertname: v.alert.name().to_owned(),
                        severity: v.alert.labels.get("severity").cloned().unwrap_or_default(),
                        state: state.to_owned(),
                    })
                    .inc();
            }
        }
        registry.register(
            "alerts",
            "Firing alerts by name, severity and state (active, silenced, inhibited)",
            alerts,
        );
    }
    Ok(registry)
}

/// Prometheus metrics: proxied calls and errors, Meta's usage values, pacing holds, token
/// status and time to expiry, job outcomes, alert counts. No key is needed unless
/// `server.metrics_require_key` is set (then a reader key).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if state.config().metrics_require_key {
        let caller = crate::auth::Caller::from_headers(&headers, &state).await?;
        caller.require(Role::Reader)?;
    }
    let scraped = scraped(&state).await?;
    let text = state
        .metrics()
        .render(&scraped)
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
