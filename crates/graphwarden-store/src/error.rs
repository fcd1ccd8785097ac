//! The store's one error type. Each variant is something a caller can act on; driver errors are
//! mapped in one place ([`From<sqlx::Error>`]). Messages never carry secret text.

use std::path::PathBuf;

use graphwarden_core::InvalidInput;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    InvalidInput(#[from] InvalidInput),

    #[error(
        "`{url}` is not a database URL graphwarden knows; use `sqlite://PATH` or `postgres://USER@HOST/DB`"
    )]
    BadUrl { url: String },

    #[error("the database has not been set up; run `graphwarden init` first")]
    NotInitialized,

    #[error("the database is already set up; `init` never replaces an existing key or inventory")]
    AlreadyInitialized,

    #[error("there is no master key at {}; run `graphwarden init` to create one, or point `key.file` at the key this database was made with", path.display())]
    KeyMissing { path: PathBuf },

    #[error("the master key at {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}`, or pass `--allow-insecure-key-permissions` if you really mean it", path.display(), path.display())]
    KeyInsecure { path: PathBuf, mode: u32 },

    #[error("the master key at {} is malformed ({reason}); it should hold 64 hexadecimal characters", path.display())]
    KeyMalformed { path: PathBuf, reason: &'static str },

    #[error("a master key already exists at {}; `init` never overwrites a key (move it away first if you really mean to start over)", path.display())]
    KeyExists { path: PathBuf },

    #[error(
        "the master key does not open this database's keys; use the key the database was set up with (nothing was changed)"
    )]
    WrongMasterKey,

    #[error("could not {action} {}: {source}", path.display())]
    KeyIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("the {what} `{name}` does not exist; {hint}")]
    NotFound {
        what: &'static str,
        name: String,
        hint: &'static str,
    },

    #[error("this token is already stored as `{alias}`; use that alias, or remove it first")]
    DuplicateToken { alias: String },

    #[error("the alias `{alias}` is already taken; pick another one or remove that token first")]
    AliasTaken { alias: String },

    #[error("the {what} name `{name}` is already taken; pick another one")]
    NameTaken { what: &'static str, name: String },

    #[error("the app `{app_id}` is already registered; remove it first to replace it")]
    AppExists { app_id: String },

    #[error(
        "the app `{app_id}` still has {tokens} token(s); remove them first (`graphwarden token list --app {app_id}`)"
    )]
    AppInUse { app_id: String, tokens: i64 },

    #[error(
        "the stored secret of {what} does not decrypt: it was altered, or sealed under a key this database no longer has"
    )]
    Decrypt { what: String },

    #[error(
        "the database is damaged or is not a graphwarden database ({detail}); restore it from a backup or point `database.url` elsewhere"
    )]
    Corrupt { detail: String },

    #[error(
        "the database is locked by another process and stayed locked; try again, or stop the process holding it"
    )]
    Locked,

    #[error(
        "the database cannot be reached ({detail}); check `database.url` and that the server is running"
    )]
    Unavailable { detail: String },

    #[error("the database schema could not be brought up to date: {detail}")]
    Migration { detail: String },

    /// A row refers to something that is gone: an app, a parent token, or a data key retired
    /// by a concurrent rotation. [`crate::Inventory`] reloads its keys and retries once.
    #[error("a referenced record does not exist any more ({detail}); try again")]
    MissingReference { detail: String },

    #[error("{detail}; run the command again")]
    ConcurrentChange { detail: String },

    #[error("the database reported an error: {detail}")]
    Database { detail: String },

    #[error("the event log cannot be written: {detail}; run `graphwarden events verify`")]
    EventLog { detail: String },
}

impl StoreError {
    pub(crate) fn token_not_found(alias: &str) -> Self {
        Self::NotFound {
            what: "token",
            name: alias.to_owned(),
            hint: "see `graphwarden token list` for the aliases there are",
        }
    }

    pub(crate) fn app_not_found(app_id: &str) -> Self {
        Self::NotFound {
            what: "app",
            name: app_id.to_owned(),
            hint: "register it first with `graphwarden app add APP_ID --name NAME`",
        }
    }

    pub(crate) fn corrupt(detail: impl Into<String>) -> Self {
        Self::Corrupt {
            detail: detail.into(),
        }
    }
}

/// SQLite's primary result codes that mean something to a user (extended codes carry the
/// primary code in their low byte).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_READONLY: i64 = 8;

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) => {
                let message = db.message().to_owned();
                // SQLite reports numeric codes; PostgreSQL reports SQLSTATE strings, which do not
                // parse as integers and fall through to the message checks.
                let sqlite_code = db
                    .code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .map(|c| c & 0xff);
                match sqlite_code {
                    Some(SQLITE_BUSY | SQLITE_LOCKED) => Self::Locked,
                    Some(SQLITE_CORRUPT | SQLITE_NOTADB) => Self::corrupt(message),
                    Some(SQLITE_CANTOPEN | SQLITE_READONLY) => {
                        Self::Unavailable { detail: message }
                    }
                    _ => Self::Database { detail: message },
                }
            }
            sqlx::Error::Io(io) => Self::Unavailable {
                detail: io.to_string(),
            },
            sqlx::Error::Tls(tls) => Self::Unavailable {
                detail: format!("TLS: {tls}"),
            },
            sqlx::Error::PoolTimedOut => Self::Unavailable {
                detail: "timed out waiting for a connection".to_owned(),
            },
            sqlx::Error::Configuration(cfg) => Self::Unavailable {
                detail: cfg.to_string(),
            },
            sqlx::Error::Migrate(m) => Self::Migration {
                detail: m.to_string(),
            },
            sqlx::Error::ColumnDecode { index, source } => Self::corrupt(format!(
                "column {index} holds an unexpected value: {source}"
            )),
            sqlx::Error::Decode(source) => Self::corrupt(format!("unexpected value: {source}")),
            other => Self::Database {
                detail: other.to_string(),
            },
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        match err {
            sqlx::migrate::MigrateError::Execute(e) => match Self::from(e) {
                e @ (Self::Corrupt { .. } | Self::Locked | Self::Unavailable { .. }) => e,
                other => Self::Migration {
                    detail: other.to_string(),
                },
            },
            other => Self::Migration {
                detail: other.to_string(),
            },
        }
    }
}
