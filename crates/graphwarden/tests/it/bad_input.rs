//! Bad input on purpose: each case gets one line saying what is wrong and what to do, an exit
//! code of 64 or more, and no change to the store.

use sqlx::Connection;

use crate::assert_cli_snapshot;
use crate::support::{APP_ID, Gw, fake_token};

/// What the store holds, as a person can see it: every token and every event.
fn state(gw: &Gw) -> String {
    let tokens = gw.run(&["token", "list", "--json"]).ok().stdout;
    let apps = gw.run(&["app", "list", "--json"]).ok().stdout;
    let events = gw.run(&["token", "events", "keep", "--json"]).ok().stdout;
    format!("{tokens}{apps}{events}")
}

#[track_caller]
fn assert_refused(out: &crate::support::Output, code: i32) {
    assert_eq!(out.code, code, "{}", out.transcript());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line of error: {:?}",
        out.stderr
    );
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
}

#[test]
fn bad_tokens_are_refused_without_change() {
    let gw = Gw::with_app();
    gw.add_token("keep", &fake_token(), &[]).ok();
    let before = state(&gw);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("whitespace", b"  \n\t \n".to_vec()),
        ("inner space", b"EAAB abc".to_vec()),
        ("control", b"EAAB\x1b[31mabc".to_vec()),
        ("nul", b"EAAB\0abc".to_vec()),
        ("not utf-8", b"EAAB\xff\xfeabc".to_vec()),
        ("too long for a token", vec![b'E'; 9_000]),
        ("absurd", vec![b'E'; 200_000]),
    ];
    let mut transcript = String::new();
    for (name, input) in cases {
        let out = gw.run_with_stdin_bytes(&["token", "add", "new", "--app", APP_ID], &input);
        assert_refused(&out, 64);
        transcript.push_str(&format!("{name}: {}", out.stderr));
    }
    assert_cli_snapshot!(gw, "bad_tokens", transcript);
    assert_eq!(state(&gw), before);
}

#[test]
fn bad_flags_are_refused_before_reading_anything() {
    let gw = Gw::with_app();
    gw.add_token("keep", &fake_token(), &[]).ok();
    let before = state(&gw);
    let token = fake_token();
    let cases: Vec<Vec<&str>> = vec![
        vec!["token", "add", "bad alias", "--app", APP_ID],
        vec!["token", "add", ".leading", "--app", APP_ID],
        vec!["token", "add", "ok", "--app", "12ab"],
        vec!["token", "add", "ok", "--app", APP_ID, "--kind", "robot"],
        vec![
            "token",
            "add",
            "ok",
            "--app",
            APP_ID,
            "--scopes-needed",
            "Ads Read",
        ],
        vec!["token", "add", "ok", "--app", APP_ID, "--tag", "no spaces"],
        vec!["token", "add", "ok", "--app", APP_ID, "--user-id", "me"],
        vec!["token", "add", "ok", "--app", APP_ID, "--owner", "a\u{7}b"],
        vec!["token", "list", "--status", "fine"],
        vec!["token", "list", "--expiring-within", "soon"],
    ];
    let mut transcript = String::new();
    for args in cases {
        let out = gw.run_with_stdin(&args, &token);
        assert_refused(&out, 64);
        transcript.push_str(&out.stderr);
    }
    assert_cli_snapshot!(gw, "bad_flags", transcript);
    assert_eq!(state(&gw), before);
}

#[test]
fn unknown_app_and_parent_are_refused() {
    let gw = Gw::with_app();
    gw.add_token("keep", &fake_token(), &[]).ok();
    let before = state(&gw);
    let out = gw.run_with_stdin(&["token", "add", "x", "--app", "999"], &fake_token());
    assert_refused(&out, 66);
    assert!(
        out.stderr.contains("app `999` does not exist"),
        "{}",
        out.stderr
    );
    let out = gw.add_token("x", &fake_token(), &["--parent", "nope"]);
    assert_refused(&out, 66);
    assert_eq!(state(&gw), before);
}

#[test]
fn secret_sources_that_are_missing() {
    let gw = Gw::with_app();
    let out = gw.add_token("x", "", &["--from-file", "/nonexistent/token.txt"]);
    assert_refused(&out, 66);
    let out = gw.add_token("x", "", &["--from-env", "GW_TEST_UNSET_VARIABLE"]);
    assert_refused(&out, 66);
    assert!(out.stderr.contains("`GW_TEST_UNSET_VARIABLE` is not set"));
}

#[test]
fn before_init_every_command_says_to_run_init() {
    let gw = Gw::new();
    let out = gw.run(&["token", "list"]);
    assert_refused(&out, 66);
    assert!(out.stderr.contains("graphwarden init"), "{}", out.stderr);
}

#[test]
fn a_wrong_key_is_refused_and_changes_nothing() {
    let gw = Gw::with_app();
    gw.add_token("keep", &fake_token(), &[]).ok();
    let before = state(&gw);
    let rows_before = gw.logical_dump();
    let key_path = gw.data_dir.join("master.key");
    let right = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, format!("{}\n", "ab".repeat(32))).unwrap();
    let out = gw.add_token("new", &fake_token(), &[]);
    assert_refused(&out, 77);
    assert_cli_snapshot!(gw, "wrong_key", out.transcript());
    assert!(
        gw.logical_dump() == rows_before,
        "the wrong key changed the database"
    );
    std::fs::write(&key_path, right).unwrap();
    assert_eq!(state(&gw), before);
}

#[test]
fn missing_malformed_and_exposed_keys() {
    let gw = Gw::with_app();
    let key_path = gw.data_dir.join("master.key");
    let right = std::fs::read(&key_path).unwrap();

    std::fs::write(&key_path, "not a key\n").unwrap();
    assert_refused(&gw.run(&["token", "list"]), 78);

    std::fs::remove_file(&key_path).unwrap();
    let out = gw.run(&["token", "list"]);
    assert_refused(&out, 66);
    assert!(out.stderr.contains("no master key"), "{}", out.stderr);

    std::fs::write(&key_path, &right).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = gw.run(&["token", "list"]);
    assert_refused(&out, 77);
    assert!(out.stderr.contains("chmod 600"), "{}", out.stderr);
    gw.run(&["token", "list", "--allow-insecure-key-permissions"])
        .ok();
    let mut gw = gw;
    gw.env.push((
        "GRAPHWARDEN_KEY__ALLOW_INSECURE_PERMISSIONS".into(),
        "true".into(),
    ));
    gw.run(&["token", "list"]).ok();
}

#[test]
fn a_corrupt_database_is_reported_and_left_alone() {
    let gw = Gw::with_app();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", gw.db_path().display()));
    }
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(gw.db_path(), &garbage).unwrap();
    let out = gw.run(&["token", "list"]);
    assert_refused(&out, 65);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(gw.db_path()).unwrap(),
        garbage,
        "the damaged file is not rewritten"
    );
}

#[test]
fn a_locked_database_gives_a_temporary_failure_and_no_change() {
    let gw = Gw::with_app();
    gw.add_token("keep", &fake_token(), &[]).ok();
    let before = state(&gw);
    let url = format!("sqlite://{}", gw.db_path().display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut holder = rt.block_on(sqlx::SqliteConnection::connect(&url)).unwrap();
    rt.block_on(sqlx::query("BEGIN IMMEDIATE").execute(&mut holder))
        .unwrap();
    let mut gw = gw;
    gw.env
        .push(("GRAPHWARDEN_DATABASE__BUSY_TIMEOUT".into(), "300ms".into()));
    let out = gw.add_token("new", &fake_token(), &[]);
    assert_refused(&out, 75);
    assert!(out.stderr.contains("locked"), "{}", out.stderr);
    rt.block_on(sqlx::query("ROLLBACK").execute(&mut holder))
        .unwrap();
    assert_eq!(state(&gw), before);
}

#[test]
fn an_unreachable_database_server() {
    let gw = Gw::with_app();
    let out = gw.run(&[
        "token",
        "list",
        "--database-url",
        "postgres://nobody:hunter2@127.0.0.1:1/gw",
    ]);
    assert_refused(&out, 69);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    let out = gw.run(&["token", "list", "--database-url", "mysql://x"]);
    assert_refused(&out, 64);
}
