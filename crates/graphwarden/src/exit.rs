//! Exit codes a cron job can act on (design.md §3): 0 fine, 1 warning, 2 critical, 64 and up
//! for usage, input, configuration and environment errors (the BSD `sysexits` numbers), and the
//! one-line error a person sees.

use graphwarden_store::StoreError;

pub const USAGE: u8 = 64; // EX_USAGE: bad flags or bad input
pub const DATA: u8 = 65; // EX_DATAERR: input conflicts with what is stored, or damaged data
pub const NO_INPUT: u8 = 66; // EX_NOINPUT: the named thing (token, app, file, variable) is missing
pub const UNAVAILABLE: u8 = 69; // EX_UNAVAILABLE: the database cannot be reached
pub const SOFTWARE: u8 = 70; // EX_SOFTWARE: a bug
pub const CANT_CREATE: u8 = 73; // EX_CANTCREAT: refusing to overwrite
pub const IO: u8 = 74; // EX_IOERR
pub const TEMP_FAIL: u8 = 75; // EX_TEMPFAIL: locked, try again
pub const NO_PERM: u8 = 77; // EX_NOPERM: key permissions, wrong key
pub const CONFIG: u8 = 78; // EX_CONFIG

/// An error that ends a command: an exit code and one line for the person.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(CONFIG, message)
    }

    /// The message on one line: whatever a driver or the OS said is flattened.
    pub fn one_line(&self) -> String {
        self.message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        let code = match &err {
            StoreError::InvalidInput(_) | StoreError::BadUrl { .. } => USAGE,
            StoreError::DuplicateToken { .. }
            | StoreError::AliasTaken { .. }
            | StoreError::AppExists { .. }
            | StoreError::NameTaken { .. }
            | StoreError::AppInUse { .. }
            | StoreError::Decrypt { .. }
            | StoreError::Corrupt { .. }
            | StoreError::EventLog { .. } => DATA,
            StoreError::NotFound { .. }
            | StoreError::NotInitialized
            | StoreError::KeyMissing { .. } => NO_INPUT,
            StoreError::Unavailable { .. } => UNAVAILABLE,
            StoreError::KeyExists { .. } | StoreError::AlreadyInitialized => CANT_CREATE,
            StoreError::KeyIo { .. } => IO,
            StoreError::Locked
            | StoreError::MissingReference { .. }
            | StoreError::ConcurrentChange { .. } => TEMP_FAIL,
            StoreError::KeyInsecure { .. } | StoreError::WrongMasterKey => NO_PERM,
            StoreError::KeyMalformed { .. } => CONFIG,
            StoreError::Migration { .. } | StoreError::Database { .. } => SOFTWARE,
        };
        Self::new(code, err.to_string())
    }
}

impl From<graphwarden_core::InvalidInput> for CliError {
    fn from(err: graphwarden_core::InvalidInput) -> Self {
        Self::usage(err.to_string())
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
