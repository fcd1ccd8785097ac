//! `graphwarden check` and inspecting on `token add`, against the simulator.

use std::sync::Arc;

use graphwarden_sim::world::ids;
use graphwarden_sim::{SimConfig, SimHandle};
use serde_json::{Value, json};

use crate::support::Gw;

pub struct Setup {
    pub sim: SimHandle,
    pub gw: Gw,
}

impl Setup {
    pub async fn new() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = graphwarden_sim::start(
            SimConfig {
                world: None,
                control: true,
                clock: Arc::new(graphwarden_core::SystemClock),
            },
            listener,
        )
        .unwrap();
        let mut gw = Gw::new();
        gw.env
            .push(("GRAPHWARDEN_GRAPH_URL".into(), sim.url().to_owned()));
        gw.run(&["init"]).ok();
        let secret = sim.simulator().app_secret(ids::APP).unwrap();
        gw.run_with_stdin(&["app", "add", ids::APP, "--name", "Sim app"], &secret)
            .ok();
        Self { sim, gw }
    }

    pub fn token(&self, label: &str) -> String {
        self.sim.simulator().token(label).unwrap()
    }

    pub fn add(&self, alias: &str, label: &str, extra: &[&str]) -> crate::support::Output {
        let mut args = vec!["token", "add", alias, "--app", ids::APP];
        args.extend_from_slice(extra);
        self.gw.run_with_stdin(&args, &self.token(label))
    }

    pub async fn event(&self, kind: &str, body: Value) {
        reqwest::Client::new()
            .post(format!("{}/__sim/events/{kind}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
    }

    pub fn check_json(&self, args: &[&str]) -> (i32, Vec<Value>) {
        let mut all = vec!["check", "--json"];
        all.extend_from_slice(args);
        let out = self.gw.run(&all);
        let rows: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.transcript()));
        (out.code, rows.as_array().unwrap().clone())
    }
}

fn row<'a>(rows: &'a [Value], alias: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["alias"] == alias)
        .unwrap_or_else(|| panic!("no {alias} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_add_inspects_at_once_and_infers_the_kind() {
    let s = Setup::new().await;
    let out = s
        .add("ana", "ana-long-lived", &["--user-id", ids::USER_ANA])
        .ok();
    assert!(
        out.stdout.contains("Stored user token `ana`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with(": valid.\n"), "{}", out.stdout);
    let page = s.add("page", "acme-page", &["--parent", "ana"]).ok();
    assert!(
        page.stdout.contains("Stored page token"),
        "the kind comes from Meta: {}",
        page.stdout
    );
    let shown: Value =
        serde_json::from_str(&s.gw.run(&["token", "show", "page", "--json"]).ok().stdout).unwrap();
    assert_eq!(shown["status"], "valid");
    assert_eq!(shown["never_expires"], true);
    assert_eq!(
        shown["page_id"],
        ids::PAGE,
        "filled in from debug_token's profile_id"
    );
    assert!(
        shown["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "pages_show_list")
    );

    // An invalid token is stored anyway, with its status and a warning.
    let garbage = s.gw.run_with_stdin(
        &["token", "add", "junk", "--app", ids::APP],
        "EAAthisisnotatoken",
    );
    assert_eq!(garbage.code, 0);
    assert!(garbage.stdout.contains(": invalid."), "{}", garbage.stdout);
    assert!(
        garbage
            .stderr
            .contains("warning: Meta reports this token as invalid"),
        "{}",
        garbage.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_by_urgency_with_exit_codes() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &[]).ok();
    s.add("page", "acme-page", &["--parent", "ana"]).ok();
    s.add("bot", "bot-60-days", &["--kind", "system_user"]).ok();
    let (code, rows) = s.check_json(&[]);
    assert_eq!(code, 0, "{rows:?}");
    for r in &rows {
        for field in [
            "alias",
            "kind",
            "status",
            "cause",
            "expires_at",
            "data_access_expires_at",
            "action",
        ] {
            assert!(r.get(field).is_some(), "{field} missing from {r}");
        }
    }

    // A 60-day token inside a 70-day warning window is a warning: exit 1.
    let mut s = s;
    s.gw.env.push((
        "GRAPHWARDEN_INSPECTION__WARNING_WINDOW".to_owned(),
        "70d".to_owned(),
    ));
    let (code, rows) = s.check_json(&[]);
    assert_eq!(code, 1);
    assert_eq!(row(&rows, "bot")["status"], "expiring");
    assert_eq!(
        row(&rows, "ana")["status"],
        "expiring",
        "59.99 days left is inside 70"
    );
    assert_eq!(
        rows.last().unwrap()["alias"],
        "page",
        "most urgent first; the never-expiring page last"
    );
    assert_eq!(rows[0]["alias"], "ana", "the earliest expiry first");
    s.gw.env
        .retain(|(k, _)| k != "GRAPHWARDEN_INSPECTION__WARNING_WINDOW");

    // A password change: both of Ana's tokens are dead, exit 2, and the action says what to do.
    s.event("password_change", json!({ "user_id": ids::USER_ANA }))
        .await;
    let out = s.gw.run(&["check"]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(out.stdout.contains("password_changed"), "{}", out.stdout);
    assert!(out.stdout.contains("log in again"), "{}", out.stdout);
    let (_, rows) = s.check_json(&[]);
    assert_eq!(rows[0]["severity"], "critical");
    assert_eq!(row(&rows, "page")["status"], "password_changed");
    let events = s.gw.run(&["token", "events", "ana", "--json"]).ok().stdout;
    assert!(events.contains("token.status_changed"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_parent_marks_its_children() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &[]).ok();
    s.add("page", "acme-page", &["--parent", "ana"]).ok();
    let secret = s.sim.simulator().app_secret(ids::APP).unwrap();
    let revoked = reqwest::get(format!(
        "{}/oauth/revoke?client_id={}&client_secret={secret}&revoke_token={}&access_token={}",
        s.sim.url(),
        ids::APP,
        s.token("ana-long-lived"),
        s.token("bot-never-expires")
    ))
    .await
    .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    // Only the parent is checked: the child is marked through it.
    let (code, rows) = s.check_json(&["ana"]);
    assert_eq!(
        (code, row(&rows, "ana")["status"].as_str()),
        (2, Some("revoked"))
    );
    let page: Value =
        serde_json::from_str(&s.gw.run(&["token", "show", "page", "--json"]).ok().stdout).unwrap();
    assert_eq!(page["status"], "revoked");
    assert!(
        page["status_cause"]
            .as_str()
            .unwrap()
            .contains("derived from `ana`"),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_graph_gives_unknown_never_a_false_death() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &[]).ok();
    s.gw.run_with_stdin(
        &["token", "add", "junk", "--app", ids::APP],
        "EAAthisisnotatoken",
    )
    .ok();
    let mut s = s;
    s.gw.env
        .push(("GRAPHWARDEN_GRAPH_URL".into(), "http://127.0.0.1:1".into()));
    let (code, rows) = s.check_json(&[]);
    assert_eq!(code, 2, "junk is still known to be dead: {rows:?}");
    assert_eq!(row(&rows, "ana")["status"], "unknown");
    assert!(
        row(&rows, "ana")["cause"]
            .as_str()
            .unwrap()
            .contains("could not check")
    );
    assert_eq!(
        row(&rows, "junk")["status"],
        "invalid",
        "a failed round does not bury a known death"
    );
    let out = s.gw.run(&["check", "ana"]);
    assert_eq!(out.code, 1, "unknown is a warning: {}", out.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discrepancies_are_flagged() {
    let s = Setup::new().await;
    let out = s
        .add(
            "ana",
            "ana-long-lived",
            &["--user-id", "999", "--kind", "page"],
        )
        .ok();
    assert!(out.stderr.contains("acts as user"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("Meta reports a USER token, recorded as page"),
        "{}",
        out.stderr
    );
    let (code, rows) = s.check_json(&[]);
    assert_eq!(code, 1, "a flagged token is a warning");
    assert_eq!(row(&rows, "ana")["flags"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_check() {
    let s = Setup::new().await;
    let out = s.gw.run(&["check"]).ok();
    assert!(out.stdout.contains("No tokens to check"));
    assert_eq!(s.gw.run(&["check", "nope"]).code, 66);
}
