//! Meta's official Python business SDK (`facebook-business` 26.0.3) against the simulator, as an
//! independent oracle of payload and error shapes (`meta-graph-reference.md` §13.1): a paged
//! read, a write, a batch and a dead token, with "Require App Secret" on so the SDK's
//! `appsecret_proof` is really checked. The SDK lives in the virtualenv that
//! `scripts/python-oracles.sh` makes; the driver is `tests/sdk/facebook_business_check.py`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{Clock, SystemClock};
use graphwarden_sim::world::ids::{AD_ACCOUNT, APP, USER_ANA};
use graphwarden_sim::{SimConfig, World};
use serde_json::{Value, json};

const VENV_PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python");
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/sdk/facebook_business_check.py"
);
/// An id no object of the default world has.
const MISSING_ID: &str = "799999999999999";

async fn control(client: &reqwest::Client, url: &str, body: Value) -> Value {
    let response = client.post(url).json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{url} answered {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn show(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_pages_writes_batches_and_sees_a_dead_token() {
    if !Path::new(VENV_PYTHON).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("no {VENV_PYTHON}: run scripts/python-oracles.sh");
        }
        eprintln!(
            "\n**************************************************************************\n\
             SKIPPED python_sdk: no {VENV_PYTHON}.\n\
             Run scripts/python-oracles.sh to install facebook-business 26.0.3.\n\
             **************************************************************************\n"
        );
        return;
    }

    let now_secs = SystemClock.now().as_second();
    let mut world = World::default_world(now_secs);
    world.apps[0].require_app_secret = true;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = graphwarden_sim::start(
        SimConfig {
            world: Some(world),
            control: true,
            clock: Arc::new(SystemClock),
        },
        listener,
    )
    .unwrap();
    let url = handle.url().to_owned();
    let sim = Arc::clone(handle.simulator());

    // Ana's tokens die with her password; the system user's token keeps working.
    let working = sim.token("bot-never-expires").unwrap();
    let secret = sim.app_secret(APP).unwrap();
    let campaigns: Vec<String> = sim
        .world()
        .campaigns
        .iter()
        .filter(|c| c.account_id == AD_ACCOUNT)
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(campaigns.len(), 12, "the default world's account");
    let first_campaign = sim.world().campaigns[0].id.clone();
    assert_eq!(first_campaign, campaigns[0]);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let minted = control(
        &client,
        &format!("{url}/__sim/tokens"),
        json!({
            "kind": "user",
            "app_id": APP,
            "user_id": USER_ANA,
            "scopes": ["ads_read", "ads_management"],
            "expires_in": 0,
            "label": "doomed",
        }),
    )
    .await;
    let dead = minted["access_token"].as_str().unwrap().to_owned();
    let event = control(
        &client,
        &format!("{url}/__sim/events/password_change"),
        json!({ "user_id": USER_ANA }),
    )
    .await;
    assert!(
        event["tokens_invalidated"].as_i64().unwrap_or(0) >= 1,
        "{event}"
    );

    let mut command = Command::new(VENV_PYTHON);
    command
        .arg(SCRIPT)
        .env("SIM_URL", &url)
        .env("APP_ID", APP)
        .env("APP_SECRET", &secret)
        .env("USER_TOKEN", &working)
        .env("DEAD_TOKEN", &dead)
        .env("AD_ACCOUNT_ID", AD_ACCOUNT)
        .env("CAMPAIGN_ID", &first_campaign)
        .env("BATCH_CAMPAIGN_IDS", campaigns[..3].join(","))
        .env("MISSING_ID", MISSING_ID)
        .env("EXPECTED_CAMPAIGNS", campaigns.len().to_string())
        .env("PAGE_LIMIT", "5")
        // The simulator is local: no proxy may intercept, and nothing may reach Meta.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1");
    // Blocking, on its own thread: the in-process server keeps serving on the runtime.
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("the Python SDK check did not finish within 120 s")
    .unwrap()
    .unwrap();
    let report = show(&output);
    assert!(
        output.status.success(),
        "the facebook-business SDK check failed\n{report}"
    );
    eprintln!("{report}");

    // What the simulator saw.
    let calls = sim.calls();
    let graph_calls: Vec<_> = calls
        .iter()
        .filter(|c| !c.path.starts_with("/__sim"))
        .collect();
    assert!(!graph_calls.is_empty(), "the SDK made no Graph calls");
    for call in &graph_calls {
        assert!(
            call.params.iter().any(|p| p == "appsecret_proof"),
            "the SDK sends appsecret_proof on every call (§13.1), this one lacks it: {call:?}"
        );
        assert!(
            call.params.iter().any(|p| p == "access_token"),
            "no access_token: {call:?}"
        );
        assert_eq!(call.version.as_deref(), Some("v26.0"), "{call:?}");
    }
    let pages: Vec<_> = graph_calls
        .iter()
        .filter(|c| c.method == "GET" && c.path == format!("/act_{AD_ACCOUNT}/campaigns"))
        .collect();
    assert_eq!(pages.len(), 3, "12 campaigns at limit 5: {pages:#?}");
    assert!(
        pages[1..]
            .iter()
            .all(|c| c.params.iter().any(|p| p == "after")),
        "later pages follow cursors.after (§10): {pages:#?}"
    );
    assert!(
        graph_calls.iter().any(|c| c.method == "POST"
            && c.path.trim_end_matches('/') == format!("/{first_campaign}")
            && c.status == 200
            && !c.in_batch),
        "the campaign update: {graph_calls:#?}"
    );
    let batched: Vec<_> = graph_calls.iter().filter(|c| c.in_batch).collect();
    assert_eq!(
        batched.len(),
        5,
        "three campaigns, the account, a missing object: {batched:#?}"
    );
    assert_eq!(
        batched.iter().filter(|c| c.status == 200).count(),
        4,
        "{batched:#?}"
    );
    assert!(
        batched
            .iter()
            .any(|c| c.status == 400 && c.error_code == Some(100) && c.error_subcode == Some(33)),
        "{batched:#?}"
    );
    assert!(
        graph_calls
            .iter()
            .any(|c| c.status == 400 && c.error_code == Some(190) && c.error_subcode == Some(460)),
        "the dead-token call: {graph_calls:#?}"
    );
    let proofless = graph_calls
        .iter()
        .filter(|c| c.error_code == Some(100) && c.error_subcode.is_none())
        .count();
    assert_eq!(proofless, 0, "no proof errors: {graph_calls:#?}");

    let after = sim.world();
    let campaign = after
        .campaigns
        .iter()
        .find(|c| c.id == first_campaign)
        .unwrap();
    assert_eq!(campaign.status, "PAUSED");
    assert_eq!(campaign.daily_budget, "5000");

    handle.stop().await;
}
