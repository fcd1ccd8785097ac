//! The SQLite backend: the embedded default.
//!
//! WAL journal, a busy timeout, foreign keys on, and one writer: all writes go through a pool of
//! a single connection, so transactions inside one process never fight over SQLite's write lock;
//! reads use their own pool and are never blocked by the writer under WAL.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connection settings for [`SqliteStore::open`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Create the file when it does not exist (only `init` does).
    pub create: bool,
    /// How long a statement waits for another process's lock before failing.
    pub busy_timeout: Duration,
    /// Reader connections.
    pub max_readers: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            create: false,
            busy_timeout: Duration::from_secs(5),
            max_readers: 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: SqlitePool,
    reader: SqlitePool,
    chain: crate::chain::ChainSlot,
}

impl SqliteStore {
    pub(crate) const BACKEND: Backend = Backend::Sqlite;

    /// Open (or with `create`, create) the database file at `path`.
    pub async fn open(path: &Path, options: &SqliteOptions) -> Result<Self> {
        if !options.create && !path.exists() {
            return Err(StoreError::NotInitialized);
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(options.create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
            .connect_with(connect.clone())
            .await?;
        restrict_permissions(path);
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_readers.max(1))
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
            .connect_with(connect)
            .await?;
        Ok(Self {
            path: path.to_owned(),
            writer,
            reader,
            chain: crate::chain::ChainSlot::default(),
        })
    }

    /// Open from a `sqlite://PATH` or `sqlite:PATH` URL.
    pub async fn open_url(url: &str, options: &SqliteOptions) -> Result<Self> {
        let path = path_from_url(url)?;
        Self::open(&path, options).await
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn chain(&self) -> &crate::chain::ChainSlot {
        &self.chain
    }

    async fn has_instance_table(&self) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'instance'",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.is_some())
    }

    async fn run_migrations(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    /// Close both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// The file path in a `sqlite://PATH` or `sqlite:PATH` URL. Query parameters are not accepted:
/// graphwarden sets the connection options itself.
pub fn path_from_url(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|rest| !rest.is_empty() && !rest.contains('?'))
        .ok_or_else(|| StoreError::BadUrl {
            url: url.to_owned(),
        })?;
    PathBuf::from_str(rest).map_err(|_| StoreError::BadUrl {
        url: url.to_owned(),
    })
}

/// The database holds ciphertext only, but also who owns which token and why: keep it private.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

crate::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);
crate::sql_service::impl_service_store!(SqliteStore, sqlx::Sqlite);
crate::sql_call::impl_call_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            path_from_url("sqlite:///tmp/x.db").unwrap(),
            PathBuf::from("/tmp/x.db")
        );
        assert_eq!(
            path_from_url("sqlite:rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
        assert!(path_from_url("sqlite://").is_err());
        assert!(path_from_url("sqlite:///x.db?mode=ro").is_err());
        assert!(path_from_url("postgres://x").is_err());
    }

    /// Migration 0015 (compact call rows) keeps every call recorded before it, as it was.
    #[tokio::test]
    async fn call_records_written_before_the_compact_layout_read_back_the_same_after_it() {
        use crate::sql_call::compact_migration as check;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("graphwarden.db"),
            &SqliteOptions {
                create: true,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        let older = check::older_migrations("sqlite", dir.path());
        sqlx::migrate::Migrator::new(older.as_path())
            .await
            .unwrap()
            .run(&store.writer)
            .await
            .unwrap();
        sqlx::raw_sql(check::OLD_ROWS)
            .execute(&store.writer)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        check::read_back(&store).await;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM calls ORDER BY id")
            .fetch_all(&store.writer)
            .await
            .unwrap();
        assert_eq!(ids, [1, 2, 3, 4, 5], "new rows go on after the moved ones");
        check::prune_keeps_what_later_calls_share(&store).await;
        let shared: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM call_callers), (SELECT COUNT(*) FROM call_kinds), \
             (SELECT COUNT(*) FROM call_usages)",
        )
        .fetch_one(&store.writer)
        .await
        .unwrap();
        assert_eq!(shared, (1, 1, 1), "only what the calls left share is kept");
    }
}
