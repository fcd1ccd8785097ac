//! Setting up, registering apps, storing, listing, showing, revealing and removing tokens.

use crate::assert_cli_snapshot;
use crate::support::{APP_ID, APP_SECRET, Gw, fake_token, mode};

const TOKEN: &str = "EAABsbCS1iHgBAKZC0wGnZBQ2Example0x7Qz";

#[test]
fn init_creates_a_private_data_dir_key_config_and_database() {
    let gw = Gw::new();
    let out = gw.run(&["init"]).ok();
    assert_cli_snapshot!(gw, "init", out.transcript());
    assert_eq!(mode(&gw.data_dir), 0o700);
    assert_eq!(mode(&gw.data_dir.join("master.key")), 0o600);
    assert_eq!(mode(&gw.data_dir.join("graphwarden.toml")), 0o600);
    assert_eq!(mode(&gw.db_path()) & 0o077, 0);
    let key = std::fs::read_to_string(gw.data_dir.join("master.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "256 bits, hex");
    // The commented config is the documented example and changes nothing.
    let config = std::fs::read_to_string(gw.data_dir.join("graphwarden.toml")).unwrap();
    assert_eq!(config, gw.run(&["config", "example"]).ok().stdout);
}

#[test]
fn init_refuses_to_overwrite_an_existing_key() {
    let gw = Gw::new();
    gw.run(&["init"]).ok();
    let key = std::fs::read(gw.data_dir.join("master.key")).unwrap();
    let out = gw.run(&["init"]);
    assert_eq!(out.code, 73);
    assert!(
        out.stderr.contains("never overwrites a key"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(gw.data_dir.join("master.key")).unwrap(), key);

    // A database without its key is not silently re-keyed either.
    std::fs::rename(
        gw.data_dir.join("master.key"),
        gw.data_dir.join("moved.key"),
    )
    .unwrap();
    let out = gw.run(&["init"]);
    assert_eq!(out.code, 73, "{}", out.transcript());
    assert!(out.stderr.contains("already set up"), "{}", out.stderr);
    assert!(
        !gw.data_dir.join("master.key").exists(),
        "the unused new key is taken back"
    );
}

#[test]
fn data_dir_comes_from_the_environment_when_no_flag_is_given() {
    let gw = Gw::new();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_graphwarden"));
    let out = cmd
        .env("GRAPHWARDEN_DATA_DIR", &gw.data_dir)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(gw.data_dir.join("master.key").exists());
}

#[test]
fn apps_add_list_show_remove() {
    let gw = Gw::new();
    gw.run(&["init"]).ok();
    let added = gw.run_with_stdin(
        &[
            "app",
            "add",
            APP_ID,
            "--name",
            "Acme Ads",
            "--approved",
            "--notes",
            "ETL",
        ],
        APP_SECRET,
    );
    assert_cli_snapshot!(gw, "app_add", added.ok().transcript());
    std::fs::write(
        gw.data_dir.join("secret.txt"),
        "fedcba9876543210fedcba9876543210\n",
    )
    .unwrap();
    let secret_file = gw.data_dir.join("secret.txt").display().to_string();
    gw.run(&[
        "app",
        "add",
        "42",
        "--name",
        "Second",
        "--secret-file",
        &secret_file,
    ])
    .ok();
    let mut gw = gw;
    gw.env.push((
        "APP_SECRET_VAR".into(),
        "aaaabbbbccccddddaaaabbbbccccdddd".into(),
    ));
    gw.run(&[
        "app",
        "add",
        "43",
        "--name",
        "Third",
        "--secret-env",
        "APP_SECRET_VAR",
    ])
    .ok();

    assert_cli_snapshot!(gw, "app_list", gw.run(&["app", "list"]).ok().transcript());
    assert_cli_snapshot!(
        gw,
        "app_show_json",
        gw.run(&["app", "show", APP_ID, "--json"]).ok().transcript()
    );
    let dup = gw.run_with_stdin(&["app", "add", APP_ID, "--name", "Again"], APP_SECRET);
    assert_eq!(dup.code, 65, "{}", dup.transcript());

    let no_tty = gw.run(&["app", "remove", "42"]);
    assert_eq!(
        no_tty.code, 64,
        "removal asks, and without a terminal needs --yes"
    );
    gw.run(&["app", "remove", "42", "--yes"]).ok();
    let out = gw.run(&["app", "show", "42"]);
    assert_eq!(out.code, 66);
    assert_cli_snapshot!(gw, "app_show_missing", out.transcript());
}

#[test]
fn an_app_with_tokens_is_not_removed() {
    let gw = Gw::with_app();
    gw.add_token("t", &fake_token(), &[]).ok();
    let out = gw.run(&["app", "remove", APP_ID, "--yes"]);
    assert_eq!(out.code, 65);
    assert_cli_snapshot!(gw, "app_remove_in_use", out.transcript());
}

#[test]
fn tokens_add_list_show_events() {
    let gw = Gw::with_app();
    let out = gw.add_token(
        "acme-user",
        &format!("{TOKEN}\n"),
        &[
            "--owner",
            "ana@example.com",
            "--requested-by",
            "growth team",
            "--purpose",
            "nightly insights export",
            "--scopes-needed",
            "ads_read,ads_management",
            "--tag",
            "client:acme",
            "--tag",
            "env=prod",
            "--user-id",
            "100001",
        ],
    );
    assert_cli_snapshot!(gw, "token_add", out.ok().transcript());
    gw.add_token(
        "acme-page",
        &fake_token(),
        &[
            "--kind",
            "page",
            "--parent",
            "acme-user",
            "--page-id",
            "200002",
            "--owner",
            "ana@example.com",
        ],
    )
    .ok();
    std::fs::write(gw.data_dir.join("tok.txt"), fake_token()).unwrap();
    let file = gw.data_dir.join("tok.txt").display().to_string();
    gw.add_token(
        "from-file",
        "",
        &[
            "--kind",
            "system_user",
            "--from-file",
            &file,
            "--business-id",
            "300003",
        ],
    )
    .ok();
    let mut gw = gw;
    gw.env.push(("MY_TOKEN".into(), fake_token()));
    gw.add_token("from-env", "", &["--from-env", "MY_TOKEN", "--kind", "app"])
        .ok();

    assert_cli_snapshot!(
        gw,
        "token_list",
        gw.run(&["token", "list"]).ok().transcript()
    );
    assert_cli_snapshot!(
        gw,
        "token_show",
        gw.run(&["token", "show", "acme-user"]).ok().transcript()
    );
    assert_cli_snapshot!(
        gw,
        "token_show_json",
        gw.run(&["token", "show", "acme-page", "--json"])
            .ok()
            .transcript()
    );
    assert_cli_snapshot!(
        gw,
        "token_events",
        gw.run(&["token", "events", "acme-user"]).ok().transcript()
    );

    let json = gw.token_json();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        for field in [
            "alias",
            "kind",
            "app",
            "status",
            "expires_in",
            "scopes",
            "owner",
        ] {
            assert!(
                row.get(field).is_some(),
                "JSON rows carry the table's `{field}`"
            );
        }
    }
    let filtered = gw
        .run(&["token", "list", "--kind", "page", "--json"])
        .ok()
        .stdout;
    let filtered: serde_json::Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(filtered[0]["alias"], "acme-page");
    assert_eq!(filtered[0]["parent"], "acme-user");
    let by_tag = gw.run(&["token", "list", "--tag", "env=prod"]).ok().stdout;
    assert!(by_tag.contains("acme-user") && !by_tag.contains("acme-page"));
    let by_status = gw.run(&["token", "list", "--status", "valid"]).ok().stdout;
    assert_eq!(by_status, "No tokens match.\n", "nothing is inspected yet");
    let expiring = gw
        .run(&["token", "list", "--expiring-within", "7d", "--json"])
        .ok()
        .stdout;
    assert_eq!(expiring.trim(), "[]", "unknown expiry is not 'expiring'");
    let by_app = gw
        .run(&["token", "list", "--app", "999", "--json"])
        .ok()
        .stdout;
    assert_eq!(by_app.trim(), "[]");
}

#[test]
fn the_same_token_twice_is_refused_naming_the_alias() {
    let gw = Gw::with_app();
    gw.add_token("first", TOKEN, &[]).ok();
    let out = gw.add_token("second", &format!("  {TOKEN}  \n"), &[]);
    assert_eq!(out.code, 65);
    assert_cli_snapshot!(gw, "token_add_duplicate", out.transcript());
    let taken = gw.add_token("first", &fake_token(), &[]);
    assert_eq!(taken.code, 65);
    assert!(taken.stderr.contains("alias `first` is already taken"));
}

#[test]
fn reveal_needs_confirmation_and_is_recorded() {
    let gw = Gw::with_app();
    gw.add_token("t", TOKEN, &[]).ok();
    let refused = gw.run(&["token", "reveal", "t"]);
    assert_eq!(refused.code, 64);
    assert!(!refused.stdout.contains(TOKEN) && !refused.stderr.contains(TOKEN));
    let out = gw
        .run(&["token", "reveal", "t", "--yes", "--reason", "debugging"])
        .ok();
    assert_eq!(out.stdout, format!("{TOKEN}\n"));
    let events = gw.run(&["token", "events", "t", "--json"]).ok().stdout;
    let events: serde_json::Value = serde_json::from_str(&events).unwrap();
    let last = events.as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "token.revealed");
    assert_eq!(last["actor"], "cli:tester");
    assert_eq!(last["detail"]["reason"], "debugging");
}

#[test]
fn remove_keeps_history_and_frees_the_alias() {
    let gw = Gw::with_app();
    gw.add_token("t", &fake_token(), &[]).ok();
    assert_eq!(gw.run(&["token", "remove", "t"]).code, 64, "asks first");
    let out = gw.run(&["token", "remove", "t", "--yes"]).ok();
    assert!(out.stdout.contains("Removed token `t`"));
    assert_eq!(gw.run(&["token", "show", "t"]).code, 66);
    assert_eq!(gw.run(&["token", "remove", "t", "--yes"]).code, 66);
    gw.add_token("t", &fake_token(), &[]).ok();
    assert_eq!(gw.token_json().as_array().unwrap().len(), 1);
}

#[test]
fn help_and_version_exit_zero_and_usage_errors_exit_64() {
    let gw = Gw::new();
    assert_eq!(gw.run(&["--help"]).code, 0);
    assert_eq!(gw.run(&["--version"]).code, 0);
    assert_eq!(gw.run(&["token"]).code, 64);
    assert_eq!(gw.run(&["token", "frobnicate"]).code, 64);
    assert_eq!(gw.run(&["key", "rotate", "--batch-size", "0"]).code, 64);
}

#[test]
fn app_secret_is_checked() {
    let gw = Gw::new();
    gw.run(&["init"]).ok();
    let out = gw.run_with_stdin(&["app", "add", APP_ID, "--name", "X"], "");
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("app secret is empty"), "{}", out.stderr);
    let out = gw.run_with_stdin(&["app", "add", "not-digits", "--name", "X"], APP_SECRET);
    assert_eq!(out.code, 64);
    let out = gw.run_with_stdin(&["app", "add", APP_ID, "--name", ""], APP_SECRET);
    assert_eq!(out.code, 64);
}

#[test]
fn users_are_added_listed_and_removed_with_the_password_from_stdin() {
    let gw = Gw::new();
    gw.run(&["init"]).ok();
    let out = gw.run_with_stdin(
        &["user", "add", "ana", "--role", "operator"],
        "a long enough password\n",
    );
    assert_eq!(out.code, 0, "{}", out.transcript());
    assert!(out.stdout.contains("Added the operator `ana`"));
    let out = gw.run_with_stdin(&["user", "add", "ben", "--role", "reader"], "short");
    assert_eq!(out.code, 64, "{}", out.transcript());
    let out = gw.run_with_stdin(
        &["user", "add", "app", "--role", "consumer"],
        "a long enough password",
    );
    assert_eq!(out.code, 64, "{}", out.transcript());
    let out = gw.run_with_stdin(
        &["user", "add", "ana", "--role", "reader"],
        "another long password",
    );
    assert_eq!(out.code, 65, "the name is taken: {}", out.transcript());
    let list: serde_json::Value =
        serde_json::from_str(&gw.run(&["user", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(list[0]["name"], "ana");
    assert_eq!(list[0]["role"], "operator");
    assert!(!gw.logical_dump().contains("a long enough password"));
    gw.run(&["user", "remove", "ana"]).ok();
    assert_eq!(gw.run(&["user", "remove", "ana"]).code, 66);
}
