//! Behaviour every backend must show. Each function gets a fresh, empty database.

use std::sync::Arc;

use graphwarden_core::{AppId, Clock, MetaId, Scope, Tag, TokenAlias, TokenKind, TokenStatus};
use graphwarden_store::{
    Expiry, GranularScope, Inventory, MasterKey, NewApp, NewToken, RotateOptions, Sealed,
    SealedRef, SecretTable, StoreError, TokenFilter, TokenRecord,
};
use graphwarden_testkit::{TestStore, contains_secret, fake_token};
use jiff::SignedDuration;
use secrecy::{ExposeSecret, SecretString};

const APP: &str = "1234567890";
const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn app_id() -> AppId {
    AppId::parse(APP).unwrap()
}

fn alias(a: &str) -> TokenAlias {
    TokenAlias::parse(a).unwrap()
}

fn new_app(id: &str) -> NewApp {
    NewApp {
        app_id: AppId::parse(id).unwrap(),
        name: format!("App {id}"),
        secret: SecretString::from(APP_SECRET),
        approved: true,
        notes: "Used by the ETL team".into(),
    }
}

fn new_token(a: &str, secret: &str) -> NewToken {
    NewToken {
        alias: alias(a),
        kind: TokenKind::User,
        app_id: app_id(),
        secret: SecretString::from(secret.to_owned()),
        meta_user_id: None,
        page_id: None,
        business_id: None,
        parent: None,
        owner: "ana@example.com".into(),
        requested_by: "ops".into(),
        purpose: "nightly insights export".into(),
        scopes_needed: vec![Scope::parse("ads_read").unwrap()],
        tags: vec![Tag::parse("client:acme").unwrap()],
    }
}

async fn with_app(store: &TestStore) -> Inventory {
    let inv = store.initialize().await;
    inv.add_app(new_app(APP), "test").await.unwrap();
    inv
}

pub async fn init_refuses_a_second_time(store: &TestStore) {
    let _inv = store.initialize().await;
    let again = Inventory::initialize(store.options()).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyInitialized)),
        "{again:?}"
    );
    // and with another key, too
    let other = Inventory::initialize(store.options_with_key(MasterKey::generate())).await;
    assert!(
        matches!(other, Err(StoreError::AlreadyInitialized)),
        "{other:?}"
    );
}

pub async fn apps_round_trip(store: &TestStore) {
    let inv = store.initialize().await;
    let app = inv.add_app(new_app(APP), "alice").await.unwrap();
    assert_eq!(app.name, format!("App {APP}"));
    assert!(matches!(
        inv.add_app(new_app(APP), "alice").await,
        Err(StoreError::AppExists { .. })
    ));
    inv.add_app(new_app("42"), "alice").await.unwrap();
    let apps = inv.apps().await.unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(
        inv.app(&app_id()).await.unwrap().notes,
        "Used by the ETL team"
    );
    assert_eq!(
        inv.app_secret(&app_id()).await.unwrap().expose_secret(),
        APP_SECRET
    );

    inv.remove_app(&AppId::parse("42").unwrap(), "alice")
        .await
        .unwrap();
    assert!(matches!(
        inv.app(&AppId::parse("42").unwrap()).await,
        Err(StoreError::NotFound { what: "app", .. })
    ));
    let events = inv.recent_events(10).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["app.removed", "app.added", "app.added"]);
    assert!(events.iter().all(|e| e.actor == "alice"));
}

pub async fn app_with_tokens_cannot_be_removed(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_token(new_token("t1", &fake_token()), "test")
        .await
        .unwrap();
    let err = inv.remove_app(&app_id(), "test").await.unwrap_err();
    assert!(
        matches!(err, StoreError::AppInUse { tokens: 1, .. }),
        "{err:?}"
    );
    assert_eq!(inv.app(&app_id()).await.unwrap().token_count, 1);
}

pub async fn tokens_round_trip_with_every_field(store: &TestStore) {
    let inv = with_app(store).await;
    let secret = fake_token();
    let parent = inv
        .add_token(new_token("user-long", &secret), "test")
        .await
        .unwrap();
    let mut page = new_token("page-acme", &fake_token());
    page.kind = TokenKind::Page;
    page.meta_user_id = Some(MetaId::parse("100001").unwrap());
    page.page_id = Some(MetaId::parse("200002").unwrap());
    page.business_id = Some(MetaId::parse("300003").unwrap());
    page.parent = Some(alias("user-long"));
    page.tags = vec![
        Tag::parse("team=growth").unwrap(),
        Tag::parse("client:acme").unwrap(),
    ];
    let added = inv.add_token(page, "bob").await.unwrap();

    let got = inv.token(&alias("page-acme")).await.unwrap();
    assert_eq!(got, added);
    assert_eq!(got.kind, TokenKind::Page);
    assert_eq!(got.parent_id.as_deref(), Some(parent.id.as_str()));
    assert_eq!(got.parent_alias, Some(alias("user-long")));
    assert_eq!(got.page_id.as_ref().unwrap().as_str(), "200002");
    assert_eq!(got.status, TokenStatus::Unknown);
    assert_eq!(got.expires, Expiry::Unknown);
    let tags: Vec<&str> = got.tags.iter().map(Tag::as_str).collect();
    assert_eq!(tags, ["client:acme", "team=growth"]);
    assert_eq!(
        got.hint,
        format!("EAAB…{}", &got.hint[got.hint.len() - 4..])
    );
    assert!(got.hint.starts_with("EAAB…"));

    assert_eq!(
        inv.open_token_secret(&alias("user-long"))
            .await
            .unwrap()
            .expose_secret(),
        secret
    );
    let all = inv.tokens(&TokenFilter::default()).await.unwrap();
    let aliases: Vec<&str> = all.iter().map(|t| t.alias.as_str()).collect();
    assert_eq!(aliases, ["page-acme", "user-long"]);

    let events = inv.token_events(&alias("page-acme")).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "token.added");
    assert_eq!(events[0].actor, "bob");
    assert_eq!(events[0].detail["parent"], "user-long");
}

pub async fn the_same_token_twice_is_refused_with_its_alias(store: &TestStore) {
    let inv = with_app(store).await;
    let secret = fake_token();
    inv.add_token(new_token("first", &secret), "test")
        .await
        .unwrap();
    // Surrounding whitespace is not part of a token: still the same one.
    let err = inv
        .add_token(new_token("second", &format!("  {secret}\n")), "test")
        .await
        .unwrap_err();
    match err {
        StoreError::DuplicateToken { alias } => assert_eq!(alias, "first"),
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert!(!err_text(&inv.add_token(new_token("third", &secret), "t").await).contains(&secret));
    assert_eq!(inv.tokens(&TokenFilter::default()).await.unwrap().len(), 1);
}

fn err_text<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{e} {e:?}"),
    }
}

pub async fn taken_alias_unknown_app_and_unknown_parent_are_refused(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_token(new_token("taken", &fake_token()), "test")
        .await
        .unwrap();
    assert!(matches!(
        inv.add_token(new_token("taken", &fake_token()), "test")
            .await,
        Err(StoreError::AliasTaken { .. })
    ));
    let mut t = new_token("x", &fake_token());
    t.app_id = AppId::parse("999").unwrap();
    assert!(matches!(
        inv.add_token(t, "test").await,
        Err(StoreError::NotFound { what: "app", .. })
    ));
    let mut t = new_token("y", &fake_token());
    t.parent = Some(alias("missing"));
    assert!(matches!(
        inv.add_token(t, "test").await,
        Err(StoreError::NotFound {
            what: "parent token",
            ..
        })
    ));
    assert!(matches!(
        inv.token(&alias("nope")).await,
        Err(StoreError::NotFound { what: "token", .. })
    ));
    assert_eq!(inv.tokens(&TokenFilter::default()).await.unwrap().len(), 1);
}

pub async fn bad_input_changes_nothing(store: &TestStore) {
    let inv = with_app(store).await;
    let before = inv.recent_events(100).await.unwrap().len();
    let long = "E".repeat(9000);
    for bad in [
        "",
        "   \n",
        "EAAB with space",
        "EAAB\u{1b}[2J",
        long.as_str(),
        "EAABé",
    ] {
        let err = inv
            .add_token(new_token("bad", bad), "test")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    }
    let mut t = new_token("ctl", &fake_token());
    t.owner = "ana\u{7}".into();
    assert!(matches!(
        inv.add_token(t, "test").await,
        Err(StoreError::InvalidInput(_))
    ));
    let mut app = new_app("77");
    app.secret = SecretString::from(" ");
    assert!(matches!(
        inv.add_app(app, "test").await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(
        inv.tokens(&TokenFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(inv.apps().await.unwrap().len(), 1);
    assert_eq!(inv.recent_events(100).await.unwrap().len(), before);
}

/// Inspection fills status and expiry; until that lands in the inventory API, write such rows
/// through the `Store` trait directly.
async fn insert_inspected(
    inv: &Inventory,
    alias_text: &str,
    kind: TokenKind,
    status: TokenStatus,
    expires: Expiry,
    tag: Option<&str>,
) {
    let mut new = new_token(alias_text, &fake_token());
    new.kind = kind;
    new.tags = tag
        .map(|t| vec![Tag::parse(t).unwrap()])
        .unwrap_or_default();
    let added = inv.add_token(new, "test").await.unwrap();
    let mut record: TokenRecord = inv.store().token(&added.alias).await.unwrap().unwrap();
    let event = graphwarden_store::NewEvent {
        at: 0,
        actor: "test".into(),
        action: "token.removed",
        token_id: Some(record.token.id.clone()),
        token_alias: None,
        app_id: None,
        detail: serde_json::json!({}),
    };
    inv.store()
        .delete_token(&record.token.id, &event)
        .await
        .unwrap();
    record.token.status = status;
    record.token.expires = expires;
    record.token.scopes = Some(vec!["ads_read".into()]);
    record.token.granular_scopes = Some(vec![GranularScope {
        scope: "ads_read".into(),
        target_ids: vec!["act_1".into()],
    }]);
    inv.store().insert_token(&record, &event).await.unwrap();
}

pub async fn list_filters(store: &TestStore) {
    let inv = with_app(store).await;
    let now = store.clock.now();
    let in_days = |d: i64| Expiry::At(now.checked_add(SignedDuration::from_hours(24 * d)).unwrap());
    insert_inspected(
        &inv,
        "soon",
        TokenKind::User,
        TokenStatus::Expiring,
        in_days(3),
        Some("client:acme"),
    )
    .await;
    insert_inspected(
        &inv,
        "later",
        TokenKind::User,
        TokenStatus::Valid,
        in_days(40),
        None,
    )
    .await;
    insert_inspected(
        &inv,
        "forever",
        TokenKind::Page,
        TokenStatus::Valid,
        Expiry::Never,
        Some("client:acme"),
    )
    .await;
    insert_inspected(
        &inv,
        "dead",
        TokenKind::SystemUser,
        TokenStatus::Revoked,
        in_days(-1),
        None,
    )
    .await;
    inv.add_app(new_app("55"), "t").await.unwrap();
    let mut other = new_token("other-app", &fake_token());
    other.app_id = AppId::parse("55").unwrap();
    other.tags = vec![];
    inv.add_token(other, "t").await.unwrap();

    let names = |f: TokenFilter| {
        let inv = &inv;
        async move {
            inv.tokens(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.alias.into_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names(TokenFilter {
            status: Some(TokenStatus::Valid),
            ..Default::default()
        })
        .await,
        ["forever", "later"]
    );
    assert_eq!(
        names(TokenFilter {
            kind: Some(TokenKind::Page),
            ..Default::default()
        })
        .await,
        ["forever"]
    );
    assert_eq!(
        names(TokenFilter {
            app_id: Some(AppId::parse("55").unwrap()),
            ..Default::default()
        })
        .await,
        ["other-app"]
    );
    assert_eq!(
        names(TokenFilter {
            expiring_within: Some(SignedDuration::from_hours(24 * 7)),
            ..Default::default()
        })
        .await,
        ["dead", "soon"],
        "already-expired counts as expiring; never-expiring and unknown do not"
    );
    assert_eq!(
        names(TokenFilter {
            tag: Some(Tag::parse("client:acme").unwrap()),
            ..Default::default()
        })
        .await,
        ["forever", "soon"]
    );
    assert_eq!(
        names(TokenFilter {
            tag: Some(Tag::parse("client:acme").unwrap()),
            expiring_within: Some(SignedDuration::from_hours(24 * 7)),
            ..Default::default()
        })
        .await,
        ["soon"]
    );
    let listed = inv
        .tokens(&TokenFilter {
            tag: Some(Tag::parse("client:acme").unwrap()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed[1].tags.len(),
        1,
        "tags come back with filtered lists"
    );
    assert_eq!(
        listed[1].granular_scopes.as_ref().unwrap()[0].target_ids,
        ["act_1"]
    );
    // Time moves: 40 days on, `later` is within a week too.
    store.clock.advance(SignedDuration::from_hours(24 * 36));
    assert_eq!(
        names(TokenFilter {
            expiring_within: Some(SignedDuration::from_hours(24 * 7)),
            ..Default::default()
        })
        .await,
        ["dead", "later", "soon"]
    );
}

pub async fn removing_a_parent_keeps_the_child(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_token(new_token("parent", &fake_token()), "test")
        .await
        .unwrap();
    let mut child = new_token("child", &fake_token());
    child.parent = Some(alias("parent"));
    inv.add_token(child, "test").await.unwrap();
    let removed = inv.remove_token(&alias("parent"), "carol").await.unwrap();
    let child = inv.token(&alias("child")).await.unwrap();
    assert_eq!(child.parent_id, None);
    assert!(matches!(
        inv.remove_token(&alias("parent"), "carol").await,
        Err(StoreError::NotFound { .. })
    ));
    // The removed token's history stays in the log.
    let events = inv.store().token_events(&removed.id).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["token.added", "token.removed"]);
    // The alias can be used again, with its own history.
    inv.add_token(new_token("parent", &fake_token()), "test")
        .await
        .unwrap();
    assert_eq!(inv.token_events(&alias("parent")).await.unwrap().len(), 1);
}

pub async fn reveal_records_an_event_first(store: &TestStore) {
    let inv = with_app(store).await;
    let secret = fake_token();
    inv.add_token(new_token("t", &secret), "test")
        .await
        .unwrap();
    let revealed = inv
        .reveal_token(&alias("t"), "dave", "debugging a 190")
        .await
        .unwrap();
    assert_eq!(revealed.expose_secret(), secret);
    let events = inv.token_events(&alias("t")).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.action, "token.revealed");
    assert_eq!(last.actor, "dave");
    assert_eq!(last.detail["reason"], "debugging a 190");
    for event in &events {
        assert!(!event.detail.to_string().contains(&secret));
    }
}

pub async fn event_log_is_append_only(store: &TestStore) {
    let inv = with_app(store).await;
    let url = store.url();
    let result = if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let update = sqlx::query("UPDATE events SET actor = 'mallory'")
            .execute(&pool)
            .await;
        let delete = sqlx::query("DELETE FROM events").execute(&pool).await;
        (update.is_err(), delete.is_err())
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let update = sqlx::query("UPDATE events SET actor = 'mallory'")
            .execute(&pool)
            .await;
        let delete = sqlx::query("DELETE FROM events").execute(&pool).await;
        (update.is_err(), delete.is_err())
    };
    assert_eq!(result, (true, true));
    assert!(
        inv.recent_events(10)
            .await
            .unwrap()
            .iter()
            .all(|e| e.actor == "test")
    );
}

pub async fn plaintext_never_reaches_the_database(store: &TestStore) {
    let inv = with_app(store).await;
    let secrets: Vec<String> = (0..5).map(|_| fake_token()).collect();
    for (i, s) in secrets.iter().enumerate() {
        inv.add_token(new_token(&format!("t{i}"), s), "test")
            .await
            .unwrap();
    }
    inv.reveal_token(&alias("t0"), "test", "check")
        .await
        .unwrap();
    inv.rotate_data_key(&RotateOptions::default(), "test")
        .await
        .unwrap();
    drop(inv);
    let dump = store.raw_dump().await;
    assert!(dump.len() > 1000, "the dump holds the database");
    for s in &secrets {
        assert!(!contains_secret(&dump, s), "a token is stored in the clear");
        // Nor any 12-character stretch of it beyond the hint's edges.
        assert!(!contains_secret(&dump, &s[4..16]));
    }
    assert!(
        !contains_secret(&dump, APP_SECRET),
        "the app secret is stored in the clear"
    );
    assert!(!contains_secret(&dump, &store.master_key.to_hex()));
}

pub async fn wrong_master_key_is_refused_and_writes_nothing(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_token(new_token("t", &fake_token()), "test")
        .await
        .unwrap();
    drop(inv);
    let before = store.raw_dump().await;
    let err = Inventory::open(store.options_with_key(MasterKey::generate()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongMasterKey), "{err:?}");
    assert!(err.to_string().contains("nothing was changed"));
    let after = store.raw_dump().await;
    if store.sqlite_path().is_none() {
        assert_eq!(before, after, "a wrong key wrote to the database");
    }
    // The right key still works.
    let inv = store.open().await;
    assert_eq!(inv.tokens(&TokenFilter::default()).await.unwrap().len(), 1);
}

pub async fn swapped_ciphertext_does_not_decrypt(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_token(new_token("a", &fake_token()), "test")
        .await
        .unwrap();
    inv.add_token(new_token("b", &fake_token()), "test")
        .await
        .unwrap();
    let a = inv.store().token(&alias("a")).await.unwrap().unwrap();
    let b = inv.store().token(&alias("b")).await.unwrap().unwrap();
    // Someone with database access copies a's ciphertext over b's.
    let moved = inv
        .store()
        .reseal(
            &SealedRef {
                table: SecretTable::Tokens,
                row_id: b.token.id.clone(),
                secret: b.secret.clone(),
            },
            &Sealed { ..a.secret.clone() },
        )
        .await
        .unwrap();
    assert!(moved);
    let err = inv.open_token_secret(&alias("b")).await.unwrap_err();
    assert!(matches!(err, StoreError::Decrypt { .. }), "{err:?}");
    assert!(inv.open_token_secret(&alias("a")).await.is_ok());
}

async fn all_secrets_open(inv: &Inventory, expected: &[(String, String)]) {
    for (a, secret) in expected {
        let got = inv.open_token_secret(&alias(a)).await.unwrap();
        assert_eq!(got.expose_secret(), secret, "token {a} after rotation");
    }
    assert_eq!(
        inv.app_secret(&app_id()).await.unwrap().expose_secret(),
        APP_SECRET
    );
}

pub async fn rotation_interrupted_and_rerun_keeps_every_secret(store: &TestStore) {
    let inv = with_app(store).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let s = fake_token();
        inv.add_token(new_token(&format!("tok{i:02}"), &s), "test")
            .await
            .unwrap();
        expected.push((format!("tok{i:02}"), s));
    }
    let report = inv
        .rotate_data_key(
            &RotateOptions {
                batch_size: 4,
                stop_after: Some(5),
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.version,
            report.resumed,
            report.resealed,
            report.complete
        ),
        (2, false, 5, false)
    );
    drop(inv);

    // A fresh process sees a half-rotated store: every secret still opens.
    let inv = store.open().await;
    all_secrets_open(&inv, &expected).await;
    let usage = inv.key_usage().await.unwrap();
    assert_eq!(usage.iter().map(|u| u.secrets).sum::<i64>(), 13);
    assert_eq!(usage.len(), 2);

    // Rerun: it finishes the same rotation rather than starting another.
    let report = inv
        .rotate_data_key(
            &RotateOptions {
                batch_size: 4,
                stop_after: None,
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(
        (
            report.version,
            report.resumed,
            report.resealed,
            report.complete
        ),
        (2, true, 8, true)
    );
    assert_eq!(report.deleted_keys, [1]);
    all_secrets_open(&inv, &expected).await;
    let usage = inv.key_usage().await.unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].version, usage[0].secrets), (2, 13));

    // A later rotation starts a new key.
    let report = inv
        .rotate_data_key(&RotateOptions::default(), "test")
        .await
        .unwrap();
    assert_eq!(
        (report.version, report.resumed, report.resealed),
        (3, false, 13)
    );
    all_secrets_open(&inv, &expected).await;
    let rotations = inv
        .recent_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "key.rotated")
        .count();
    assert_eq!(rotations, 2);
}

pub async fn rotation_while_writers_keep_working(store: &TestStore) {
    let inv = Arc::new(with_app(store).await);
    let mut expected = Vec::new();
    for i in 0..30 {
        let s = fake_token();
        inv.add_token(new_token(&format!("old{i:02}"), &s), "test")
            .await
            .unwrap();
        expected.push((format!("old{i:02}"), s));
    }
    // A second handle, as another process would have, keeps adding while the first rotates.
    let writer = Arc::new(store.open().await);
    let writes = {
        let writer = Arc::clone(&writer);
        tokio::spawn(async move {
            let mut added = Vec::new();
            for i in 0..20 {
                let s = fake_token();
                writer
                    .add_token(new_token(&format!("new{i:02}"), &s), "test")
                    .await
                    .unwrap();
                added.push((format!("new{i:02}"), s));
            }
            added
        })
    };
    let report = inv
        .rotate_data_key(
            &RotateOptions {
                batch_size: 3,
                stop_after: None,
            },
            "test",
        )
        .await
        .unwrap();
    expected.extend(writes.await.unwrap());
    assert!(report.complete);
    all_secrets_open(&inv, &expected).await;
    all_secrets_open(&writer, &expected).await;
    // Anything the other handle sealed with the retired key is moved by the next run.
    inv.rotate_data_key(&RotateOptions::default(), "test")
        .await
        .unwrap();
    all_secrets_open(&inv, &expected).await;
}

pub async fn master_key_rotation_rewraps_the_keyring(store: &TestStore) {
    let inv = with_app(store).await;
    let secret = fake_token();
    inv.add_token(new_token("t", &secret), "test")
        .await
        .unwrap();
    let new_master = MasterKey::generate();

    // A stale list of data keys is refused, and nothing changes.
    let err = inv
        .store()
        .rewrap_keys(
            b"junk",
            &[(99, vec![1, 2, 3])],
            &graphwarden_store::NewEvent {
                at: 0,
                actor: "t".into(),
                action: "master_key.rotated",
                token_id: None,
                token_alias: None,
                app_id: None,
                detail: serde_json::json!({}),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ConcurrentChange { .. }),
        "{err:?}"
    );
    drop(store.open().await);

    assert_eq!(inv.rewrap_master_key(&new_master, "ops").await.unwrap(), 1);
    let old = Inventory::open(store.options()).await.unwrap_err();
    assert!(matches!(old, StoreError::WrongMasterKey), "{old:?}");
    let reopened = Inventory::open(store.options_with_key(new_master.clone()))
        .await
        .unwrap();
    assert_eq!(
        reopened
            .open_token_secret(&alias("t"))
            .await
            .unwrap()
            .expose_secret(),
        secret
    );
    // The same handle keeps working, including what needs the master key.
    inv.rotate_data_key(&RotateOptions::default(), "ops")
        .await
        .unwrap();
    assert_eq!(
        inv.open_token_secret(&alias("t"))
            .await
            .unwrap()
            .expose_secret(),
        secret
    );
    let reopened = Inventory::open(store.options_with_key(new_master))
        .await
        .unwrap();
    assert_eq!(
        reopened
            .open_token_secret(&alias("t"))
            .await
            .unwrap()
            .expose_secret(),
        secret
    );
    assert!(
        reopened
            .recent_events(10)
            .await
            .unwrap()
            .iter()
            .any(|e| e.action == "master_key.rotated")
    );
}

pub async fn secret_holding_types_redact_their_debug(store: &TestStore) {
    let inv = with_app(store).await;
    let secret = fake_token();
    let new = new_token("t", &secret);
    let app = new_app("77");
    for text in [
        format!("{new:?}"),
        format!("{app:?}"),
        format!("{:?}", store.options()),
        format!("{inv:?}"),
    ] {
        assert!(
            !text.contains(&secret) && !text.contains(APP_SECRET),
            "{text}"
        );
        assert!(!text.contains(store.master_key.to_hex().as_str()));
    }
    inv.add_token(new, "t").await.unwrap();
    let record = inv.store().token(&alias("t")).await.unwrap().unwrap();
    assert!(!format!("{record:?}").contains(&secret));
    let revealed = inv.reveal_token(&alias("t"), "t", "").await.unwrap();
    assert!(!format!("{revealed:?}").contains(&secret));
}

pub async fn inspections_update_the_token_and_log_each_change(store: &TestStore) {
    use graphwarden_store::{Inspection, InspectionDetails};
    let inv = with_app(store).await;
    let token = inv
        .add_token(new_token("t", &fake_token()), "t")
        .await
        .unwrap();
    let now = store.clock.now();
    let later = now
        .checked_add(SignedDuration::from_hours(24 * 60))
        .unwrap();
    let details = |scopes: &[&str]| InspectionDetails {
        expires: Expiry::At(later),
        data_access_expires_at: Some(later),
        issued_at: Some(now),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        granular_scopes: vec![GranularScope {
            scope: "ads_read".into(),
            target_ids: vec!["act_1".into()],
        }],
        meta_kind: Some("USER".into()),
        meta_user_id: Some(MetaId::parse("123").unwrap()),
        page_id: None,
    };
    let outcome = inv
        .record_inspection(
            &token,
            Inspection {
                status: TokenStatus::Valid,
                cause: "valid".into(),
                checked_at: now,
                details: Some(details(&["ads_read", "email"])),
                flags: vec![],
            },
            "checker",
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.previous, outcome.current),
        (TokenStatus::Unknown, TokenStatus::Valid)
    );
    let t = inv.token(&alias("t")).await.unwrap();
    assert_eq!(t.status, TokenStatus::Valid);
    assert_eq!(t.expires, Expiry::At(later));
    assert_eq!(
        t.scopes.as_deref(),
        Some(&["ads_read".to_owned(), "email".to_owned()][..])
    );
    assert_eq!(t.meta_user_id.as_ref().unwrap().as_str(), "123");
    assert_eq!(t.last_checked_at, Some(now));
    assert_eq!(t.meta_kind.as_deref(), Some("USER"));

    // Scope drift and a flag, then death.
    inv.record_inspection(
        &t,
        Inspection {
            status: TokenStatus::Valid,
            cause: "valid".into(),
            checked_at: now,
            details: Some(details(&["ads_read"])),
            flags: vec!["app id differs".into()],
        },
        "checker",
    )
    .await
    .unwrap();
    let t = inv.token(&alias("t")).await.unwrap();
    assert_eq!(t.flags, ["app id differs"]);
    inv.record_inspection(
        &t,
        Inspection {
            status: TokenStatus::Revoked,
            cause: "revoked by API call".into(),
            checked_at: now,
            details: Some(details(&[])),
            flags: t.flags.clone(),
        },
        "checker",
    )
    .await
    .unwrap();
    // A round that could not reach Meta does not bury the death.
    let t = inv.token(&alias("t")).await.unwrap();
    let kept = inv
        .record_inspection(
            &t,
            Inspection {
                status: TokenStatus::Unknown,
                cause: "Meta unreachable".into(),
                checked_at: now,
                details: None,
                flags: vec![],
            },
            "checker",
        )
        .await
        .unwrap();
    assert_eq!(kept.current, TokenStatus::Revoked);
    let t = inv.token(&alias("t")).await.unwrap();
    assert_eq!(
        (t.status, t.status_cause.as_str()),
        (TokenStatus::Revoked, "revoked by API call")
    );

    let actions: Vec<String> = inv
        .token_events(&alias("t"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "token.added",
            "token.status_changed",
            "token.scopes_changed",
            "token.flagged",
            "token.status_changed",
            "token.scopes_changed"
        ]
    );
}

pub async fn keyset_pages_walk_every_token_once_in_order(store: &TestStore) {
    let inv = with_app(store).await;
    inv.add_app(new_app("999"), "test").await.unwrap();
    let mut expected = Vec::new();
    for (app, n) in [(APP, 7usize), ("999", 5)] {
        for i in 0..n {
            let a = format!("t{app}-{i:02}");
            let secret = fake_token();
            let mut t = new_token(&a, &secret);
            t.app_id = AppId::parse(app).unwrap();
            t.tags = if i.is_multiple_of(2) {
                vec![Tag::parse(&format!("n:{i}")).unwrap()]
            } else {
                Vec::new()
            };
            inv.add_token(t, "test").await.unwrap();
            expected.push((app.to_owned(), a, secret));
        }
    }
    expected.sort();
    let filter = TokenFilter::default();
    assert_eq!(inv.token_count(&filter).await.unwrap(), 12);
    let mut seen = Vec::new();
    let mut after: Option<(AppId, TokenAlias)> = None;
    loop {
        let page = inv
            .token_page_with_secrets(&filter, after.as_ref().map(|(a, b)| (a, b)), 5)
            .await
            .unwrap();
        assert!(page.len() <= 5);
        let Some((last, _)) = page.last() else { break };
        after = Some((last.app_id.clone(), last.alias.clone()));
        for (token, secret) in page {
            let i: usize = token.alias.as_str()[token.alias.as_str().len() - 2..]
                .parse()
                .unwrap();
            // Each token carries its own tags, not the whole selection's.
            let tags: Vec<String> = token.tags.iter().map(|t| t.to_string()).collect();
            if i.is_multiple_of(2) {
                assert_eq!(tags, vec![format!("n:{i}")], "{}", token.alias);
            } else {
                assert!(tags.is_empty(), "{}", token.alias);
            }
            seen.push((
                token.app_id.to_string(),
                token.alias.to_string(),
                secret.unwrap().expose_secret().to_owned(),
            ));
        }
    }
    assert_eq!(seen, expected);

    // Filters apply to pages and counts alike.
    let one_app = TokenFilter {
        app_id: Some(AppId::parse("999").unwrap()),
        ..TokenFilter::default()
    };
    assert_eq!(inv.token_count(&one_app).await.unwrap(), 5);
    let page = inv
        .token_page_with_secrets(&one_app, None, 100)
        .await
        .unwrap();
    assert_eq!(page.len(), 5);
    assert!(page.iter().all(|(t, _)| t.app_id.as_str() == "999"));
}

pub async fn api_keys_are_shown_once_hashed_and_revocable(store: &TestStore) {
    use graphwarden_core::Role;
    let inv = with_app(store).await;
    inv.add_token(new_token("ana", &fake_token()), "test")
        .await
        .unwrap();
    let (key, secret) = inv
        .create_api_key("ci", Role::Operator, vec![], "admin")
        .await
        .unwrap();
    assert_eq!(key.role, Role::Operator);
    let presented = secret.expose_secret().to_owned();
    assert!(presented.starts_with(&format!("gwk_{}_", key.id)));
    let seen = inv.verify_api_key(&presented).await.unwrap().unwrap();
    assert_eq!(seen.name, "ci");
    assert!(
        !contains_secret(&store.raw_dump().await, &presented),
        "the key is stored only as a hash"
    );

    // Wrong, malformed, or another key's id with a wrong secret: all refused alike.
    let mut wrong = presented.clone();
    wrong.pop();
    wrong.push(if presented.ends_with('0') { '1' } else { '0' });
    for bad in [wrong.as_str(), "", "gwk_", "Bearer x", &presented[..20]] {
        assert!(inv.verify_api_key(bad).await.unwrap().is_none(), "{bad}");
    }

    // Names are unique; consumer keys must name existing tokens; others may not.
    assert!(matches!(
        inv.create_api_key("ci", Role::Reader, vec![], "admin")
            .await,
        Err(StoreError::NameTaken { .. })
    ));
    assert!(
        inv.create_api_key("app", Role::Consumer, vec![], "admin")
            .await
            .is_err()
    );
    assert!(matches!(
        inv.create_api_key("app", Role::Consumer, vec![alias("nope")], "admin")
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        inv.create_api_key("r", Role::Reader, vec![alias("ana")], "admin")
            .await
            .is_err()
    );
    let (consumer, _) = inv
        .create_api_key("etl", Role::Consumer, vec![alias("ana")], "admin")
        .await
        .unwrap();
    assert_eq!(consumer.aliases, vec![alias("ana")]);

    inv.revoke_api_key("ci", "admin").await.unwrap();
    assert!(inv.verify_api_key(&presented).await.unwrap().is_none());
    assert!(inv.revoke_api_key("ci", "admin").await.is_err());
    let listed = inv.api_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .find(|k| k.name == "ci")
            .unwrap()
            .revoked_at
            .is_some()
    );
    let actions: Vec<String> = inv
        .recent_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"api_key.created".to_owned()));
    assert!(actions.contains(&"api_key.revoked".to_owned()));
}

pub async fn jobs_keep_their_next_run_and_one_claimant(store: &TestStore) {
    use graphwarden_store::JobClaim;
    let inv = store.initialize().await;
    let db = inv.store();
    let job = db
        .upsert_job("inspect", "0 */6 * * *", Some(1_000), 10)
        .await
        .unwrap();
    assert_eq!(job.next_run_at.unwrap().as_millisecond(), 1_000);
    // The same schedule keeps the stored next run (a restart); a new one resets it.
    let job = db
        .upsert_job("inspect", "0 */6 * * *", Some(9_999), 20)
        .await
        .unwrap();
    assert_eq!(job.next_run_at.unwrap().as_millisecond(), 1_000);
    let job = db
        .upsert_job("inspect", "0 */3 * * *", Some(5_000), 30)
        .await
        .unwrap();
    assert_eq!(job.next_run_at.unwrap().as_millisecond(), 5_000);

    let claim = |owner: &'static str, now: i64, expected: i64, next: i64| JobClaim {
        name: "inspect",
        owner,
        now_ms: now,
        lease_until_ms: now + 100,
        expected_next_ms: Some(Some(expected)),
        new_next_ms: Some(next),
    };
    assert!(
        db.claim_job(&claim("a", 5_000, 5_000, 8_000))
            .await
            .unwrap()
    );
    // Another instance that saw the old next run loses; so does one while the lease runs.
    assert!(
        !db.claim_job(&claim("b", 5_001, 5_000, 8_000))
            .await
            .unwrap()
    );
    assert!(
        !db.claim_job(&claim("b", 5_050, 8_000, 11_000))
            .await
            .unwrap()
    );
    let run = db
        .start_job_run("inspect", "schedule", "a", 5_000)
        .await
        .unwrap();
    // Lease expired and the owner never finished: the run is marked interrupted.
    assert!(db.interrupt_stale_runs(5_050).await.unwrap().is_empty());
    assert_eq!(
        db.interrupt_stale_runs(6_000).await.unwrap(),
        vec!["inspect".to_owned()]
    );
    assert!(
        db.claim_job(&claim("b", 6_000, 8_000, 11_000))
            .await
            .unwrap()
    );
    let run2 = db
        .start_job_run("inspect", "manual", "b", 6_000)
        .await
        .unwrap();
    db.finish_job_run(
        run2,
        6_500,
        "ok",
        "12 tokens",
        &serde_json::json!({"tokens": 12}),
    )
    .await
    .unwrap();
    db.release_job("inspect", "b").await.unwrap();
    let runs = db.job_runs(Some("inspect"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].id, run2);
    assert_eq!(runs[0].outcome, "ok");
    assert_eq!(runs[0].counts["tokens"], 12);
    assert_eq!(runs[1].id, run);
    assert_eq!(runs[1].outcome, "interrupted");
    let jobs = db.jobs().await.unwrap();
    assert_eq!(jobs[0].lease_owner, None);
    assert_eq!(jobs[0].next_run_at.unwrap().as_millisecond(), 11_000);
    // A manual claim leaves the schedule alone.
    assert!(
        db.claim_job(&JobClaim {
            name: "inspect",
            owner: "c",
            now_ms: 7_000,
            lease_until_ms: 7_100,
            expected_next_ms: None,
            new_next_ms: None,
        })
        .await
        .unwrap()
    );
    assert_eq!(
        db.jobs().await.unwrap()[0]
            .next_run_at
            .unwrap()
            .as_millisecond(),
        11_000
    );
    // Retention removes finished runs only.
    let running = db
        .start_job_run("inspect", "manual", "c", 7_000)
        .await
        .unwrap();
    assert_eq!(db.prune_job_runs(8_000).await.unwrap(), 2);
    let left = db.job_runs(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, running);
}

pub async fn alert_state_outbox_and_silences_round_trip(store: &TestStore) {
    use graphwarden_core::alert::{Labels, Matchers, Notification, NotifiedAlert, Silence};
    use graphwarden_store::{DeliveryState, NewDelivery};
    let inv = store.initialize().await;
    let db = inv.store();
    assert_eq!(db.alert_state().await.unwrap(), None);

    let alert = graphwarden_core::alert::Alert {
        labels: Labels::from([("alertname".to_owned(), "token_dead".to_owned())]),
        annotations: Labels::new(),
        starts_at: jiff::Timestamp::from_millisecond(1_000).unwrap(),
        ends_at: None,
    };
    let n = Notification::new(
        "ops",
        "{}:{alertname=\"token_dead\"}",
        Labels::new(),
        vec![NotifiedAlert::from(&alert)],
    );
    let new = |r: &str| NewDelivery {
        receiver: r.to_owned(),
        notification: n.clone(),
    };
    // The state and the outbox are written together.
    let ids = db
        .save_alert_state("{\"v\":1}", &[new("ops"), new("pager")], 2_000)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        db.alert_state().await.unwrap().as_deref(),
        Some("{\"v\":1}")
    );
    db.save_alert_state("{\"v\":2}", &[], 2_500).await.unwrap();
    assert_eq!(
        db.alert_state().await.unwrap().as_deref(),
        Some("{\"v\":2}")
    );

    let due = db.due_deliveries(2_000, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].id, ids[0]);
    assert_eq!(due[0].notification, n);
    assert_eq!(due[0].state, DeliveryState::Pending);
    assert!(db.due_deliveries(1_999, 10).await.unwrap().is_empty());

    db.mark_delivered(ids[0], 1, 2_100).await.unwrap();
    db.retry_delivery(ids[1], 1, 5_000, "HTTP 503")
        .await
        .unwrap();
    assert!(db.due_deliveries(4_999, 10).await.unwrap().is_empty());
    assert_eq!(
        db.next_delivery_at()
            .await
            .unwrap()
            .unwrap()
            .as_millisecond(),
        5_000
    );
    let again = db.due_deliveries(5_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("HTTP 503"));
    db.fail_delivery(ids[1], 2, "HTTP 400", 5_100)
        .await
        .unwrap();
    assert_eq!(db.next_delivery_at().await.unwrap(), None);
    let all = db.deliveries(10).await.unwrap();
    assert_eq!(all[0].id, ids[1]);
    assert_eq!(all[0].state, DeliveryState::Failed);
    assert_eq!(all[1].state, DeliveryState::Delivered);
    assert_eq!(all[1].delivered_at.unwrap().as_millisecond(), 2_100);

    let silence = Silence {
        id: graphwarden_store::new_silence_id(),
        matchers: Matchers::parse(r#"{token="ana",alertname=~"token_.*"}"#).unwrap(),
        starts_at: jiff::Timestamp::from_millisecond(1_000).unwrap(),
        ends_at: jiff::Timestamp::from_millisecond(10_000).unwrap(),
        created_by: "apikey:ops".to_owned(),
        comment: "maintenance".to_owned(),
    };
    db.insert_silence(&silence, 1_000).await.unwrap();
    assert!(db.insert_silence(&silence, 1_000).await.is_err());
    let listed = db.silences().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].silence, silence);
    assert_eq!(
        db.live_silences(9_999).await.unwrap(),
        vec![silence.clone()]
    );
    assert!(db.live_silences(10_000).await.unwrap().is_empty());
    // Expiring ends it now; a second time there is nothing to expire.
    assert!(db.expire_silence(&silence.id, 3_000).await.unwrap());
    assert!(!db.expire_silence(&silence.id, 3_001).await.unwrap());
    assert!(!db.expire_silence("nope", 3_001).await.unwrap());
    assert!(db.live_silences(3_000).await.unwrap().is_empty());
    assert_eq!(
        db.silences().await.unwrap()[0]
            .silence
            .ends_at
            .as_millisecond(),
        3_000
    );
    // Pruning keeps what is still pending and silences that have not ended.
    let pending = db
        .save_alert_state("{\"v\":3}", &[new("ops")], 6_000)
        .await
        .unwrap();
    assert_eq!(db.prune_alert_history(7_000).await.unwrap(), (2, 1));
    let left = db.deliveries(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, pending[0]);
    assert!(db.silences().await.unwrap().is_empty());
}

pub async fn call_records_and_rollups_round_trip_and_prune(store: &TestStore) {
    use graphwarden_core::call::{CallRecord, ChangeType};
    use graphwarden_store::Rollup;
    let inv = store.initialize().await;
    let db = inv.store();
    let call = |at_ms: i64, alias: Option<&str>, code: Option<i64>| CallRecord {
        at_ms,
        token_alias: alias.map(Into::into),
        token_fingerprint: alias.map(|a| format!("fp-{a}").into()),
        app_id: Some(APP.into()),
        method: "POST".into(),
        path: "/{version}/{id}".into(),
        object_id: Some("23850000000000001".into()),
        change: ChangeType::BudgetChange,
        http_status: if code.is_some() { 400 } else { 200 },
        error_code: code,
        error_subcode: code.map(|_| 2_446_079),
        error_class: code.map(|_| "throttled".into()),
        duration_us: 1500,
        usage_pct: Some(12.5),
        usage: Some(r#"{"app":{"call_count":12.5}}"#.into()),
        batch_index: Some(3),
        outcome: "forwarded".into(),
    };
    // More rows than one statement takes, and a batch that needs every statement size the
    // writer uses (256, 64, 16, 4, 1): 921 rows = 3 × 256 + 2 × 64 + 16 + 2 × 4 + 1.
    let mut calls: Vec<CallRecord> = (0..919)
        .map(|i| call(60_000 + i, Some("ana"), None))
        .collect();
    calls.push(call(120_500, Some("ana"), Some(80004)));
    calls.push(call(120_600, None, None));
    db.insert_calls(&calls, &Rollup::fold(&calls))
        .await
        .unwrap();
    // The same minute again adds to its rollup rather than replacing it.
    let again = vec![call(60_100, Some("ana"), None)];
    db.insert_calls(&again, &Rollup::fold(&again))
        .await
        .unwrap();
    assert_eq!(db.call_count().await.unwrap(), 922);

    let recent = db.recent_calls(Some("ana"), 2).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0], calls[919], "newest first, every field kept");
    assert_eq!(db.recent_calls(None, 1).await.unwrap()[0], calls[920]);

    let rollups = db.rollups_since(0).await.unwrap();
    let first = rollups
        .iter()
        .find(|r| r.minute_ms == 60_000 && r.token_alias == "ana")
        .unwrap();
    assert_eq!(first.calls, 920);
    assert_eq!(first.duration_us, 920 * 1500);
    assert_eq!(first.max_usage_pct, 12.5);
    assert!(
        rollups
            .iter()
            .any(|r| r.minute_ms == 120_000 && r.error_code == 80004 && r.calls == 1)
    );
    assert!(
        rollups
            .iter()
            .any(|r| r.minute_ms == 120_000 && r.token_alias.is_empty())
    );
    assert_eq!(db.rollups_since(120_000).await.unwrap().len(), 2);

    // Event Match Quality: the latest score of each event and the one before.
    use graphwarden_store::QualityScore;
    let q = |event: &str, score: f64, at: i64| QualityScore {
        dataset_id: "600000000000601".into(),
        event_name: event.into(),
        score,
        checked_at_ms: at,
    };
    db.insert_quality(&[q("Purchase", 8.3, 1), q("AddToCart", 6.1, 1)])
        .await
        .unwrap();
    db.insert_quality(&[q("Purchase", 7.0, 2)]).await.unwrap();
    db.insert_quality(&[q("Purchase", 6.5, 3)]).await.unwrap();
    let trends = db.quality_trends().await.unwrap();
    assert_eq!(trends.len(), 2);
    assert_eq!(trends[0].latest.event_name, "AddToCart");
    assert_eq!(trends[0].previous, None);
    assert_eq!(trends[1].latest.score, 6.5);
    assert_eq!(trends[1].previous, Some(7.0));

    let (calls_deleted, rollups_deleted) = db.prune_calls(120_000, 100_000).await.unwrap();
    assert_eq!((calls_deleted, rollups_deleted), (920, 1));
    assert_eq!(db.call_count().await.unwrap(), 2);
}

pub async fn pacing_state_is_shared_between_instances(store: &TestStore) {
    use graphwarden_core::pacing::{HoldCause, PaceKey, SharedKey};
    let inv = store.initialize().await;
    let db = inv.store();
    let app = PaceKey::App { app_id: "1".into() };
    let use_case = PaceKey::UseCase {
        object_id: "42".into(),
        kind: "ads_management".into(),
    };
    let shared = |key: &PaceKey, percent: f64, held: i64, hold: Option<HoldCause>| SharedKey {
        key: key.clone(),
        percent,
        observed_ms: 1_000,
        held_until_ms: held,
        hold,
        meta_code: hold
            .filter(|h| *h == HoldCause::Meta)
            .map(|_| (80004, Some(2_446_079))),
    };
    db.share_pacing(
        "a",
        &[
            shared(&app, 40.5, 0, None),
            shared(&use_case, 100.0, 90_000, Some(HoldCause::Meta)),
        ],
        1_000,
        0,
    )
    .await
    .unwrap();
    // An instance never reads its own rows back; others read them.
    assert!(db.shared_pacing("a", 0).await.unwrap().is_empty());
    let mut seen = db.shared_pacing("b", 0).await.unwrap();
    seen.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(
        seen,
        vec![
            shared(&app, 40.5, 0, None),
            shared(&use_case, 100.0, 90_000, Some(HoldCause::Meta)),
        ]
    );
    // A newer write replaces the instance's row; only rows since `since` are read.
    db.share_pacing("a", &[shared(&app, 60.0, 0, None)], 5_000, 0)
        .await
        .unwrap();
    let newer = db.shared_pacing("b", 4_000).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].percent, 60.0);
    // Rows nobody updated are forgotten.
    db.share_pacing("b", &[], 10_000, 4_000).await.unwrap();
    let left = db.shared_pacing("c", 0).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key, app);
}

/// Run raw SQL against the store's database behind graphwarden's back, with the event log's
/// append-only triggers out of the way: what someone with database access could do.
async fn tamper(store: &TestStore, statements: &[&str]) {
    let url = store.url();
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER IF EXISTS events_no_update")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER IF EXISTS events_no_delete")
            .execute(&pool)
            .await
            .unwrap();
        for s in statements {
            sqlx::query(s).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
            .execute(&mut *conn)
            .await
            .unwrap();
        for s in statements {
            sqlx::query(s).execute(&mut *conn).await.unwrap();
        }
        sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

async fn logged_inventory(store: &TestStore) -> Inventory {
    let inv = with_app(store).await;
    for i in 0..4 {
        inv.add_token(new_token(&format!("t{i}"), &fake_token()), "test")
            .await
            .unwrap();
    }
    inv
}

pub async fn event_chain_holds_under_concurrent_writers(store: &TestStore) {
    let inv = Arc::new(with_app(store).await);
    let other = Arc::new(store.open().await);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let inv = if i % 2 == 0 {
            inv.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            inv.add_token(new_token(&format!("c{i}"), &fake_token()), "test")
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = inv.verify_events().await.unwrap();
    assert!(report.intact(), "{report:#?}");
    // app.added plus twelve tokens.
    assert_eq!(report.events, 13);
    assert_eq!(report.legacy, 0);
    assert_eq!(
        report.head_event_id,
        Some(inv.recent_events(1).await.unwrap()[0].id)
    );
}

pub async fn event_chain_names_edits_deletions_and_truncation(store: &TestStore) {
    use graphwarden_store::ChainProblem;

    let inv = logged_inventory(store).await;
    let ids: Vec<i64> = {
        let mut e = inv.recent_events(100).await.unwrap();
        e.reverse();
        e.iter().map(|e| e.id).collect()
    };
    assert_eq!(ids.len(), 5);
    assert!(inv.verify_events().await.unwrap().intact());

    // An edited detail, a row removed from the middle.
    tamper(
        store,
        &[
            &format!("UPDATE events SET actor = 'mallory' WHERE id = {}", ids[1]),
            &format!("DELETE FROM events WHERE id = {}", ids[3]),
        ],
    )
    .await;
    let report = inv.verify_events().await.unwrap();
    assert_eq!(
        report.problems,
        vec![
            ChainProblem::Edited { event_id: ids[1] },
            ChainProblem::Broken {
                event_id: ids[4],
                previous_id: Some(ids[2])
            },
            ChainProblem::HeadMismatch {
                head_event_id: ids[4],
                head_count: 5,
                last_event_id: Some(ids[4]),
                count: 4
            },
        ],
        "{report:#?}"
    );
    // Each problem reads as a sentence a person can act on.
    assert!(report.problems[1].to_string().contains("deleted"));
}

pub async fn event_chain_catches_a_cut_tail_a_forged_row_and_a_forged_head(store: &TestStore) {
    use graphwarden_store::ChainProblem;

    let inv = logged_inventory(store).await;
    let last = inv.recent_events(1).await.unwrap()[0].id;
    tamper(store, &[&format!("DELETE FROM events WHERE id = {last}")]).await;
    let problems = inv.verify_events().await.unwrap().problems;
    assert!(
        matches!(problems[..], [ChainProblem::HeadMismatch { head_event_id, .. }] if head_event_id == last),
        "{problems:?}"
    );

    // A row forged by copying another's chain columns, and one with none.
    tamper(
        store,
        &[
            "INSERT INTO events (at, actor, action, detail, prev_hash, hash) \
             SELECT at, 'mallory', action, detail, prev_hash, hash FROM events \
             WHERE id = (SELECT MIN(id) FROM events)",
            "INSERT INTO events (at, actor, action, detail) VALUES (1, 'mallory', 'token.added', '{}')",
            "UPDATE event_chain SET count = 2",
        ],
    )
    .await;
    let problems = inv.verify_events().await.unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, ChainProblem::Edited { .. })),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, ChainProblem::Unsealed { .. }))
    );
    assert!(problems.contains(&ChainProblem::HeadForged));

    // Without its head the log refuses to grow, and says why.
    tamper(store, &["DELETE FROM event_chain"]).await;
    let err = inv
        .add_token(new_token("late", &fake_token()), "test")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EventLog { .. }), "{err}");
    assert!(inv.token(&alias("late")).await.is_err());
    assert!(
        inv.verify_events()
            .await
            .unwrap()
            .problems
            .contains(&ChainProblem::HeadMissing)
    );
}

pub async fn a_secret_is_found_in_the_log_by_fingerprint_only(store: &TestStore) {
    let inv = with_app(store).await;
    let kept = fake_token();
    let removed = fake_token();
    let never = fake_token();
    inv.add_token(new_token("kept", &kept), "test")
        .await
        .unwrap();
    inv.add_token(new_token("gone", &removed), "test")
        .await
        .unwrap();
    inv.remove_token(&alias("gone"), "test").await.unwrap();

    let found = inv
        .find_secret(&SecretString::from(kept.clone()))
        .await
        .unwrap();
    assert_eq!(found.stored_as, Some(alias("kept")));
    assert_eq!(found.events[0].action, "token.added");

    let found = inv
        .find_secret(&SecretString::from(format!("{removed}\n")))
        .await
        .unwrap();
    assert!(found.known());
    assert_eq!(found.stored_as, None);
    assert_eq!(found.events.len(), 1);
    assert_eq!(found.events[0].token_alias.as_deref(), Some("gone"));

    let found = inv.find_secret(&SecretString::from(never)).await.unwrap();
    assert!(!found.known());

    // The log names secrets by fingerprint only.
    for e in inv.recent_events(100).await.unwrap() {
        let text = e.detail.to_string();
        assert!(!text.contains(&kept) && !text.contains(&removed));
    }
}

pub async fn audits_are_stored_compared_in_order_and_pruned(store: &TestStore) {
    use graphwarden_store::AuditRecord;

    let inv = with_app(store).await;
    let s = inv.store();
    assert_eq!(s.latest_audit().await.unwrap(), None);
    let event = |n: i64| graphwarden_store::NewEvent {
        at: n,
        actor: "test".into(),
        action: "audit.completed",
        token_id: None,
        token_alias: None,
        app_id: None,
        detail: serde_json::json!({"findings": n}),
    };
    let mut ids = Vec::new();
    for n in 1..=3 {
        let record = AuditRecord {
            id: 0,
            at_ms: n * 1_000,
            actor: "test".into(),
            findings: serde_json::json!([{"rule": "no_owner", "n": n}]),
            summary: serde_json::json!({"tokens": n}),
        };
        ids.push(s.insert_audit(&record, &event(n)).await.unwrap());
    }
    let latest = s.latest_audit().await.unwrap().unwrap();
    assert_eq!(latest.id, ids[2]);
    assert_eq!(latest.findings[0]["n"], 3);
    assert_eq!(s.audit_before(ids[2]).await.unwrap().unwrap().id, ids[1]);
    assert_eq!(s.audit_before(ids[0]).await.unwrap(), None);
    assert_eq!(s.audit(ids[0]).await.unwrap().unwrap().summary["tokens"], 1);
    let listed = s.audits(10).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1], ids[0]]
    );
    assert!(
        listed[0].findings.is_null(),
        "the list leaves the findings out"
    );
    // Everything is old, but the latest is kept.
    assert_eq!(s.prune_audits(10_000).await.unwrap(), 2);
    assert_eq!(s.audits(10).await.unwrap().len(), 1);
    // Each audit was written with its event, on the chain.
    assert!(inv.verify_events().await.unwrap().intact());
    assert_eq!(
        inv.recent_events(1).await.unwrap()[0].action,
        "audit.completed"
    );
}

pub async fn users_round_trip_with_hashed_passwords(store: &TestStore) {
    use graphwarden_core::Role;
    let inv = with_app(store).await;
    let pw = SecretString::from("a sufficiently long one".to_owned());
    inv.add_user("ana", Role::Admin, &pw, "test").await.unwrap();
    let again = inv.add_user("ana", Role::Reader, &pw, "test").await;
    assert!(
        matches!(again, Err(StoreError::NameTaken { .. })),
        "{again:?}"
    );
    assert!(inv.verify_user("ana", &pw).await.unwrap().is_some());
    assert!(
        inv.verify_user(
            "ana",
            &SecretString::from("a sufficiently long two".to_owned())
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(inv.users().await.unwrap()[0].role, Role::Admin);
    inv.remove_user("ana", "test").await.unwrap();
    assert!(inv.user("ana").await.unwrap().is_none());
    let actions: Vec<String> = inv
        .recent_events(5)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&"user.created".to_owned())
            && actions.contains(&"user.removed".to_owned())
    );
    assert!(inv.verify_events().await.unwrap().intact());
}
