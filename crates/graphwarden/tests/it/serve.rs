//! `graphwarden serve`, `apikey` and `jobs` as an operator uses them: the real binary, a real
//! socket, a real SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::Gw;

fn create_key(gw: &Gw, name: &str, role: &str, extra: &[&str]) -> String {
    let mut args = vec!["apikey", "create", "--name", name, "--role", role];
    args.extend_from_slice(extra);
    let out = gw.run(&args).ok();
    let key = out.stdout.lines().last().unwrap().to_owned();
    assert!(key.starts_with("gwk_"), "{}", out.transcript());
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "the key alone on standard output"
    );
    assert!(!out.stderr.contains(&key));
    key
}

#[test]
fn api_keys_are_printed_once_and_stored_hashed() {
    let gw = Gw::with_app();
    let key = create_key(&gw, "ci", "operator", &[]);
    let list = gw.run(&["apikey", "list", "--json"]).ok();
    assert!(!list.stdout.contains(&key));
    let keys: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(keys[0]["name"], "ci");
    assert_eq!(keys[0]["role"], "operator");
    assert!(!graphwarden_testkit::contains_secret(
        &gw.database_bytes(),
        &key
    ));

    // A consumer names its tokens, and they must exist; names are unique.
    let out = gw.run(&["apikey", "create", "--name", "etl", "--role", "consumer"]);
    assert_eq!(out.code, 64, "{}", out.transcript());
    let out = gw.run(&[
        "apikey",
        "create",
        "--name",
        "etl",
        "--role",
        "consumer",
        "--aliases",
        "nope",
    ]);
    assert_eq!(out.code, 66, "{}", out.transcript());
    let out = gw.run(&["apikey", "create", "--name", "ci", "--role", "reader"]);
    assert_eq!(out.code, 65, "{}", out.transcript());
    let out = gw.run(&["apikey", "create", "--name", "x", "--role", "root"]);
    assert_eq!(out.code, 64, "{}", out.transcript());

    gw.run(&["apikey", "revoke", "ci"]).ok();
    let out = gw.run(&["apikey", "revoke", "ci"]);
    assert_eq!(out.code, 66, "{}", out.transcript());
}

#[test]
fn jobs_are_listed_and_run_by_hand() {
    let gw = Gw::with_app();
    let out = gw.run(&["jobs", "--json"]).ok();
    let jobs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "inspect", "prune", "renew"]);
    assert!(jobs[0]["next_run_at"].is_string());

    // The weekly audit, run by hand: stored, so `audit --last` shows it.
    let out = gw.run(&["jobs", "run", "audit", "--json"]).ok();
    let run: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        run["summary"].as_str().unwrap().starts_with("audit #1:"),
        "{run}"
    );
    let out = gw.run(&["audit", "--last", "--format", "json"]);
    let audit: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(audit["id"], 1);
    assert_eq!(audit["actor"], "scheduler");

    let out = gw.run(&["jobs", "run", "prune", "--json"]).ok();
    let run: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(run["outcome"], "ok");
    assert_eq!(run["trigger"], "manual");
    let out = gw.run(&["jobs", "runs", "prune"]).ok();
    assert!(out.stdout.contains("manual"), "{}", out.transcript());
    let out = gw.run(&["jobs", "run", "nope"]);
    assert_eq!(out.code, 66, "{}", out.transcript());

    // A job can be switched off, and a bad schedule is a configuration error.
    let mut gw2 = Gw::with_app();
    gw2.env.push((
        "GRAPHWARDEN_SCHEDULER__JOBS__RENEW__ENABLED".into(),
        "false".into(),
    ));
    let out = gw2.run(&["jobs", "--json"]).ok();
    assert!(!out.stdout.contains("\"renew\""));
    gw2.env.push((
        "GRAPHWARDEN_SCHEDULER__JOBS__INSPECT__SCHEDULE".into(),
        "every day".into(),
    ));
    let out = gw2.run(&["jobs"]);
    assert_eq!(out.code, 78, "{}", out.transcript());
    assert!(out.stderr.contains("every day"), "{}", out.transcript());
    let mut gw3 = Gw::with_app();
    gw3.env.push((
        "GRAPHWARDEN_SCHEDULER__JOBS__ALERT-ENGINE__SCHEDULE".into(),
        "@daily".into(),
    ));
    let out = gw3.run(&["jobs"]);
    assert_eq!(out.code, 78, "{}", out.transcript());

    // Listing a dataset adds the `quality` job; a bad dataset id is a configuration error.
    let gw4 = Gw::with_app();
    let config = gw4.data_dir.join("graphwarden.toml");
    std::fs::write(
        &config,
        "[[quality.datasets]]\ndataset_id = \"600000000000601\"\ntoken = \"etl-bot\"\n",
    )
    .unwrap();
    let out = gw4.run(&["jobs", "--json"]).ok();
    assert!(out.stdout.contains("\"quality\""), "{}", out.transcript());
    std::fs::write(
        &config,
        "[[quality.datasets]]\ndataset_id = \"pixel-1\"\ntoken = \"etl-bot\"\n",
    )
    .unwrap();
    let out = gw4.run(&["jobs"]);
    assert_eq!(out.code, 78, "{}", out.transcript());
    assert!(out.stderr.contains("pixel-1"), "{}", out.transcript());
}

#[test]
fn serve_answers_with_keys_and_stops_cleanly_on_sigterm() {
    let gw = Gw::with_app();
    let key = create_key(&gw, "ops", "admin", &[]);
    let mut child = gw
        .command(&["serve", "--listen", "127.0.0.1:0", "--log-level", "trace"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .trim_end_matches("/api/v1")
        .to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let health = http.get(format!("{url}/readyz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let r = http.get(format!("{url}/api/v1/apps")).send().await.unwrap();
        assert_eq!(r.status(), 401);
        let apps: serde_json::Value = http
            .get(format!("{url}/api/v1/apps"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(apps[0]["app_id"], crate::support::APP_ID);
    });
    let (code, log) = crate::support::terminate(&mut child);
    assert!(code.success(), "{log}");
    assert!(log.contains("Stopped."), "{log}");
    // Trace-level logs of a whole session never show the key.
    assert!(!log.contains(&key[12..]), "the key leaked into the log");
}

#[test]
fn silences_are_added_listed_and_expired_from_the_command_line() {
    let gw = Gw::with_app();
    let out = gw
        .run(&[
            "silence",
            "add",
            "--matcher",
            "token=\"ana\"",
            "--matcher",
            "alertname=~\"token_.*\"",
            "--duration",
            "2h",
            "--comment",
            "Ana is on holiday",
            "--json",
        ])
        .ok();
    let silence: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let id = silence["id"].as_str().unwrap().to_owned();
    let list = gw.run(&["silence", "list", "--json"]).ok();
    let all: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(all[0]["comment"], "Ana is on holiday");
    assert!(all[0]["created_by"].as_str().unwrap().contains("tester"));

    // Matchers that match everything, bad matchers, no comment, bad duration: refused.
    for bad in [
        vec![
            "silence",
            "add",
            "--matcher",
            "token=~\".*\"",
            "--duration",
            "1h",
            "--comment",
            "x",
        ],
        vec![
            "silence",
            "add",
            "--matcher",
            "token=\"ana",
            "--duration",
            "1h",
            "--comment",
            "x",
        ],
        vec![
            "silence",
            "add",
            "--matcher",
            "token=\"ana\"",
            "--duration",
            "soon",
            "--comment",
            "x",
        ],
        vec![
            "silence",
            "add",
            "--matcher",
            "token=\"ana\"",
            "--duration",
            "1h",
            "--comment",
            "",
        ],
    ] {
        let out = gw.run(&bad);
        assert_eq!(out.code, 64, "{bad:?}: {}", out.transcript());
    }

    gw.run(&["silence", "expire", &id]).ok();
    let out = gw.run(&["silence", "expire", &id]);
    assert_eq!(out.code, 66, "{}", out.transcript());
    let out = gw.run(&["silence", "expire", "no-such-silence"]);
    assert_eq!(out.code, 66, "{}", out.transcript());
}
