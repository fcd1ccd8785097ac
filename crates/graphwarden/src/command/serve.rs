//! `graphwarden serve`: the daemon. The API and health probes on `server.listen`, the scheduler
//! in the background, until SIGTERM or Ctrl-C; then no new request or job starts, and those in
//! flight get `server.shutdown_grace` to finish (an unfinished job resumes at the next start).

use std::sync::Arc;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::command::Context;
use crate::exit::{CliError, CliResult};

fn duration(text: &str) -> CliResult<Duration> {
    let d = graphwarden_core::duration::parse_duration(text)?;
    Ok(Duration::from_millis(
        u64::try_from(d.as_millis()).unwrap_or(0),
    ))
}

/// The alert engine's settings from `[alerts]`, checked: durations, receivers, and that every
/// receiver a route names is configured.
pub fn alerting_config(
    a: &crate::config::AlertSettings,
    quality: &crate::config::QualitySettings,
    base_url: &str,
    link_ttl: &str,
) -> CliResult<graphwarden_server::AlertingConfig> {
    use graphwarden_core::alert::{DispatchConfig, RouteTree};
    use graphwarden_core::duration::parse_duration;
    let bad =
        |what: &str, e: &dyn std::fmt::Display| CliError::config(format!("alerts.{what}: {e}"));
    let mut c = graphwarden_server::AlertingConfig::new(base_url)
        .map_err(|e| CliError::config(e.to_string()))?;
    let every = parse_duration(&a.evaluate_every).map_err(|e| bad("evaluate_every", &e))?;
    c.evaluate_every = Duration::from_millis(u64::try_from(every.as_millis()).unwrap_or(0));
    c.rules.expiry_warnings = a
        .expiry_warnings
        .iter()
        .map(|w| parse_duration(w).map(|d| (w.clone(), d)))
        .collect::<Result<_, _>>()
        .map_err(|e| bad("expiry_warnings", &e))?;
    c.rules.data_access_warning =
        parse_duration(&a.data_access_warning).map_err(|e| bad("data_access_warning", &e))?;
    let t = &a.traffic;
    c.rules.traffic = graphwarden_server::alerting::traffic::TrafficRules {
        enabled: t.enabled,
        window: parse_duration(&t.window).map_err(|e| bad("traffic.window", &e))?,
        spike_factor: t.spike_factor,
        spike_min_calls: t.spike_min_calls,
        auth_error_burst: t.auth_error_burst.max(1),
        error_rate_percent: t.error_rate_percent,
        error_rate_min_calls: t.error_rate_min_calls.max(1),
        usage_percent: t.usage_percent,
    };
    c.rules.quality = graphwarden_server::alerting::traffic::QualityRules {
        drop_points: quality.drop_alert,
        min_score: (quality.min_score > 0.0).then_some(quality.min_score),
    };
    c.link_ttl = parse_duration(link_ttl).map_err(|e| bad("link_ttl", &e))?;
    c.max_attempts = a.max_attempts.max(1);
    let tree = RouteTree::new(a.route.clone()).map_err(|e| bad("route", &e))?;
    let mut dispatch = DispatchConfig::new(tree);
    if let Some(rules) = &a.inhibit_rules {
        dispatch.inhibit_rules = rules.clone();
    }
    dispatch.send_resolved = a.send_resolved.clone();
    c.dispatch = dispatch;
    c.receivers = a.receivers.0.clone();
    c.validate()
        .map_err(|e| CliError::config(format!("alerts: {e}")))?;
    Ok(c)
}

/// The proxy's settings from `[proxy]` (and `graph_url`, `graph.timed_proof`), checked.
pub fn proxy_config(cfg: &crate::config::Config) -> CliResult<graphwarden_server::ProxyConfig> {
    let p = &cfg.proxy;
    let bad =
        |what: &str, e: &dyn std::fmt::Display| CliError::config(format!("proxy.{what}: {e}"));
    let d = |what: &str, text: &str| -> CliResult<Duration> {
        duration(text).map_err(|e| bad(what, &e.message))
    };
    if !(0.0..=1000.0).contains(&p.soft_percent)
        || !(0.0..=1000.0).contains(&p.hard_percent)
        || p.soft_percent > p.hard_percent
    {
        return Err(CliError::config(format!(
            "proxy.soft_percent ({}) and proxy.hard_percent ({}) must be percentages with soft ≤ hard",
            p.soft_percent, p.hard_percent
        )));
    }
    let default_alias = if p.default_alias.trim().is_empty() {
        None
    } else {
        Some(
            graphwarden_core::TokenAlias::parse(p.default_alias.trim())
                .map_err(|e| bad("default_alias", &e))?,
        )
    };
    let upstream = if p.upstream.trim().is_empty() {
        cfg.graph_url.clone()
    } else {
        p.upstream.trim().to_owned()
    };
    Ok(graphwarden_server::ProxyConfig {
        upstream,
        default_alias,
        pacing: graphwarden_core::pacing::PacingConfig {
            soft_percent: p.soft_percent,
            hard_percent: p.hard_percent,
            max_spacing: d("max_spacing", &p.max_spacing)?,
            probe_after: d("probe_after", &p.probe_after)?,
            throttle_hold: d("throttle_hold", &p.throttle_hold)?,
        },
        max_wait: d("max_wait", &p.max_wait)?,
        record: p.record,
        max_body: p.max_body_bytes,
        max_buffer: p.max_buffer_bytes,
        max_header_bytes: p.max_header_bytes,
        upstream_timeout: d("upstream_timeout", &p.upstream_timeout)?,
        idle_timeout: d("idle_timeout", &p.idle_timeout)?,
        retries: p.retries,
        timed_proof: cfg.graph.timed_proof,
        cache_ttl: d("cache_ttl", &p.cache_ttl)?,
        workers: p.workers,
        http2: p.http2,
        pacing_sync: d("pacing_sync", &p.pacing_sync)?,
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub async fn run(ctx: &Context, args: ServeArgs) -> CliResult<u8> {
    serve_until(ctx, args, shutdown_signal(), true).await
}

/// Serve until `stop` completes (SIGTERM or Ctrl-C for `graphwarden serve`; the demo's own
/// end for `graphwarden demo`), printing where it listens when `announce`.
pub async fn serve_until(
    ctx: &Context,
    args: ServeArgs,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    announce: bool,
) -> CliResult<u8> {
    let cfg = &ctx.loaded.config;
    let listen = args.listen.unwrap_or_else(|| cfg.server.listen.clone());
    let inventory = Arc::new(ctx.inventory().await?);
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let owner = format!("serve:{host}:{}", std::process::id());
    let scheduler = ctx.scheduler(Arc::clone(&inventory), &owner)?;
    scheduler
        .register()
        .await
        .map_err(|e| CliError::config(e.to_string()))?;
    let graph = ctx.graph()?;
    let checker = graphwarden_lifecycle::Checker::new(
        Arc::clone(&inventory),
        graph.clone(),
        Arc::clone(&ctx.clock),
        ctx.check_policy()?,
    );
    let public_url = Some(
        cfg.server
            .public_url
            .trim()
            .trim_end_matches('/')
            .to_owned(),
    )
    .filter(|u| !u.is_empty());
    let alerts = if cfg.alerts.enabled {
        let base = public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let mut config = alerting_config(&cfg.alerts, &cfg.quality, &base, &cfg.server.link_ttl)?;
        config.owner = owner.clone();
        Some(
            graphwarden_server::AlertEngine::start(
                Arc::clone(&inventory),
                Arc::clone(&ctx.clock),
                config,
            )
            .await
            .map_err(|e| CliError::new(crate::exit::UNAVAILABLE, e.to_string()))?,
        )
    } else {
        None
    };
    let state = graphwarden_server::AppState::new(
        graphwarden_server::Services {
            inventory: Arc::clone(&inventory),
            graph,
            checker,
            renewer: ctx.renewer(Arc::clone(&inventory))?,
            clock: Arc::clone(&ctx.clock),
            scheduler: scheduler.clone(),
            alerts: alerts.clone(),
        },
        graphwarden_server::ServerConfig {
            body_limit: cfg.server.body_limit_bytes,
            request_timeout: duration(&cfg.server.request_timeout)?,
            rate_limit_per_minute: cfg.server.rate_limit_per_minute,
            public_url,
            link_ttl: duration(&cfg.server.link_ttl)?,
            metrics_require_key: cfg.server.metrics_require_key,
            audit: ctx.audit_policy()?,
        },
    );
    let proxy_listen = args
        .proxy_listen
        .clone()
        .or_else(|| Some(cfg.proxy.listen.trim().to_owned()).filter(|l| !l.is_empty()));
    let proxy = match &proxy_listen {
        Some(addr) => {
            let mut config = proxy_config(cfg)?;
            if state.inventory().store().backend() == graphwarden_store::Backend::Sqlite {
                // One instance per SQLite database: no one to share pacing with.
                config.pacing_sync = Duration::ZERO;
            }
            let proxy =
                graphwarden_server::Proxy::new(state.clone(), config).map_err(CliError::config)?;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                CliError::new(
                    crate::exit::UNAVAILABLE,
                    format!("could not listen on {addr} for the proxy: {e}"),
                )
            })?;
            Some((proxy, listener))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
        CliError::new(
            crate::exit::UNAVAILABLE,
            format!("could not listen on {listen}: {e}"),
        )
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::new(crate::exit::IO, e.to_string()))?;
    let grace = duration(&cfg.server.shutdown_grace)?;
    // One signal stops both the server and the scheduler.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let scheduler_task = if cfg.scheduler.enabled {
        let rx = stop_rx.clone();
        let scheduler = scheduler.clone();
        Some(tokio::spawn(
            async move { scheduler.run(stopped(rx)).await },
        ))
    } else {
        None
    };
    let alert_task = alerts.map(|engine| {
        let rx = stop_rx.clone();
        let finished = scheduler.finished_signal();
        tokio::spawn(async move { engine.run(finished, stopped(rx)).await })
    });
    tokio::spawn(async move {
        stop.await;
        tracing::info!("Stopping: no new requests or jobs; letting those in flight finish.");
        let _ = stop_tx.send(true);
    });
    let proxy_task = match proxy {
        Some((proxy, listener)) => {
            let at = listener
                .local_addr()
                .map_err(|e| CliError::new(crate::exit::IO, e.to_string()))?;
            if announce {
                println!(
                    "graphwarden serve: Graph proxy on http://{at} (to {})",
                    proxy.config().upstream
                );
            }
            tracing::info!(%at, "The Graph proxy is listening.");
            let rx = stop_rx.clone();
            Some(tokio::spawn(proxy.serve(listener, stopped(rx), grace)))
        }
        None => None,
    };
    // A line for people and scripts: where it listens.
    if announce {
        println!(
            "graphwarden serve: API on http://{local}/api/v1 (dashboard: http://{local}/, health: /healthz, /readyz, metrics: /metrics)"
        );
    }
    tracing::info!(%local, scheduler = cfg.scheduler.enabled, "Serving.");
    graphwarden_server::launch_with_listener(state, listener, stopped(stop_rx), grace)
        .await
        .map_err(|e| CliError::new(crate::exit::IO, format!("the server stopped: {e}")))?;
    if let Some(task) = scheduler_task
        && tokio::time::timeout(grace, task).await.is_err()
    {
        tracing::warn!(
            "Jobs were still running when the grace period ended; they resume at the next start."
        );
    }
    if let Some(task) = alert_task {
        let _ = tokio::time::timeout(grace, task).await;
    }
    if let Some(task) = proxy_task {
        // The proxy writes its queued call records before it returns.
        let _ = task.await;
    }
    tracing::info!("Stopped.");
    Ok(0)
}
