//! `config example`, `config show` and the layering of file, environment and flags.

use crate::assert_cli_snapshot;
use crate::support::Gw;

#[test]
fn example_is_the_shipped_file() {
    let gw = Gw::new();
    let out = gw.run(&["config", "example"]).ok();
    assert_eq!(out.stdout, include_str!("../../../../config.example.toml"));
}

#[test]
fn show_names_the_source_of_every_value_and_redacts_secrets() {
    let mut gw = Gw::new();
    gw.run(&["init"]).ok();
    std::fs::write(
        gw.data_dir.join("graphwarden.toml"),
        "[database]\nbusy_timeout = \"2s\"\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let url_file = gw.data_dir.join("db-url");
    std::fs::write(&url_file, "postgres://gw:s3cret-pw@db.internal:5432/gw\n").unwrap();
    gw.env.push((
        "GRAPHWARDEN_DATABASE__URL_FILE".into(),
        url_file.display().to_string(),
    ));
    gw.env
        .push(("GRAPHWARDEN_DATABASE__MAX_CONNECTIONS".into(), "3".into()));
    let out = gw.run(&["config", "show", "--log-level", "info"]).ok();
    assert!(!out.stdout.contains("s3cret-pw"));
    assert!(out.stdout.contains("GRAPHWARDEN_DATABASE__MAX_CONNECTIONS"));
    // The JSON form, whose layout does not depend on the temporary directory's length.
    let out = gw
        .run(&["config", "show", "--json", "--log-level", "info"])
        .ok();
    assert_cli_snapshot!(gw, "config_show", out.transcript());
    let json: serde_json::Value =
        serde_json::from_str(&gw.run(&["config", "show", "--json"]).ok().stdout).unwrap();
    let url = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "database.url")
        .unwrap();
    assert_eq!(url["value"], "postgres://gw:***@db.internal:5432/gw");
    assert_eq!(url["source"], "GRAPHWARDEN_DATABASE__URL_FILE");

    // A flag beats the environment.
    let out = gw
        .run(&[
            "config",
            "show",
            "--json",
            "--database-url",
            "sqlite://other.db",
        ])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let url = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "database.url")
        .unwrap();
    assert_eq!(url["source"], "command-line flag");
}

#[test]
fn unknown_and_mistyped_settings_are_configuration_errors() {
    let mut gw = Gw::new();
    gw.run(&["init"]).ok();
    std::fs::write(
        gw.data_dir.join("graphwarden.toml"),
        "[database]\nurll = \"x\"\n",
    )
    .unwrap();
    let out = gw.run(&["config", "show"]);
    assert_eq!(out.code, 78, "{}", out.transcript());
    assert!(out.stderr.contains("urll"), "{}", out.stderr);

    std::fs::write(gw.data_dir.join("graphwarden.toml"), "this is = = not toml").unwrap();
    assert_eq!(gw.run(&["config", "show"]).code, 78);

    std::fs::write(gw.data_dir.join("graphwarden.toml"), "").unwrap();
    gw.env
        .push(("GRAPHWARDEN_DATABSE__URL".into(), "sqlite://x.db".into()));
    let out = gw.run(&["config", "show"]);
    assert_eq!(out.code, 78);
    assert!(out.stderr.contains("databse"), "{}", out.stderr);
    gw.env.clear();

    gw.env.push((
        "GRAPHWARDEN_DATABASE__BUSY_TIMEOUT".into(),
        "forever".into(),
    ));
    assert_eq!(gw.run(&["config", "show"]).code, 78);
    gw.env.clear();
    gw.env
        .push(("GRAPHWARDEN_LOG__LEVEL".into(), "loud[".into()));
    assert_eq!(gw.run(&["config", "show"]).code, 78);
    gw.env.clear();
    assert_eq!(
        gw.run(&["config", "show", "--config", "/nonexistent.toml"])
            .code,
        78
    );
}

#[test]
fn a_config_file_elsewhere_can_move_the_key_and_database() {
    let gw = Gw::new();
    let other = gw.data_dir.with_file_name("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    let config = other.join("gw.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[key]\nfile = \"{}\"\n",
            other.join("inv.db").display(),
            other.join("k.key").display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    gw.run(&["init", "--config", &config]).ok();
    assert!(other.join("inv.db").exists());
    assert!(other.join("k.key").exists());
    assert!(!gw.data_dir.join("master.key").exists());
    gw.run(&["token", "list", "--config", &config]).ok();
}
