//! Test helpers for graphwarden (a dev-dependency only): a fresh store per test on SQLite, and
//! on PostgreSQL when `GRAPHWARDEN_TEST_DATABASE_URL` names a server, plus the manual clock.
//!
//! Product code never depends on this crate. Panicking on set-up failure is the right thing in
//! a test helper, so the workspace's panic lints are relaxed here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use graphwarden_store::{Inventory, MasterKey, OpenOptions, PostgresOptions, SqliteOptions};
use rand::RngCore;
use sqlx::Connection;

pub use graphwarden_core::ManualClock;

/// The environment variable naming a PostgreSQL server tests may create databases on.
pub const TEST_DATABASE_URL: &str = "GRAPHWARDEN_TEST_DATABASE_URL";

/// The PostgreSQL admin URL for tests, or `None` (with a loud note) when it is not set.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(TEST_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "NOTE: {TEST_DATABASE_URL} is not set, so the PostgreSQL half of this test is \
                 SKIPPED. CI sets it; set it locally (e.g. postgres://postgres@127.0.0.1/postgres) to run it."
            );
            None
        }
    }
}

/// A throwaway PostgreSQL database, dropped when this value is.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Create a database with a random name on the test server.
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("gw_test_{}", random_hex(8));
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("{TEST_DATABASE_URL} is set but the server cannot be reached: {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let url = with_database(admin_url, &name);
        Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside a runtime; do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Replace the database name in a PostgreSQL URL.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{database}?{q}"),
        None => format!("{host_part}/{database}"),
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which backend a [`TestStore`] runs on.
#[derive(Debug)]
pub enum TestBackend {
    Sqlite {
        dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(PgDatabase),
}

/// A fresh, empty database and the options to open it, with a manual clock.
#[derive(Debug)]
pub struct TestStore {
    pub backend: TestBackend,
    pub master_key: MasterKey,
    pub clock: ManualClock,
}

impl TestStore {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graphwarden.db");
        Self {
            backend: TestBackend::Sqlite { dir, path },
            master_key: MasterKey::generate(),
            clock: ManualClock::at_fixed_start(),
        }
    }

    /// `None` (after a loud note) when no test server is configured.
    pub async fn postgres() -> Option<Self> {
        let admin = postgres_admin_url()?;
        Some(Self {
            backend: TestBackend::Postgres(PgDatabase::create(&admin).await),
            master_key: MasterKey::generate(),
            clock: ManualClock::at_fixed_start(),
        })
    }

    pub fn url(&self) -> String {
        match &self.backend {
            TestBackend::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestBackend::Postgres(db) => db.url().to_owned(),
        }
    }

    /// The SQLite file, when on SQLite.
    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        match &self.backend {
            TestBackend::Sqlite { path, .. } => Some(path),
            TestBackend::Postgres(_) => None,
        }
    }

    pub fn options_with_key(&self, master_key: MasterKey) -> OpenOptions {
        OpenOptions {
            url: self.url(),
            master_key,
            clock: Arc::new(self.clock.clone()),
            sqlite: SqliteOptions::default(),
            postgres: PostgresOptions::default(),
        }
    }

    pub fn options(&self) -> OpenOptions {
        self.options_with_key(self.master_key.clone())
    }

    /// Set up the inventory (the equivalent of `graphwarden init`).
    pub async fn initialize(&self) -> Inventory {
        Inventory::initialize(self.options()).await.unwrap()
    }

    pub async fn open(&self) -> Inventory {
        Inventory::open(self.options()).await.unwrap()
    }

    /// Every byte the database holds, in a form where a leaked plaintext would show: the SQLite
    /// files as they are on disk, or every PostgreSQL row as text (bytea rendered as hex).
    pub async fn raw_dump(&self) -> Vec<u8> {
        match &self.backend {
            TestBackend::Sqlite { dir, .. } => {
                let mut all = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    // SQLite removes its `-wal` and `-shm` files when the last connection
                    // closes, which may happen while we list them.
                    match std::fs::read(entry.unwrap().path()) {
                        Ok(bytes) => all.extend(bytes),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => panic!("cannot read the database files: {e}"),
                    }
                }
                all
            }
            TestBackend::Postgres(db) => {
                let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
                let tables: Vec<(String,)> = sqlx::query_as(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                let mut all = Vec::new();
                for (table,) in tables {
                    let rows: Vec<(String,)> =
                        sqlx::query_as(&format!("SELECT x::text FROM \"{table}\" x"))
                            .fetch_all(&mut conn)
                            .await
                            .unwrap();
                    for (row,) in rows {
                        all.extend(row.into_bytes());
                    }
                }
                all
            }
        }
    }
}

/// Whether `needle` occurs in `haystack`, as raw bytes or hex-encoded.
pub fn contains_secret(haystack: &[u8], needle: &str) -> bool {
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let found = |n: &[u8]| haystack.windows(n.len()).any(|w| w == n);
    found(needle.as_bytes()) || found(hex.as_bytes())
}

/// A token-shaped random string, different every call.
pub fn fake_token() -> String {
    format!("EAAB{}ZDZD", random_hex(40))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn secrets_are_found_raw_and_hex() {
        assert!(contains_secret(b"..EAABxyz..", "EAABxyz"));
        assert!(contains_secret(b"\\x454141427879", "EAABxy"));
        assert!(!contains_secret(b"nothing", "EAABxyz"));
    }
}
