//! Configuration: figment layers (defaults → `graphwarden.toml` → `GRAPHWARDEN_*` environment,
//! with `__` for nesting and a `_FILE` suffix to read a value from a file → flags), unknown keys
//! refused, and a report of where each effective value came from.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The documented example, printed by `config example` and written commented-out by `init`.
pub const EXAMPLE: &str = include_str!("../../../config.example.toml");

/// Environment variables with the `GRAPHWARDEN_` prefix that are not settings.
const NOT_SETTINGS: &[&str] = &["DATA_DIR", "CONFIG", "TEST_DATABASE_URL", "FAULT_POINT"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub graph_url: String,
    pub graph_version: String,
    pub graph: GraphSettings,
    pub inspection: InspectionConfig,
    pub renewal: RenewalConfig,
    pub database: DatabaseConfig,
    pub key: KeyConfig,
    pub log: LogConfig,
    pub server: ServerSettings,
    pub scheduler: SchedulerSettings,
    pub alerts: AlertSettings,
    pub proxy: ProxySettings,
    pub quality: QualitySettings,
    pub audit: AuditSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            graph_url: "https://graph.facebook.com".to_owned(),
            graph_version: "v26.0".to_owned(),
            graph: GraphSettings::default(),
            inspection: InspectionConfig::default(),
            renewal: RenewalConfig::default(),
            database: DatabaseConfig::default(),
            key: KeyConfig::default(),
            log: LogConfig::default(),
            server: ServerSettings::default(),
            scheduler: SchedulerSettings::default(),
            alerts: AlertSettings::default(),
            proxy: ProxySettings::default(),
            quality: QualitySettings::default(),
            audit: AuditSettings::default(),
        }
    }
}

/// `[audit]`: what `graphwarden audit` and the weekly `audit` job hold tokens and apps to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    pub rotation_age: String,
    pub unused_after: String,
    pub app_secret_age: String,
    pub data_access_warning: String,
    pub expected_user_ids: Vec<String>,
    pub expected_targets: Vec<String>,
    pub automation_calls: i64,
    pub retention: String,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            rotation_age: "60d".to_owned(),
            unused_after: "30d".to_owned(),
            app_secret_age: "365d".to_owned(),
            data_access_warning: "14d".to_owned(),
            expected_user_ids: Vec::new(),
            expected_targets: Vec::new(),
            automation_calls: 100,
            retention: "365d".to_owned(),
        }
    }
}

/// `[quality]`: Event Match Quality of Conversions API datasets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QualitySettings {
    pub schedule: String,
    pub drop_alert: f64,
    pub min_score: f64,
    pub datasets: Vec<DatasetSettings>,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self {
            schedule: "15 */6 * * *".to_owned(),
            drop_alert: 1.0,
            min_score: 0.0,
            datasets: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatasetSettings {
    pub dataset_id: String,
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySettings {
    pub listen: String,
    pub upstream: String,
    pub default_alias: String,
    pub soft_percent: f64,
    pub hard_percent: f64,
    pub max_spacing: String,
    pub probe_after: String,
    pub throttle_hold: String,
    pub max_wait: String,
    pub record: bool,
    pub record_retention: String,
    pub rollup_retention: String,
    pub max_body_bytes: usize,
    pub max_buffer_bytes: usize,
    pub max_header_bytes: usize,
    pub upstream_timeout: String,
    pub idle_timeout: String,
    pub retries: usize,
    pub cache_ttl: String,
    pub workers: usize,
    pub http2: bool,
    pub pacing_sync: String,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            upstream: String::new(),
            default_alias: String::new(),
            soft_percent: 75.0,
            hard_percent: 95.0,
            max_spacing: "1s".to_owned(),
            probe_after: "30s".to_owned(),
            throttle_hold: "60s".to_owned(),
            max_wait: "10s".to_owned(),
            record: true,
            record_retention: "7d".to_owned(),
            rollup_retention: "90d".to_owned(),
            max_body_bytes: 8 * 1024 * 1024,
            max_buffer_bytes: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            upstream_timeout: "120s".to_owned(),
            idle_timeout: "60s".to_owned(),
            retries: 2,
            cache_ttl: "30s".to_owned(),
            workers: 0,
            http2: false,
            pacing_sync: "1s".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: String,
    pub body_limit_bytes: usize,
    pub request_timeout: String,
    pub rate_limit_per_minute: u32,
    pub shutdown_grace: String,
    pub public_url: String,
    pub link_ttl: String,
    pub metrics_require_key: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7380".to_owned(),
            body_limit_bytes: 65_536,
            request_timeout: "5m".to_owned(),
            rate_limit_per_minute: 600,
            shutdown_grace: "30s".to_owned(),
            public_url: String::new(),
            link_ttl: "7d".to_owned(),
            metrics_require_key: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub timezone: String,
    pub jitter: String,
    pub run_retention: String,
    /// Jobs by name; the defaults can be changed or disabled, and more added.
    pub jobs: std::collections::BTreeMap<String, JobSettings>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        let job = |schedule: &str| JobSettings {
            schedule: schedule.to_owned(),
            ..JobSettings::default()
        };
        Self {
            enabled: true,
            timezone: "UTC".to_owned(),
            jitter: "60s".to_owned(),
            run_retention: "90d".to_owned(),
            jobs: [
                ("inspect".to_owned(), job("0 */6 * * *")),
                ("renew".to_owned(), job("0 8 * * *")),
                ("prune".to_owned(), job("30 3 * * *")),
                ("audit".to_owned(), job("0 7 * * MON")),
            ]
            .into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    pub schedule: String,
    pub enabled: bool,
    /// What the job does (`inspect`, `renew`, `prune`, `quality`, `audit`); by default its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The job's own time zone; by default `scheduler.timezone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            schedule: String::new(),
            enabled: true,
            kind: None,
            timezone: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GraphSettings {
    pub timeout: String,
    pub retries: usize,
    pub timed_proof: bool,
}

impl Default for GraphSettings {
    fn default() -> Self {
        Self {
            timeout: "20s".to_owned(),
            retries: 3,
            timed_proof: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RenewalConfig {
    pub user_window: String,
    pub system_user_fraction: f64,
    /// Per-app overrides, by Meta app id.
    pub apps: std::collections::BTreeMap<String, AppRenewalConfig>,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        Self {
            user_window: "14d".to_owned(),
            system_user_fraction: 0.75,
            apps: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppRenewalConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_user_fraction: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    pub warning_window: String,
    pub concurrency: usize,
    pub pace_above_percent: f64,
    pub max_wait: String,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        Self {
            warning_window: "7d".to_owned(),
            concurrency: 4,
            pace_above_percent: 75.0,
            max_wait: "60s".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub url: String,
    pub busy_timeout: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    pub file: PathBuf,
    pub allow_insecure_permissions: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://graphwarden.db".to_owned(),
            busy_timeout: "5s".to_owned(),
            max_connections: 8,
        }
    }
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::from("master.key"),
            allow_insecure_permissions: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "warn".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `[alerts]`: the alert engine inside `graphwarden serve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    pub enabled: bool,
    pub evaluate_every: String,
    pub expiry_warnings: Vec<String>,
    pub data_access_warning: String,
    pub max_attempts: u32,
    pub traffic: TrafficSettings,
    pub route: graphwarden_core::alert::Route,
    /// When unset, graphwarden's default rules (a dead token mutes its lesser alerts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inhibit_rules: Option<Vec<graphwarden_core::alert::InhibitRule>>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub send_resolved: std::collections::BTreeMap<String, bool>,
    /// Never serialized: receivers hold secrets (webhook secrets, Slack URLs, SMTP passwords).
    #[serde(skip_serializing)]
    pub receivers: Receivers,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            evaluate_every: "60s".to_owned(),
            expiry_warnings: ["14d", "7d", "3d", "1d"].map(str::to_owned).to_vec(),
            data_access_warning: "14d".to_owned(),
            max_attempts: 10,
            traffic: TrafficSettings::default(),
            route: graphwarden_core::alert::Route::to(graphwarden_server::alerting::LOG_RECEIVER),
            inhibit_rules: None,
            send_resolved: std::collections::BTreeMap::new(),
            receivers: Receivers::default(),
        }
    }
}

/// `[alerts.traffic]`: alert rules over the proxy's call records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficSettings {
    pub enabled: bool,
    pub window: String,
    pub spike_factor: f64,
    pub spike_min_calls: i64,
    pub auth_error_burst: i64,
    pub error_rate_percent: f64,
    pub error_rate_min_calls: i64,
    pub usage_percent: f64,
}

impl Default for TrafficSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            window: "10m".to_owned(),
            spike_factor: 5.0,
            spike_min_calls: 100,
            auth_error_burst: 5,
            error_rate_percent: 20.0,
            error_rate_min_calls: 20,
            usage_percent: 80.0,
        }
    }
}

/// The configured receivers by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Receivers(pub std::collections::BTreeMap<String, graphwarden_notify::ReceiverConfig>);

/// Compares names and kinds only: the settings themselves hold secrets and are not comparable.
impl PartialEq for Receivers {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((a, x), (b, y))| a == b && x.kind() == y.kind())
    }
}

/// Settings given as command-line flags (the last layer).
#[derive(Debug, Clone, Default)]
pub struct FlagSettings {
    pub database_url: Option<String>,
    pub allow_insecure_key_permissions: bool,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

/// Where the data directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDirSource {
    Flag,
    Env,
    Platform,
}

impl DataDirSource {
    fn describe(self) -> &'static str {
        match self {
            Self::Flag => "--data-dir",
            Self::Env => "GRAPHWARDEN_DATA_DIR",
            Self::Platform => "the platform's data directory",
        }
    }
}

/// Everything loaded: the data directory, the effective config, and the figment that made it
/// (kept to report sources).
#[derive(Debug)]
pub struct Loaded {
    pub data_dir: PathBuf,
    pub data_dir_source: DataDirSource,
    pub config_file: Option<PathBuf>,
    pub config: Config,
    figment: Figment,
}

/// The data directory: `--data-dir`, else `GRAPHWARDEN_DATA_DIR`, else the platform's.
pub fn data_dir(flag: Option<&Path>) -> Result<(PathBuf, DataDirSource), CliError> {
    if let Some(dir) = flag {
        return Ok((dir.to_owned(), DataDirSource::Flag));
    }
    if let Some(dir) = std::env::var_os("GRAPHWARDEN_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(dir), DataDirSource::Env));
    }
    dirs::data_dir()
        .map(|d| (d.join("graphwarden"), DataDirSource::Platform))
        .ok_or_else(|| {
            CliError::config(
                "this platform has no data directory; pass --data-dir DIR or set GRAPHWARDEN_DATA_DIR",
            )
        })
}

/// Load the layered configuration.
pub fn load(
    data_dir_flag: Option<&Path>,
    config_flag: Option<&Path>,
    flags: &FlagSettings,
) -> Result<Loaded, CliError> {
    let (data_dir, data_dir_source) = data_dir(data_dir_flag)?;
    let explicit = config_flag.map(Path::to_owned).or_else(|| {
        std::env::var_os("GRAPHWARDEN_CONFIG")
            .filter(|c| !c.is_empty())
            .map(PathBuf::from)
    });
    let config_file = match explicit {
        Some(path) if !path.is_file() => {
            return Err(CliError::config(format!(
                "the configuration file {} does not exist",
                path.display()
            )));
        }
        Some(path) => Some(path),
        None => Some(data_dir.join("graphwarden.toml")).filter(|p| p.is_file()),
    };

    let mut figment = Figment::from(Named(DEFAULTS, Serialized::defaults(Config::default())));
    if let Some(path) = &config_file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(
            Env::prefixed("GRAPHWARDEN_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_uppercase();
                    !key.ends_with("_FILE") && !NOT_SETTINGS.contains(&key.as_str())
                })
                .split("__"),
        )
        .merge(FileEnv)
        .merge(Named(FLAGS, flag_provider(flags)));
    let config: Config = figment.extract().map_err(|e| config_error(&e))?;
    validate(&config)?;
    Ok(Loaded {
        data_dir,
        data_dir_source,
        config_file,
        config,
        figment,
    })
}

fn flag_provider(flags: &FlagSettings) -> Serialized<Dict> {
    let mut dict = Dict::new();
    let mut database = Dict::new();
    if let Some(url) = &flags.database_url {
        database.insert("url".into(), Value::from(url.clone()));
    }
    if !database.is_empty() {
        dict.insert("database".into(), Value::from(database));
    }
    if flags.allow_insecure_key_permissions {
        let mut key = Dict::new();
        key.insert("allow_insecure_permissions".into(), Value::from(true));
        dict.insert("key".into(), Value::from(key));
    }
    let mut log = Dict::new();
    if let Some(level) = &flags.log_level {
        log.insert("level".into(), Value::from(level.clone()));
    }
    if let Some(format) = &flags.log_format {
        log.insert("format".into(), Value::from(format.clone()));
    }
    if !log.is_empty() {
        dict.insert("log".into(), Value::from(log));
    }
    Serialized::defaults(dict)
}

const DEFAULTS: &str = "default";
const FLAGS: &str = "command-line flag";

/// A provider under a name of our choosing, so `config show` can say "default" or
/// "command-line flag" rather than a type name.
struct Named<P>(&'static str, P);

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.1.data()
    }
}

fn config_error(err: &figment::Error) -> CliError {
    // Figment's message names the key and the source; values are not included for
    // unknown-field errors, and invalid-type errors show only the offending type.
    let mut message = err.to_string();
    if let Some(meta) = &err.metadata {
        let source = describe_source(meta, &err.path);
        if !message.contains(&source) {
            message = format!("{message} (from {source})");
        }
    }
    CliError::config(format!("invalid configuration: {message}"))
}

fn validate(config: &Config) -> Result<(), CliError> {
    for (key, value) in [
        ("graph.timeout", &config.graph.timeout),
        (
            "inspection.warning_window",
            &config.inspection.warning_window,
        ),
        ("inspection.max_wait", &config.inspection.max_wait),
        ("renewal.user_window", &config.renewal.user_window),
        ("audit.rotation_age", &config.audit.rotation_age),
        ("audit.unused_after", &config.audit.unused_after),
        ("audit.app_secret_age", &config.audit.app_secret_age),
        (
            "audit.data_access_warning",
            &config.audit.data_access_warning,
        ),
        ("audit.retention", &config.audit.retention),
    ] {
        graphwarden_core::duration::parse_duration(value)
            .map_err(|e| CliError::config(format!("invalid `{key}`: {e}")))?;
    }
    if !(config.graph_url.starts_with("https://") || config.graph_url.starts_with("http://")) {
        return Err(CliError::config(format!(
            "`graph_url` must be an http(s) URL such as https://graph.facebook.com, not `{}`",
            config.graph_url
        )));
    }
    let v = config.graph_version.strip_prefix('v').unwrap_or("");
    if !v.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    }) {
        return Err(CliError::config(format!(
            "`graph_version` must look like `v26.0`, not `{}`",
            config.graph_version
        )));
    }
    if config.audit.automation_calls < 1 {
        return Err(CliError::config(
            "`audit.automation_calls` must be at least 1",
        ));
    }
    for id in config
        .audit
        .expected_user_ids
        .iter()
        .chain(&config.audit.expected_targets)
    {
        let digits = id.strip_prefix("act_").unwrap_or(id);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CliError::config(format!(
                "`audit.expected_user_ids` and `audit.expected_targets` hold Meta ids (digits, or `act_` and digits), not `{id}`"
            )));
        }
    }
    if !(0.1..=0.99).contains(&config.renewal.system_user_fraction) {
        return Err(CliError::config(
            "`renewal.system_user_fraction` must be between 0.1 and 0.99",
        ));
    }
    for (app, o) in &config.renewal.apps {
        graphwarden_core::AppId::parse(app)
            .map_err(|e| CliError::config(format!("`renewal.apps`: {e}")))?;
        if let Some(w) = &o.user_window {
            graphwarden_core::duration::parse_duration(w).map_err(|e| {
                CliError::config(format!("invalid `renewal.apps.{app}.user_window`: {e}"))
            })?;
        }
        if o.system_user_fraction
            .is_some_and(|f| !(0.1..=0.99).contains(&f))
        {
            return Err(CliError::config(format!(
                "`renewal.apps.{app}.system_user_fraction` must be between 0.1 and 0.99"
            )));
        }
    }
    if config.inspection.concurrency == 0 || config.inspection.concurrency > 64 {
        return Err(CliError::config(
            "`inspection.concurrency` must be between 1 and 64",
        ));
    }
    if !(1.0..=100.0).contains(&config.inspection.pace_above_percent) {
        return Err(CliError::config(
            "`inspection.pace_above_percent` must be between 1 and 100",
        ));
    }
    for (key, value) in [
        ("server.request_timeout", &config.server.request_timeout),
        ("server.shutdown_grace", &config.server.shutdown_grace),
        ("server.link_ttl", &config.server.link_ttl),
        ("scheduler.jitter", &config.scheduler.jitter),
        ("scheduler.run_retention", &config.scheduler.run_retention),
    ] {
        graphwarden_core::duration::parse_duration(value)
            .map_err(|e| CliError::config(format!("invalid `{key}`: {e}")))?;
    }
    config
        .server
        .listen
        .parse::<std::net::SocketAddr>()
        .map_err(|_| {
            CliError::config(format!(
                "`server.listen` must be an address and port such as 127.0.0.1:7380, not `{}`",
                config.server.listen
            ))
        })?;
    let public = config.server.public_url.trim();
    if !(public.is_empty() || public.starts_with("https://") || public.starts_with("http://")) {
        return Err(CliError::config(format!(
            "`server.public_url` must be an http(s) URL such as https://graphwarden.example.com, not `{public}`"
        )));
    }
    if config.server.body_limit_bytes < 1024 || config.server.rate_limit_per_minute == 0 {
        return Err(CliError::config(
            "`server.body_limit_bytes` must be at least 1024 and `server.rate_limit_per_minute` at least 1",
        ));
    }
    graphwarden_core::duration::parse_duration(&config.database.busy_timeout)
        .map_err(|e| CliError::config(format!("invalid `database.busy_timeout`: {e}")))?;
    if config.database.max_connections == 0 || config.database.max_connections > 1000 {
        return Err(CliError::config(
            "`database.max_connections` must be between 1 and 1000",
        ));
    }
    tracing_subscriber::EnvFilter::try_new(&config.log.level).map_err(|e| {
        CliError::config(format!(
            "`log.level` is not a level or filter ({e}); use `error`, `warn`, `info`, `debug` or `trace`"
        ))
    })?;
    Ok(())
}

/// `GRAPHWARDEN_SECTION__KEY_FILE=/path`: the setting's value is the file's content, with a
/// trailing newline removed. For secrets kept in mounted files.
struct FileEnv;

impl Provider for FileEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable (_FILE)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        vars.sort();
        for (name, path) in vars {
            let Some(setting) = name
                .strip_prefix("GRAPHWARDEN_")
                .and_then(|rest| rest.strip_suffix("_FILE"))
            else {
                continue;
            };
            if NOT_SETTINGS.contains(&setting) {
                continue;
            }
            let content = std::fs::read_to_string(&path)
                .map_err(|e| figment::Error::from(format!("{name}: cannot read {path}: {e}")))?;
            let value = content.strip_suffix('\n').unwrap_or(&content);
            let value = value.strip_suffix('\r').unwrap_or(value).to_owned();
            let parts: Vec<String> = setting.split("__").map(str::to_ascii_lowercase).collect();
            insert_path(&mut root, &parts, Value::from(value));
        }
        Ok(Profile::Default.collect(root))
    }
}

fn insert_path(dict: &mut Dict, parts: &[String], value: Value) {
    match parts {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = Value::from(inner);
            }
        }
    }
}

fn describe_source(meta: &Metadata, path: &[String]) -> String {
    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
    match &meta.source {
        Some(figment::Source::File(file)) => format!("{}", file.display()),
        _ if meta.name.starts_with("environment variable (_FILE)") => {
            format!("GRAPHWARDEN_{}_FILE", keys.join("__").to_ascii_uppercase())
        }
        _ if meta.name.contains("environment") => {
            format!("GRAPHWARDEN_{}", keys.join("__").to_ascii_uppercase())
        }
        _ => meta.name.to_string(),
    }
}

/// One row of `config show`.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub key: String,
    pub value: serde_json::Value,
    pub source: String,
}

/// Settings whose values are secret, or may hold one.
fn redact(key: &str, value: serde_json::Value) -> serde_json::Value {
    match (key, &value) {
        ("database.url", serde_json::Value::String(url)) => {
            serde_json::Value::String(graphwarden_store::redact_url(url))
        }
        _ => value,
    }
}

impl Loaded {
    /// The effective settings, secrets redacted, each with where it came from.
    pub fn settings(&self) -> Vec<Setting> {
        let mut out = vec![Setting {
            key: "data_dir".to_owned(),
            value: serde_json::Value::String(self.data_dir.display().to_string()),
            source: self.data_dir_source.describe().to_owned(),
        }];
        let value = serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null);
        let mut flat = Vec::new();
        flatten("", &value, &mut flat);
        for (key, value) in flat {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            let source = self
                .figment
                .find_metadata(&key)
                .map_or_else(|| DEFAULTS.to_owned(), |meta| describe_source(meta, &path));
            out.push(Setting {
                value: redact(&key, value),
                key,
                source,
            });
        }
        out
    }

    pub fn key_file(&self) -> PathBuf {
        self.resolve(&self.config.key.file)
    }

    /// The database URL with relative SQLite paths placed inside the data directory.
    pub fn database_url(&self) -> String {
        let url = &self.config.database.url;
        match graphwarden_store::sqlite::path_from_url(url) {
            Ok(path) if path.is_relative() => {
                format!("sqlite://{}", self.data_dir.join(path).display())
            }
            _ => url.clone(),
        }
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_relative() {
            self.data_dir.join(path)
        } else {
            path.to_owned()
        }
    }
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// The example with every setting commented out, as `init` writes it: valid, and changing
/// nothing until someone uncomments a line.
pub fn initial_file() -> &'static str {
    EXAMPLE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example, with its settings uncommented, is a valid configuration equal to the
    /// defaults: the documentation cannot drift from the code.
    #[test]
    fn example_documents_exactly_the_defaults() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| {
                let t = line.trim_start();
                match t.strip_prefix("# ") {
                    Some(rest) if rest.contains(" = ") && !rest.contains("GRAPHWARDEN_") => {
                        rest.to_owned()
                    }
                    _ => line.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = Figment::from(Toml::string(&uncommented)).extract().unwrap();
        assert_eq!(parsed, Config::default());
        let keys_in_example = uncommented
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .count();
        let mut flat = Vec::new();
        flatten(
            "",
            &serde_json::to_value(Config::default()).unwrap(),
            &mut flat,
        );
        assert_eq!(
            keys_in_example,
            flat.len(),
            "every setting is documented in config.example.toml"
        );
    }
}
