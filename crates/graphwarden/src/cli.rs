//! The command line: every command and flag, parsed with clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keeps Meta Graph and Marketing API access tokens alive, watched and least-privileged.
#[derive(Debug, Parser)]
#[command(name = "graphwarden", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The data directory (default: GRAPHWARDEN_DATA_DIR, else the platform's data directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A configuration file to read instead of DATA_DIR/graphwarden.toml (or GRAPHWARDEN_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The database: `sqlite://PATH` or `postgres://USER@HOST/DB` (overrides `database.url`).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Accept a master key file that group or others can read.
    #[arg(long, global = true)]
    pub allow_insecure_key_permissions: bool,

    /// Log level or filter for standard error (overrides `log.level`).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format for standard error: `text` or `json` (overrides `log.format`).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, a commented configuration, the master key and the database.
    Init,
    /// Inspect tokens with `debug_token` and report what needs doing. Exits 0 when all is well,
    /// 1 for warnings, 2 for critical problems.
    Check(CheckArgs),
    /// Renew tokens that need it: exchange, refresh, derive Page tokens again. Crash-safe.
    /// Exits 0 when done, 1 when some failed for now, 2 when some need a new login.
    Renew(RenewArgs),
    /// Page tokens: derive them from a user token.
    #[command(subcommand)]
    Pages(PagesCommand),
    /// Log in through Meta's dialog to replace a token renewal cannot save (or add a new one):
    /// prints a link, waits on a loopback callback, stores a long-lived token.
    Login(LoginArgs),
    /// Show the example or the effective configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Register and list Meta apps.
    #[command(subcommand)]
    App(AppCommand),
    /// Store, list and inspect tokens.
    #[command(subcommand)]
    Token(Box<TokenCommand>),
    /// Manage the encryption keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run the daemon: the HTTP API, health probes and the scheduler, until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Make, list and revoke API keys for `graphwarden serve`.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// List the scheduled jobs with their next and last runs, or run one now.
    Jobs(JobsArgs),
    /// Silence alerts: mute those matching some labels for a while (works on the database;
    /// a running daemon picks silences up at its next evaluation).
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Graph calls made through the proxy: volume, errors by class and code, time, usage.
    Usage(UsageArgs),
    /// Find Meta tokens and app secrets in files and git history, match them against the
    /// inventory, and say which are live. Never prints a whole secret; exits 1 when any is
    /// found.
    Scan(ScanArgs),
    /// Show what revoking a stored token would break, then revoke it through Meta and mark it
    /// and the tokens derived from it.
    Revoke(RevokeArgs),
    /// Local users who sign in to the dashboard with a password.
    #[command(subcommand)]
    User(UserCommand),
    /// The security audit: over-privileged, unused, old, orphaned and unexpected tokens and apps,
    /// each with its evidence and the action to take. Stored, and compared with the previous
    /// audit. Exits 2 with a critical or high finding, 1 with a medium one.
    Audit(AuditArgs),
    /// The event log: list it, check its hash chain, or ask whether a token was ever stored here.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Run the offline Meta Graph API simulator.
    Sim(SimArgs),
    /// Everything at once, with nothing configured: a simulated agency in the simulator, the
    /// daemon (dashboard, proxy, jobs, alerts) on SQLite in a temporary directory, traffic, and
    /// compressed time. Prints the dashboard's address and a sign-in key; Ctrl-C stops it and
    /// removes what it made.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the dashboard and API listen (default: a free port on 127.0.0.1).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Real seconds per simulated day.
    #[arg(long, default_value_t = 4.0, value_name = "SECONDS")]
    pub seconds_per_day: f64,
    /// Stop when the scenario ends instead of waiting for Ctrl-C.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password (12 characters or more) is read from standard input or asked
    /// for twice.
    Add {
        name: String,
        /// `reader`, `operator` or `admin`.
        #[arg(long)]
        role: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user; their sessions end at once.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown", "html"])]
    pub format: String,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<String>,
    /// Show the latest stored audit (compared with the one before it) instead of running one.
    #[arg(long)]
    pub last: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The most recent events, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain. Exits 1 when an event was edited, deleted, inserted or reordered.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Whether a token was ever stored here, found by its keyed fingerprint (the log never holds
    /// the token). Exits 1 when it was not.
    Find {
        /// Where to read the token: `-` for standard input, or a file.
        #[arg(long, value_name = "-|FILE")]
        token: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The stored token.
    pub alias: String,
    /// Only show what would break: derived tokens, consumer keys, recent calls.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan (directories recursively, skipping `.git`, `target`,
    /// `node_modules` and `.venv`, binary files and files over 16 MiB).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<String>,
    /// Also scan every commit of the git repositories the paths are in (the lines each added).
    #[arg(long)]
    pub git: bool,
    /// Do not ask Meta whether what was found is live.
    #[arg(long)]
    pub no_check: bool,
    /// Revoke, through Meta, every stored user or system-user token found live (as
    /// `graphwarden revoke` does, with the tokens derived from them).
    #[arg(long, conflicts_with = "no_check")]
    pub revoke: bool,
    /// Give every stored token found live a fresh secret now (user tokens exchanged, 60-day
    /// system-user tokens refreshed, Page tokens derived again), so the applications fetching it
    /// move off the leaked one. The leaked value stays valid until it expires or is revoked.
    #[arg(long, conflicts_with_all = ["no_check", "revoke"])]
    pub renew: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// How far back to look (`24h`, `7d`, `90m`).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Group the calls by token, app, account (the object called: ad account, Page, campaign…)
    /// or endpoint (the path with its ids replaced).
    #[arg(long, default_value = "token", value_parser = ["token", "app", "account", "endpoint"])]
    pub by: String,
    /// At most this many groups, busiest first.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Mute alerts matching every `--matcher`, from now for `--duration`.
    Add {
        /// A label matcher, `token="ana"`, `alertname=~"token_.*"`, `severity!="info"`;
        /// repeat for several (all must match).
        #[arg(long = "matcher", required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long: `2h`, `30m`, `1d`.
        #[arg(long)]
        duration: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// Every silence, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire { id: String },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the API and health probes (overrides `server.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Also run the Graph proxy on this address (overrides `proxy.listen`).
    #[arg(long, value_name = "ADDR")]
    pub proxy_listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Make a key. It is printed once, alone on the last line, and stored only as a hash.
    Create {
        /// A unique name saying who or what uses the key.
        #[arg(long)]
        name: String,
        /// `admin`, `operator`, `reader`, or `consumer` (an application fetching its tokens).
        #[arg(long, value_parser = ["admin", "operator", "reader", "consumer"])]
        role: String,
        /// For consumer keys: the tokens whose secret the key may fetch, comma-separated.
        #[arg(long, value_delimiter = ',', value_name = "ALIAS,…")]
        aliases: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by name; it stops working at once.
    Revoke { name: String },
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run a job now, here, and wait for it (recorded like a scheduled run).
    Run {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// The latest runs of a job, newest first.
    Runs {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8777", value_name = "ADDR")]
    pub listen: String,
    /// A scenario file (TOML or JSON); without it, the documented default world.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Serve the control API under /__sim/ (clock, events, faults, call log).
    #[arg(long)]
    pub control: bool,
    /// Print the start-up summary (URL, app, secrets, tokens) as one JSON line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PagesCommand {
    /// Store the Page tokens of a user token (all its Pages, or those named), linked to it.
    Derive {
        /// The user token to derive from.
        user_alias: String,
        /// Only this Page id; repeat for several.
        #[arg(long = "page", value_name = "ID")]
        pages: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The Meta app to log in to.
    pub app_id: String,
    /// Permissions to ask for, comma-separated.
    #[arg(long, default_value = "")]
    pub scopes: String,
    /// Store the token under this alias, replacing the token there if there is one.
    #[arg(long)]
    pub alias: Option<String>,
    /// Where the callback listens; `http://ADDR/callback` must be among the app's Valid OAuth
    /// Redirect URIs.
    #[arg(long, default_value = "127.0.0.1:8790", value_name = "ADDR")]
    pub listen: String,
    /// How long to wait for the login.
    #[arg(long, default_value = "10m")]
    pub timeout: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// Tokens to consider (default: all).
    pub aliases: Vec<String>,
    /// Print what would happen and why; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Tokens to inspect (default: all).
    pub aliases: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the documented example configuration.
    Example,
    /// Print the effective configuration, secrets redacted, with where each value came from.
    Show {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register a Meta app. The app secret is read from stdin, a file or an environment variable.
    Add {
        /// The Meta app id (digits).
        app_id: String,
        /// A name people recognise.
        #[arg(long)]
        name: String,
        /// Read the app secret from this file.
        #[arg(long, value_name = "FILE", conflicts_with = "secret_env")]
        secret_file: Option<PathBuf>,
        /// Read the app secret from this environment variable.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// Mark the app as approved for use in your organisation.
        #[arg(long)]
        approved: bool,
        /// Free notes.
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long)]
        json: bool,
    },
    /// List registered apps.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one app.
    Show {
        app_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an app that has no tokens.
    Remove {
        app_id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Store a token. It is read from stdin (or --from-file, --from-env), never from the command line.
    Add(Box<TokenAddArgs>),
    /// List tokens.
    List(TokenListArgs),
    /// Show one token, without its secret.
    Show {
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a token and its secret (its history stays in the event log).
    Remove {
        alias: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Show what happened to a token, oldest first.
    Events {
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Generate a system-user token through the API with an admin's stored token, and store it.
    MintSystemUser {
        /// The alias for the new token.
        alias: String,
        #[arg(long = "app", value_name = "APP_ID")]
        app_id: String,
        /// The system user's id.
        #[arg(long, value_name = "ID")]
        system_user: String,
        /// Permissions, comma-separated.
        #[arg(long)]
        scopes: String,
        /// A 60-day token (refreshed by `renew`) instead of a non-expiring one.
        #[arg(long)]
        expiring: bool,
        /// The stored token of a business admin or admin system user that makes the call.
        #[arg(long, value_name = "ALIAS")]
        caller: String,
        #[arg(long)]
        json: bool,
    },
    /// Set this token's own renewal settings (overriding its app's and the global ones).
    Renewal {
        alias: String,
        /// Re-exchange a user token this long before it expires, such as `10d`.
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// Refresh a 60-day system-user token once this fraction of its life has passed.
        #[arg(long, value_name = "FRACTION")]
        fraction: Option<f64>,
        /// Stop renewing this token (it is still inspected).
        #[arg(long, conflicts_with = "on")]
        off: bool,
        /// Renew this token even if its app's settings say not to.
        #[arg(long)]
        on: bool,
        /// Forget this token's own settings.
        #[arg(long, conflicts_with_all = ["window", "fraction", "off", "on"])]
        reset: bool,
    },
    /// Exchange a user token for a long-lived one now (crash-safe, like `renew`).
    Exchange {
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the secret token. Asks first (or --yes) and records who did it.
    Reveal {
        alias: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Why, for the event log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct TokenAddArgs {
    /// The name to store it under, such as `acme-ads-prod`.
    pub alias: String,
    /// The Meta app the token belongs to.
    #[arg(long = "app", value_name = "APP_ID")]
    pub app_id: String,
    /// `user`, `page`, `app` or `system_user` (default: what inspection reports, else `user`).
    #[arg(long)]
    pub kind: Option<String>,
    /// Who is responsible for it.
    #[arg(long, default_value = "")]
    pub owner: String,
    /// Who asked for it.
    #[arg(long, default_value = "")]
    pub requested_by: String,
    /// What it is for.
    #[arg(long, default_value = "")]
    pub purpose: String,
    /// The permissions it needs, comma-separated (for least-privilege audits).
    #[arg(long, value_name = "SCOPES", default_value = "")]
    pub scopes_needed: String,
    /// A label; repeat for several.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The alias of the token this one was derived from.
    #[arg(long, value_name = "ALIAS")]
    pub parent: Option<String>,
    /// The Meta user or system-user id it acts as.
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,
    /// The Page id, for Page tokens.
    #[arg(long, value_name = "ID")]
    pub page_id: Option<String>,
    /// The business id.
    #[arg(long, value_name = "ID")]
    pub business_id: Option<String>,
    /// Read the token from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "from_env")]
    pub from_file: Option<PathBuf>,
    /// Read the token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub from_env: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Only tokens in this status (valid, expiring, expired, revoked, unknown, …).
    #[arg(long)]
    pub status: Option<String>,
    /// Only tokens of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only tokens of this app.
    #[arg(long = "app", value_name = "APP_ID")]
    pub app_id: Option<String>,
    /// Only tokens that expire within this long, such as `7d` (already expired ones included).
    #[arg(long, value_name = "DURATION")]
    pub expiring_within: Option<String>,
    /// Only tokens with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Re-encrypt every secret under a new data key. Safe to interrupt and run again; the
    /// service keeps working meanwhile.
    Rotate {
        /// Secrets per round trip.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
        #[arg(long)]
        json: bool,
    },
    /// Replace the master key: re-wrap every data key under a new one and write it to the key
    /// file. Quick whatever the inventory's size; safe to interrupt and run again. Copy the new
    /// key file to every other instance that shares the database.
    RotateMaster {
        #[arg(long)]
        json: bool,
    },
    /// Show the data keys and how many secrets each one seals.
    Status {
        #[arg(long)]
        json: bool,
    },
}
