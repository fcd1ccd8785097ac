//! The same commands on PostgreSQL (runs when `GRAPHWARDEN_TEST_DATABASE_URL` is set).

use sqlx::Connection;

use crate::support::{APP_ID, APP_SECRET, Gw, fake_token};

#[test]
fn the_inventory_works_on_postgres_and_keeps_secrets_sealed() {
    let Some(admin) = graphwarden_testkit::postgres_admin_url() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(graphwarden_testkit::PgDatabase::create(&admin));
    let mut gw = Gw::new();
    gw.env
        .push(("GRAPHWARDEN_DATABASE__URL".into(), db.url().to_owned()));
    let out = gw.run(&["init"]).ok();
    assert!(
        !gw.db_path().exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    assert!(out.stdout.contains("postgres://"));
    gw.run_with_stdin(&["app", "add", APP_ID, "--name", "Acme"], APP_SECRET)
        .ok();
    let token = fake_token();
    gw.add_token("pg-token", &token, &["--tag", "db=pg"]).ok();
    assert_eq!(gw.add_token("again", &token, &[]).code, 65);
    let list = gw.token_json();
    assert_eq!(list[0]["alias"], "pg-token");
    gw.run(&["key", "rotate"]).ok();
    assert_eq!(
        gw.run(&["token", "reveal", "pg-token", "--yes"])
            .ok()
            .stdout
            .trim(),
        token
    );

    // A second instance with the same key and database sees the same inventory.
    let second = Gw::new();
    std::fs::create_dir_all(&second.data_dir).unwrap();
    std::fs::copy(
        gw.data_dir.join("master.key"),
        second.data_dir.join("master.key"),
    )
    .unwrap();
    let out = second
        .run(&["token", "list", "--json", "--database-url", db.url()])
        .ok();
    assert!(out.stdout.contains("pg-token"));

    let dump: Vec<String> = rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        let mut all = Vec::new();
        for table in [
            "instance",
            "data_keys",
            "apps",
            "tokens",
            "token_tags",
            "events",
        ] {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT x::text FROM {table} x"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            all.extend(rows.into_iter().map(|r| r.0));
        }
        all
    });
    let dump = dump.join("\n");
    assert!(dump.contains("pg-token"), "the dump is real");
    for secret in [token.as_str(), APP_SECRET] {
        assert!(!graphwarden_testkit::contains_secret(
            dump.as_bytes(),
            secret
        ));
    }
    drop(db);
}
