//! The graphwarden store: the [`Store`] trait, its SQLite and PostgreSQL backends (one module
//! each, sharing their SQL through `sql.rs`), the embedded migrations per backend, and encryption
//! at rest ([`crypto`]).
//!
//! [`Inventory`] is what the rest of graphwarden uses: it seals secrets before they reach a
//! backend, opens them on the way back, and writes every change together with its event.
//!
//! What does not live here: talking to Meta, policy (when to renew, what to alert on), HTTP.
//! SQL lives only in `sql.rs`, `sql_service.rs`, `sql_call.rs`, `sqlite.rs`, `postgres.rs` and the migrations.

pub mod call;
pub mod chain;
pub mod crypto;
pub mod error;
pub mod inventory;
pub mod model;
pub mod postgres;
pub mod service;
mod sql;
mod sql_call;
mod sql_service;
pub mod sqlite;
pub mod store;

pub use call::{CallStore, QualityScore, QualityTrend, Rollup};
pub use chain::{ChainProblem, ChainReport};
pub use crypto::MasterKey;
pub use error::{Result, StoreError};
pub use inventory::events::Sighting;
pub use inventory::{
    InspectionOutcome, Inventory, OpenOptions, RotateOptions, RotationReport, connect,
};
pub use model::*;
pub use postgres::{PostgresOptions, PostgresStore};
pub use service::{
    AlertDelivery, ApiKey, ApiKeyRecord, AuditRecord, DeletionRequest, DeliveryState, JobClaim,
    JobRecord, JobRun, NewDelivery, ServiceStore, SilenceRecord, User, UserRecord, new_silence_id,
};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::Store;

/// A database URL fit to print: any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    // `password=` in the query string is another place libpq-style URLs carry it.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://gw:s3cret@db:5432/gw"),
            "postgres://gw:***@db:5432/gw"
        );
        assert_eq!(redact_url("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(
            redact_url("postgres://db/gw?user=gw&password=s3cret&sslmode=require"),
            "postgres://db/gw?user=gw&password=***&sslmode=require"
        );
        assert_eq!(redact_url("sqlite:///x/y.db"), "sqlite:///x/y.db");
        assert_eq!(redact_url("postgres://a:b@c"), "postgres://a:***@c");
    }

    #[test]
    fn migrations_keep_the_same_versions_on_both_backends() {
        let versions = |dir: &str| -> Vec<String> {
            let mut v: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap()
                    .map(|e| {
                        e.unwrap()
                            .file_name()
                            .to_string_lossy()
                            .split('_')
                            .next()
                            .unwrap()
                            .to_owned()
                    })
                    .collect();
            v.sort();
            v
        };
        let sqlite = versions("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite,
            versions("postgres"),
            "every migration needs a twin with the same version"
        );
    }
}
