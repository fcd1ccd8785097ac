//! `graphwarden serve --proxy-listen` as an operator runs it: the real binary in front of the
//! simulator, Meta's official Python SDK through it holding no token, every call recorded and
//! still there after SIGTERM, and `graphwarden usage` reading them back.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use graphwarden_sim::world::ids;
use serde_json::Value;

use crate::check::Setup;

const VENV_PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/sdk/facebook_business_proxy.py"
);

pub struct Serving {
    pub child: Child,
    pub proxy: String,
    pub api: String,
}

pub fn serve(setup: &Setup) -> Serving {
    let mut child = setup
        .gw
        .command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
        ])
        .env("GRAPHWARDEN_SCHEDULER__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut proxy, mut api) = (String::new(), String::new());
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches("/api/v1")
            .to_owned();
        if line.contains("Graph proxy") {
            proxy = url;
        } else {
            api = url;
        }
    }
    assert!(!proxy.is_empty() && !api.is_empty());
    Serving { child, proxy, api }
}

pub fn stop(mut s: Serving) -> String {
    let (code, log) = crate::support::terminate(&mut s.child);
    assert!(code.success(), "{log}");
    log
}

pub fn consumer_key(setup: &Setup, alias: &str) -> String {
    let out = setup
        .gw
        .run(&[
            "apikey",
            "create",
            "--name",
            &format!("etl-{alias}"),
            "--role",
            "consumer",
            "--aliases",
            alias,
        ])
        .ok();
    out.stdout.lines().last().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_the_proxy_are_recorded_and_usage_reads_them_back() {
    let setup = Setup::new().await;
    setup.add("ana", "ana-long-lived", &[]).ok();
    let key = consumer_key(&setup, "ana");
    let ana = setup.token("ana-long-lived");
    let s = serve(&setup);
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let r = http
            .get(format!("{}/v26.0/me?access_token={ana}", s.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .get(format!(
            "{}/v26.0/act_{}/campaigns",
            s.proxy,
            ids::AD_ACCOUNT
        ))
        .header("x-graphwarden-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&ana),
        "the stored token is scrubbed from the answer"
    );
    let metrics = http
        .get(format!("{}/metrics", s.api))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("graphwarden_proxy_calls_total"),
        "{metrics}"
    );
    let log = stop(s);
    assert!(!log.contains(&ana), "no token in the log");

    let out = setup.gw.run(&["usage", "--json", "--by", "token"]).ok();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["total"]["calls"], 6, "{}", out.stdout);
    assert_eq!(report["groups"][0]["key"], "ana");
    let out = setup.gw.run(&["usage", "--by", "endpoint"]).ok();
    assert!(out.stdout.contains("/{version}/me"), "{}", out.transcript());
    assert!(
        out.stdout.contains("/{version}/act_{id}/campaigns"),
        "{}",
        out.transcript()
    );
    let out = setup.gw.run(&["usage", "--since", "soon"]);
    assert_eq!(out.code, 64, "{}", out.transcript());
    let out = setup.gw.run(&["usage", "--by", "colour"]);
    assert_eq!(out.code, 64, "{}", out.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_through_the_proxy_holding_no_token() {
    if !Path::new(VENV_PYTHON).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("no {VENV_PYTHON}: run scripts/python-oracles.sh");
        }
        eprintln!("\n*** SKIPPED: no {VENV_PYTHON}; run scripts/python-oracles.sh ***\n");
        return;
    }
    let setup = Setup::new().await;
    setup.add("bot", "bot-never-expires", &[]).ok();
    let key = consumer_key(&setup, "bot");
    let s = serve(&setup);
    let campaigns: Vec<String> = (1..=3).map(|n| format!("70000000000000{n}")).collect();
    let out = std::process::Command::new(VENV_PYTHON)
        .arg(SCRIPT)
        .env("PROXY_URL", &s.proxy)
        .env("KEY", &key)
        .env("AD_ACCOUNT_ID", ids::AD_ACCOUNT.trim_start_matches("act_"))
        .env("CAMPAIGN_ID", "700000000000001")
        .env("BATCH_CAMPAIGN_IDS", campaigns.join(","))
        .env("MISSING_ID", "799999999999999")
        .output()
        .unwrap();
    let log = stop(s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stdout}\n{stderr}\n--- serve log ---\n{log}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // Meta never had to throttle: the proxy held the account first.
    let throttled = setup
        .sim
        .simulator()
        .calls()
        .iter()
        .filter(|c| matches!(c.error_code, Some(17 | 4 | 80004 | 613)))
        .count();
    assert_eq!(throttled, 0);
    let bot = setup.token("bot-never-expires");
    assert!(!stdout.contains(&bot) && !log.contains(&bot));
}
