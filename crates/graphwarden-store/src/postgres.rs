//! The PostgreSQL backend, for several instances sharing one inventory.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings for [`PostgresStore::open`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    chain: crate::chain::ChainSlot,
}

impl PostgresStore {
    pub(crate) const BACKEND: Backend = Backend::Postgres;

    pub async fn open_url(url: &str, options: &PostgresOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl {
            url: crate::redact_url(url),
        })?;
        // One direct attempt first: a refused or unknown host fails at once with the driver's
        // reason, instead of the pool retrying quietly until its time-out.
        let probe = tokio::time::timeout(
            options.connect_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        .map_err(|_| StoreError::Unavailable {
            detail: format!("no answer within {:?}", options.connect_timeout),
        })??;
        probe.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self {
            pool,
            chain: crate::chain::ChainSlot::default(),
        })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn chain(&self) -> &crate::chain::ChainSlot {
        &self.chain
    }

    async fn has_instance_table(&self) -> Result<bool> {
        let row: (bool,) = sqlx::query_as("SELECT to_regclass('instance') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.0)
    }

    async fn run_migrations(&self) -> Result<()> {
        // sqlx takes an advisory lock, so instances starting together migrate once.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

crate::sql::impl_sql_store!(PostgresStore, sqlx::Postgres);
crate::sql_service::impl_service_store!(PostgresStore, sqlx::Postgres);
crate::sql_call::impl_call_store!(PostgresStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 0015 (compact call rows) keeps every call recorded before it, as it was.
    #[tokio::test]
    async fn call_records_written_before_the_compact_layout_read_back_the_same_after_it() {
        use crate::sql_call::compact_migration as check;
        let Some(admin) = graphwarden_testkit::postgres_admin_url() else {
            return;
        };
        let db = graphwarden_testkit::PgDatabase::create(&admin).await;
        let store = PostgresStore::open_url(db.url(), &PostgresOptions::default())
            .await
            .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let older = check::older_migrations("postgres", scratch.path());
        sqlx::migrate::Migrator::new(older.as_path())
            .await
            .unwrap()
            .run(&store.pool)
            .await
            .unwrap();
        sqlx::raw_sql(check::OLD_ROWS)
            .execute(&store.pool)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        check::read_back(&store).await;
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM calls ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert_eq!(ids, [1, 2, 3, 4, 5], "new rows go on after the moved ones");
        check::prune_keeps_what_later_calls_share(&store).await;
        let shared: (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM call_callers), (SELECT COUNT(*) FROM call_kinds), \
             (SELECT COUNT(*) FROM call_usages)",
        )
        .fetch_one(&store.pool)
        .await
        .unwrap();
        assert_eq!(shared, (1, 1, 1), "only what the calls left share is kept");
        store.close().await;
    }
}
