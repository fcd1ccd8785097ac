//! `key rotate` killed halfway and run again: every secret still decrypts.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graphwarden_core::{AppId, SystemClock, TokenAlias, TokenKind};
use graphwarden_store::{
    Inventory, MasterKey, NewToken, OpenOptions, PostgresOptions, SqliteOptions,
};
use secrecy::{ExposeSecret, SecretString};

use crate::support::{APP_ID, Gw, fake_token};

fn open_options(gw: &Gw) -> OpenOptions {
    OpenOptions {
        url: format!("sqlite://{}", gw.db_path().display()),
        master_key: MasterKey::load_file(&gw.data_dir.join("master.key"), false).unwrap(),
        clock: Arc::new(SystemClock),
        sqlite: SqliteOptions::default(),
        postgres: PostgresOptions::default(),
    }
}

#[test]
fn rotation_killed_halfway_then_rerun_keeps_every_secret() {
    let gw = Gw::with_app();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count = 400;
    let secrets: Vec<(String, String)> = rt.block_on(async {
        let inv = Inventory::open(open_options(&gw)).await.unwrap();
        let mut out = Vec::new();
        for i in 0..count {
            let alias = format!("tok{i:04}");
            let secret = fake_token();
            inv.add_token(
                NewToken {
                    alias: TokenAlias::parse(&alias).unwrap(),
                    kind: TokenKind::User,
                    app_id: AppId::parse(APP_ID).unwrap(),
                    secret: SecretString::from(secret.clone()),
                    meta_user_id: None,
                    page_id: None,
                    business_id: None,
                    parent: None,
                    owner: String::new(),
                    requested_by: String::new(),
                    purpose: String::new(),
                    scopes_needed: vec![],
                    tags: vec![],
                },
                "test",
            )
            .await
            .unwrap();
            out.push((alias, secret));
        }
        out
    });

    let mut child = gw
        .command(&["key", "rotate", "--batch-size", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the rotation has moved some secrets, then kill it without warning.
    let inv = rt.block_on(Inventory::open(open_options(&gw))).unwrap();
    #[allow(clippy::disallowed_methods)] // a deadline for the test itself, not product time
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let usage = rt.block_on(inv.key_usage()).unwrap();
        let moved = usage
            .iter()
            .find(|k| k.version == 2)
            .map_or(0, |k| k.secrets);
        if moved >= 20 {
            break;
        }
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        assert!(now < deadline, "rotation made no progress");
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().ok();
    child.wait().unwrap();
    let usage = rt.block_on(inv.key_usage()).unwrap();
    let total: i64 = usage.iter().map(|k| k.secrets).sum();
    assert_eq!(total, count + 1, "no secret lost: {usage:?}");

    // Every secret still decrypts, in a new process's view too.
    let check = |inv: &Inventory| {
        for (alias, secret) in &secrets {
            let got = rt
                .block_on(inv.open_token_secret(&TokenAlias::parse(alias).unwrap()))
                .unwrap();
            assert_eq!(got.expose_secret(), secret);
        }
    };
    let fresh = rt.block_on(Inventory::open(open_options(&gw))).unwrap();
    check(&fresh);

    let out = gw.run(&["key", "rotate"]).ok();
    assert!(
        out.stdout.contains("data key 2"),
        "the rerun finishes the same rotation: {}",
        out.stdout
    );
    let status = gw.run(&["key", "status", "--json"]).ok().stdout;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status.as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status[0]["version"], 2);
    assert_eq!(status[0]["secrets"], count + 1);
    check(&rt.block_on(Inventory::open(open_options(&gw))).unwrap());
}

fn key_text(gw: &Gw, name: &str) -> String {
    std::fs::read_to_string(gw.data_dir.join(name)).unwrap()
}

#[test]
fn master_key_rotation_replaces_the_key_file() {
    let gw = Gw::with_app();
    let token = fake_token();
    gw.add_token("t", &token, &[]).ok();
    let old = key_text(&gw, "master.key");
    let out = gw.run(&["key", "rotate-master"]).ok();
    assert!(
        out.stdout.contains("Rotated the master key"),
        "{}",
        out.stdout
    );
    let new = key_text(&gw, "master.key");
    assert_ne!(old, new);
    assert_eq!(crate::support::mode(&gw.data_dir.join("master.key")), 0o600);
    assert!(!gw.data_dir.join("master.key.next").exists());
    assert_eq!(
        gw.run(&["token", "reveal", "t", "--yes"])
            .ok()
            .stdout
            .trim(),
        token
    );

    // The old key no longer opens the inventory.
    std::fs::write(gw.data_dir.join("master.key"), &old).unwrap();
    assert_eq!(gw.run(&["token", "list"]).code, 77);
    std::fs::write(gw.data_dir.join("master.key"), &new).unwrap();
    gw.run(&["token", "list"]).ok();
}

#[test]
fn master_key_rotation_interrupted_after_the_database_switched_is_finished_on_next_use() {
    let gw = Gw::with_app();
    let token = fake_token();
    gw.add_token("t", &token, &[]).ok();
    let old = key_text(&gw, "master.key");
    gw.run(&["key", "rotate-master"]).ok();
    let new = key_text(&gw, "master.key");
    // Rewind the files to the moment between the database commit and the rename.
    std::fs::rename(
        gw.data_dir.join("master.key"),
        gw.data_dir.join("master.key.next"),
    )
    .unwrap();
    MasterKey::from_hex(&old)
        .unwrap()
        .write_new_file(&gw.data_dir.join("master.key"))
        .unwrap();

    let out = gw.run(&["token", "reveal", "t", "--yes"]).ok();
    assert_eq!(out.stdout.trim(), token);
    assert_eq!(
        key_text(&gw, "master.key"),
        new,
        "the new key was moved into place"
    );
    assert!(!gw.data_dir.join("master.key.next").exists());
}

#[test]
fn master_key_rotation_interrupted_before_the_database_switched_reuses_its_new_key() {
    let gw = Gw::with_app();
    let token = fake_token();
    gw.add_token("t", &token, &[]).ok();
    // A crash right after the new key was written: the database still uses the old one.
    let pending = MasterKey::generate();
    pending
        .write_new_file(&gw.data_dir.join("master.key.next"))
        .unwrap();
    gw.run(&["token", "list"]).ok();
    let out = gw.run(&["key", "rotate-master"]).ok();
    assert!(out.stdout.contains("Rotated"), "{}", out.stdout);
    assert_eq!(
        key_text(&gw, "master.key").trim(),
        pending.to_hex().as_str()
    );
    assert_eq!(
        gw.run(&["token", "reveal", "t", "--yes"])
            .ok()
            .stdout
            .trim(),
        token
    );

    // Rerunning after an interruption that had already committed finishes, and stops there.
    let current = key_text(&gw, "master.key");
    let newer = MasterKey::generate();
    newer
        .write_new_file(&gw.data_dir.join("master.key.next"))
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let inv = Inventory::open(OpenOptions {
            master_key: MasterKey::from_hex(&current).unwrap(),
            ..open_options(&gw)
        })
        .await
        .unwrap();
        inv.rewrap_master_key(&newer, "test").await.unwrap();
    });
    let out = gw.run(&["key", "rotate-master"]).ok();
    assert!(
        out.stdout.contains("Finished the interrupted"),
        "{}",
        out.stdout
    );
    assert_eq!(key_text(&gw, "master.key").trim(), newer.to_hex().as_str());
}
