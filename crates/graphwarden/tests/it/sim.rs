//! `graphwarden sim`: starts, prints what a person needs, serves, and refuses bad scenarios.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphwarden"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GRAPHWARDEN_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[tokio::test]
async fn sim_prints_its_world_and_serves_it() {
    let mut child = binary()
        .args(["sim", "--listen", "127.0.0.1:0", "--control", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let summary: Value = serde_json::from_str(&line).unwrap();
    let url = summary["url"].as_str().unwrap().to_owned();
    let app = &summary["apps"][0];
    assert_eq!(
        app["app_token"],
        format!(
            "{}|{}",
            app["id"].as_str().unwrap(),
            app["secret"].as_str().unwrap()
        )
    );
    let token = summary["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "ana-long-lived")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = reqwest::get(format!("{url}/v26.0/me?access_token={token}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Ana Admin");
    let clock = reqwest::get(format!("{url}/__sim/clock")).await.unwrap();
    assert_eq!(
        clock.status().as_u16(),
        200,
        "--control turns the control API on"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sim_human_summary_names_app_secret_and_tokens() {
    let mut child = binary()
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let text: Vec<String> = reader
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("Point a client"))
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = text.join("\n");
    assert!(
        text.contains("graphwarden sim: a simulated Meta Graph API on http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("secret") && text.contains("app token"));
    for label in [
        "ana-long-lived",
        "acme-page",
        "bot-never-expires",
        "bot-60-days",
    ] {
        assert!(text.contains(label), "{label} missing from\n{text}");
    }
}

#[test]
fn sim_refuses_bad_scenarios_and_busy_ports() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[apps]]\nid = \"1\"\nsecrett = \"typo\"\n").unwrap();
    let out = binary()
        .args(["sim", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("secrett"), "{stderr}");
    let out = binary()
        .args(["sim", "--scenario", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = binary().args(["sim", "--listen", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(69));
}
