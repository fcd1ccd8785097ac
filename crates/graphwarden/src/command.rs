//! Dispatch: load the configuration, start logging, run one command.

mod apikey;
mod app;
mod audit;
mod check;
mod config;
mod demo;
mod events;
mod init;
mod jobs;
mod key;
mod login;
mod pages;
mod renew;
mod revoke;
mod scan;
mod serve;
mod silence;
mod sim;
mod token;
mod usage;
mod user;

use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{Clock, SystemClock};
use graphwarden_store::{
    Inventory, MasterKey, OpenOptions, PostgresOptions, SqliteOptions, StoreError,
};

use crate::cli::{Cli, Command, ConfigCommand};
use crate::config::{self as settings, FlagSettings, Loaded, LogFormat};
use crate::exit::{CliError, CliResult};

/// What every command gets: the loaded configuration, the clock and who is acting.
pub struct Context {
    pub loaded: Loaded,
    pub clock: Arc<dyn Clock>,
    pub actor: String,
}

impl Context {
    pub fn open_options(&self, master_key: MasterKey) -> CliResult<OpenOptions> {
        let db = &self.loaded.config.database;
        let busy = graphwarden_core::duration::parse_duration(&db.busy_timeout)?;
        let busy = Duration::from_millis(u64::try_from(busy.as_millis()).unwrap_or(5_000));
        Ok(OpenOptions {
            url: self.loaded.database_url(),
            master_key,
            clock: Arc::clone(&self.clock),
            sqlite: SqliteOptions {
                create: false,
                busy_timeout: busy,
                max_readers: db.max_connections,
            },
            postgres: PostgresOptions {
                max_connections: db.max_connections,
                ..PostgresOptions::default()
            },
        })
    }

    pub fn load_master_key(&self) -> CliResult<MasterKey> {
        Ok(MasterKey::load_file(
            &self.loaded.key_file(),
            self.loaded.config.key.allow_insecure_permissions,
        )?)
    }

    /// The Graph client, from `graph_url`, `graph_version` and `[graph]`.
    pub fn graph(&self) -> CliResult<graphwarden_meta::GraphClient> {
        let cfg = &self.loaded.config;
        let timeout = graphwarden_core::duration::parse_duration(&cfg.graph.timeout)?;
        let config = graphwarden_meta::GraphConfig {
            base_url: cfg.graph_url.clone(),
            version: cfg.graph_version.clone(),
            timeout: Duration::from_millis(u64::try_from(timeout.as_millis()).unwrap_or(20_000)),
            retries: cfg.graph.retries,
            timed_proof: cfg.graph.timed_proof,
        };
        graphwarden_meta::GraphClient::new(config, Arc::clone(&self.clock))
            .map_err(|e| CliError::config(e.to_string()))
    }

    /// Inspection settings from `[inspection]`.
    pub fn check_policy(&self) -> CliResult<graphwarden_lifecycle::CheckPolicy> {
        let cfg = &self.loaded.config.inspection;
        let max_wait = graphwarden_core::duration::parse_duration(&cfg.max_wait)?;
        Ok(graphwarden_lifecycle::CheckPolicy {
            warning_window: graphwarden_core::duration::parse_duration(&cfg.warning_window)?,
            concurrency: cfg.concurrency,
            pace_above_percent: cfg.pace_above_percent,
            max_wait: Duration::from_millis(u64::try_from(max_wait.as_millis()).unwrap_or(60_000)),
            ..graphwarden_lifecycle::CheckPolicy::default()
        })
    }

    pub fn audit_policy(&self) -> CliResult<graphwarden_lifecycle::audit::AuditPolicy> {
        let cfg = &self.loaded.config.audit;
        let d = |v: &str| graphwarden_core::duration::parse_duration(v);
        Ok(graphwarden_lifecycle::audit::AuditPolicy {
            rotation_age: d(&cfg.rotation_age)?,
            unused_after: d(&cfg.unused_after)?,
            app_secret_age: d(&cfg.app_secret_age)?,
            data_access_warning: d(&cfg.data_access_warning)?,
            expected_user_ids: cfg.expected_user_ids.clone(),
            expected_targets: cfg.expected_targets.clone(),
            automation_calls: cfg.automation_calls,
        })
    }

    /// A renewer for `inventory`, with the fault points tests can set through
    /// `GRAPHWARDEN_FAULT_POINT` (testing only: the process aborts at that point).
    pub fn renewer(&self, inventory: Arc<Inventory>) -> CliResult<graphwarden_lifecycle::Renewer> {
        let cfg = &self.loaded.config.renewal;
        let fault_hook: Option<graphwarden_lifecycle::FaultHook> =
            std::env::var("GRAPHWARDEN_FAULT_POINT")
                .ok()
                .and_then(|p| graphwarden_lifecycle::FaultPoint::parse(&p))
                .map(|wanted| {
                    let hook: graphwarden_lifecycle::FaultHook = Arc::new(move |point| {
                        if point == wanted {
                            std::process::abort();
                        }
                    });
                    hook
                });
        let mut apps = std::collections::HashMap::new();
        for (app, o) in &cfg.apps {
            let window = o
                .user_window
                .as_deref()
                .map(graphwarden_core::duration::parse_duration)
                .transpose()?;
            apps.insert(
                app.clone(),
                graphwarden_store::RenewalOverride {
                    enabled: o.enabled,
                    user_window_secs: window.map(|w| w.as_secs()),
                    system_user_fraction: o.system_user_fraction,
                },
            );
        }
        let policy = graphwarden_lifecycle::RenewPolicy {
            user_window: graphwarden_core::duration::parse_duration(&cfg.user_window)?,
            system_user_fraction: cfg.system_user_fraction,
            apps,
            fault_hook,
            ..graphwarden_lifecycle::RenewPolicy::default()
        };
        let owner = format!("{}:{}", self.actor, std::process::id());
        Ok(graphwarden_lifecycle::Renewer::new(
            inventory,
            self.graph()?,
            Arc::clone(&self.clock),
            policy,
            self.check_policy()?.warning_window,
            owner,
        ))
    }

    /// The scheduler of `[scheduler]`, for `inventory`; `owner` names this process in leases.
    pub fn scheduler(
        &self,
        inventory: Arc<Inventory>,
        owner: &str,
    ) -> CliResult<graphwarden_server::Scheduler> {
        use graphwarden_server::{JobKind, JobSpec, SchedulerConfig};
        let cfg = &self.loaded.config.scheduler;
        let mut jobs = Vec::new();
        for (name, job) in &cfg.jobs {
            if name == graphwarden_server::alerting::LEASE {
                return Err(CliError::config(format!(
                    "`scheduler.jobs.{name}`: the name `{name}` is the alert engine's own; pick another"
                )));
            }
            if !job.enabled {
                continue;
            }
            let kind = match job.kind.as_deref().unwrap_or(name) {
                "inspect" => JobKind::Inspect,
                "renew" => JobKind::Renew,
                "prune" => JobKind::Prune,
                "quality" => JobKind::Quality,
                "audit" => JobKind::Audit,
                other => {
                    return Err(CliError::config(format!(
                        "`scheduler.jobs.{name}`: `{other}` is not a kind of job; set `kind` to `inspect`, `renew`, `prune`, `quality` or `audit`"
                    )));
                }
            };
            jobs.push(JobSpec {
                name: name.clone(),
                kind,
                schedule: job.schedule.clone(),
                timezone: job.timezone.clone().unwrap_or_else(|| cfg.timezone.clone()),
            });
        }
        let quality = &self.loaded.config.quality;
        let mut datasets = Vec::new();
        for d in &quality.datasets {
            let bad = |what: &str| CliError::config(format!("`quality.datasets`: {what}"));
            if d.dataset_id.is_empty() || !d.dataset_id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!(
                    "`{}` is not a dataset (pixel) id",
                    d.dataset_id
                )));
            }
            let token = graphwarden_core::TokenAlias::parse(&d.token)
                .map_err(|e| bad(&format!("token `{}`: {e}", d.token)))?;
            datasets.push(graphwarden_server::DatasetSpec {
                dataset_id: d.dataset_id.clone(),
                token,
                agent_name: d.agent_name.clone().filter(|a| !a.is_empty()),
            });
        }
        if !datasets.is_empty() && !jobs.iter().any(|j| j.kind == JobKind::Quality) {
            jobs.push(JobSpec {
                name: "quality".to_owned(),
                kind: JobKind::Quality,
                schedule: quality.schedule.clone(),
                timezone: cfg.timezone.clone(),
            });
        }
        let to_std = |d: jiff::SignedDuration| {
            Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(0))
        };
        let config = SchedulerConfig {
            jobs,
            jitter: to_std(graphwarden_core::duration::parse_duration(&cfg.jitter)?),
            run_retention: graphwarden_core::duration::parse_duration(&cfg.run_retention)?,
            call_retention: graphwarden_core::duration::parse_duration(
                &self.loaded.config.proxy.record_retention,
            )?,
            rollup_retention: graphwarden_core::duration::parse_duration(
                &self.loaded.config.proxy.rollup_retention,
            )?,
            owner: owner.to_owned(),
            datasets,
            audit: self.audit_policy()?,
            audit_retention: graphwarden_core::duration::parse_duration(
                &self.loaded.config.audit.retention,
            )?,
            ..SchedulerConfig::default()
        };
        let checker = graphwarden_lifecycle::Checker::new(
            Arc::clone(&inventory),
            self.graph()?,
            Arc::clone(&self.clock),
            self.check_policy()?,
        );
        let renewer = self.renewer(Arc::clone(&inventory))?;
        graphwarden_server::Scheduler::new(
            inventory,
            checker,
            renewer,
            Arc::clone(&self.clock),
            config,
        )
        .map_err(|e| CliError::config(e.to_string()))
    }

    /// Where `key rotate-master` keeps the new master key until the database uses it.
    pub fn next_key_file(&self) -> std::path::PathBuf {
        let mut path = self.loaded.key_file().into_os_string();
        path.push(".next");
        path.into()
    }

    /// Open the inventory: the key first (so a bad key touches nothing), then the database.
    ///
    /// When the key is refused but a `.next` key left by an interrupted `key rotate-master`
    /// opens the database, that rotation had committed: finish it by moving the new key into
    /// place.
    pub async fn inventory(&self) -> CliResult<Inventory> {
        let key = self.load_master_key()?;
        match Inventory::open(self.open_options(key)?).await {
            Err(StoreError::WrongMasterKey) if self.next_key_file().exists() => {
                let next = MasterKey::load_file(
                    &self.next_key_file(),
                    self.loaded.config.key.allow_insecure_permissions,
                )?;
                let inventory = Inventory::open(self.open_options(next)?).await?;
                key::promote_next_key(self)?;
                tracing::warn!(
                    key_file = %self.loaded.key_file().display(),
                    "Finished an interrupted master key rotation: the new key is now in place."
                );
                Ok(inventory)
            }
            other => Ok(other?),
        }
    }
}

/// Who the event log records for commands run here.
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .and_then(|u| graphwarden_core::free_text("user", &u, 64, false).ok())
        .filter(|u| !u.is_empty());
    match user {
        Some(user) => format!("cli:{user}"),
        None => "cli".to_owned(),
    }
}

/// The login name of this process's user, from `/etc/passwd`, when the environment has none
/// (cron, containers).
fn user_from_passwd() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid_field = fields.nth(1)?;
            (uid_field.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
    }
    #[cfg(not(unix))]
    None
}

fn init_logging_level(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::colour_enabled())
        .try_init();
}

fn init_logging(loaded: &Loaded) {
    let filter = tracing_subscriber::EnvFilter::try_new(&loaded.config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::output::colour_enabled());
    let _ = match loaded.config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn run(cli: Cli) -> CliResult<u8> {
    // The example needs nothing, not even a valid environment.
    if let Command::Config(ConfigCommand::Example) = &cli.command {
        print!("{}", settings::EXAMPLE);
        return Ok(0);
    }
    // The demo makes its own data directory.
    if let Command::Demo(args) = cli.command {
        init_logging_level(cli.log_level.as_deref().unwrap_or("error"));
        return demo::run(args).await;
    }
    // The simulator needs no data directory, key or database either.
    if let Command::Sim(args) = cli.command {
        init_logging_level(cli.log_level.as_deref().unwrap_or("warn"));
        return sim::run(args).await;
    }
    let flags = FlagSettings {
        database_url: cli.database_url.clone(),
        allow_insecure_key_permissions: cli.allow_insecure_key_permissions,
        log_level: cli.log_level.clone(),
        log_format: cli.log_format.clone(),
    };
    let loaded = settings::load(cli.data_dir.as_deref(), cli.config.as_deref(), &flags)?;
    init_logging(&loaded);
    let ctx = Context {
        loaded,
        clock: Arc::new(SystemClock),
        actor: actor(),
    };
    tracing::debug!(data_dir = %ctx.loaded.data_dir.display(), "Loaded the configuration.");
    match cli.command {
        Command::Init => init::run(&ctx).await,
        Command::Check(args) => check::run(&ctx, args).await,
        Command::Renew(args) => renew::run(&ctx, args).await,
        Command::Pages(command) => pages::run(&ctx, command).await,
        Command::Login(args) => login::run(&ctx, args).await,
        Command::Config(command) => config::run(&ctx, command),
        Command::App(command) => app::run(&ctx, command).await,
        Command::Token(command) => token::run(&ctx, *command).await,
        Command::Key(command) => key::run(&ctx, command).await,
        Command::Serve(args) => serve::run(&ctx, args).await,
        Command::Apikey(command) => apikey::run(&ctx, command).await,
        Command::Jobs(args) => jobs::run(&ctx, args).await,
        Command::Silence(command) => silence::run(&ctx, command).await,
        Command::Usage(args) => usage::run(&ctx, args).await,
        Command::Scan(args) => scan::run(&ctx, args).await,
        Command::Revoke(args) => revoke::run(&ctx, args).await,
        Command::Events(command) => events::run(&ctx, command).await,
        Command::Audit(args) => audit::run(&ctx, args).await,
        Command::User(command) => user::run(&ctx, command).await,
        Command::Sim(_) | Command::Demo(_) => Ok(0),
    }
}

/// Turn a flag's text into a checked value, or a usage error naming the flag.
/// A lifecycle error as a command error.
pub fn derive_error(e: graphwarden_lifecycle::derive::DeriveError) -> CliError {
    use graphwarden_lifecycle::derive::DeriveError;
    match e {
        DeriveError::Store(s) => CliError::from(s),
        DeriveError::Meta(m) => {
            let code = match m.class() {
                graphwarden_meta::Classification::Transient
                | graphwarden_meta::Classification::Throttled { .. } => crate::exit::UNAVAILABLE,
                graphwarden_meta::Classification::AppConfiguration => crate::exit::CONFIG,
                _ => crate::exit::DATA,
            };
            CliError::new(code, format!("{m}. {}", m.class().action()))
        }
        DeriveError::Refused(why) => CliError::new(crate::exit::DATA, why),
    }
}

pub fn parse_flag<T>(
    flag: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, graphwarden_core::InvalidInput>,
) -> CliResult<T> {
    parse(text).map_err(|e| CliError::usage(format!("{flag}: {e}")))
}
