//! What only the SQLite backend has: a file that can be damaged, locked, or missing.

use std::time::Duration;

use graphwarden_core::{AppId, TokenAlias, TokenKind};
use graphwarden_store::{Inventory, NewApp, NewToken, SqliteOptions, StoreError, TokenFilter};
use graphwarden_testkit::{TestStore, fake_token};
use secrecy::SecretString;
use sqlx::Connection;

fn token(alias: &str) -> NewToken {
    NewToken {
        alias: TokenAlias::parse(alias).unwrap(),
        kind: TokenKind::User,
        app_id: AppId::parse("1").unwrap(),
        secret: SecretString::from(fake_token()),
        meta_user_id: None,
        page_id: None,
        business_id: None,
        parent: None,
        owner: String::new(),
        requested_by: String::new(),
        purpose: String::new(),
        scopes_needed: vec![],
        tags: vec![],
    }
}

async fn with_app(store: &TestStore) -> Inventory {
    let inv = store.initialize().await;
    inv.add_app(
        NewApp {
            app_id: AppId::parse("1").unwrap(),
            name: "one".into(),
            secret: SecretString::from("abcdef0123456789abcdef0123456789"),
            approved: false,
            notes: String::new(),
        },
        "t",
    )
    .await
    .unwrap();
    inv
}

#[tokio::test]
async fn a_missing_file_is_not_created_by_ordinary_commands() {
    let store = TestStore::sqlite();
    let err = Inventory::open(store.options()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotInitialized), "{err:?}");
    assert!(!store.sqlite_path().unwrap().exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_as_damaged() {
    let store = TestStore::sqlite();
    std::fs::write(store.sqlite_path().unwrap(), vec![0x5au8; 8192]).unwrap();
    let err = Inventory::open(store.options()).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("damaged"));
}

#[tokio::test]
async fn a_truncated_database_is_reported_and_not_rewritten() {
    let store = TestStore::sqlite();
    let inv = with_app(&store).await;
    for i in 0..50 {
        inv.add_token(token(&format!("t{i}")), "t").await.unwrap();
    }
    if let graphwarden_store::Backend::Sqlite = inv.store().backend() {}
    drop(inv);
    // Let the pools close and checkpoint.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let path = store.sqlite_path().unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mut damaged = bytes.clone();
    for b in damaged.iter_mut().skip(100).take(4000) {
        *b = 0xff;
    }
    std::fs::write(path, &damaged).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    match Inventory::open(store.options()).await {
        Err(
            StoreError::Corrupt { .. } | StoreError::Database { .. } | StoreError::Migration { .. },
        ) => {}
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(inv) => {
            let listed = inv.tokens(&TokenFilter::default()).await;
            assert!(listed.is_err(), "damage went unnoticed");
        }
    }
}

#[tokio::test]
async fn a_locked_database_gives_up_with_a_clear_error_and_no_change() {
    let store = TestStore::sqlite();
    drop(with_app(&store).await);
    let mut options = store.options();
    options.sqlite = SqliteOptions {
        busy_timeout: Duration::from_millis(200),
        ..SqliteOptions::default()
    };
    let inv = Inventory::open(options).await.unwrap();
    // Another process holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&store.url()).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let err = inv.add_token(token("blocked"), "t").await.unwrap_err();
    assert!(matches!(err, StoreError::Locked), "{err:?}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert!(
        inv.tokens(&TokenFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    inv.add_token(token("after"), "t").await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let store = TestStore::sqlite();
    drop(store.initialize().await);
    let mode = std::fs::metadata(store.sqlite_path().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}
