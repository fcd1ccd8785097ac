//! `graphwarden audit` against the simulator: a world built so that each finding has a token or
//! app that earns it, the report stored and compared with the next one (new and resolved), the
//! four formats, and the weekly job's kind.

use std::time::Duration;

use graphwarden_sim::world::ids;
use serde_json::{Value, json};

use crate::check::Setup;

async fn control(s: &Setup, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/__sim/{path}", s.sim.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn mint(s: &Setup, body: Value) -> String {
    let mut body = body;
    body["app_id"] = json!(ids::APP);
    control(s, "tokens", body).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn add(s: &Setup, alias: &str, token: &str, extra: &[&str]) {
    let mut args = vec!["token", "add", alias, "--app", ids::APP];
    args.extend_from_slice(extra);
    s.gw.run_with_stdin(&args, token).ok();
}

const OWNED: [&str; 4] = ["--owner", "ops@example.com", "--purpose", "reporting"];

fn audit(s: &Setup, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["audit", "--format", "json"];
    args.extend_from_slice(extra);
    let out = s.gw.run(&args);
    let report =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.transcript()));
    (out.code, report)
}

/// The finding of `rule` about `who` (a token alias, or an app id).
fn finding<'a>(report: &'a Value, rule: &str, who: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["rule"] == rule && (f["alias"] == who || (f["alias"].is_null() && f["app_id"] == who))
        })
        .unwrap_or_else(|| panic!("no {rule} finding for {who} in {:#}", report["findings"]))
}

fn has(report: &Value, key: &str, rule: &str, who: &str) -> bool {
    report[key]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == rule && f["alias"] == who)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_finding_comes_from_a_token_built_for_it_and_the_next_audit_says_what_changed() {
    let mut s = Setup::new().await;
    std::fs::write(
        s.gw.data_dir.join("graphwarden.toml"),
        format!(
            "[audit]\nexpected_user_ids = [\"{}\", \"{}\"]\nexpected_targets = [\"{}\"]\n\
             automation_calls = 3\nunused_after = \"3s\"\n",
            ids::USER_ANA,
            ids::SYSTEM_USER,
            ids::AD_ACCOUNT
        ),
    )
    .unwrap();

    // Ana's long-lived token, declared a reporting token: ads_read is all it needs.
    let ana = s.token("ana-long-lived");
    add(
        &s,
        "ana",
        &ana,
        &[
            &OWNED[..],
            &["--user-id", ids::USER_ANA, "--scopes-needed", "ads_read"],
        ]
        .concat(),
    );
    // Declared to need ads_management, granted only ads_read.
    let needy = mint(&s, json!({"user_id": ids::USER_ANA, "scopes": ["ads_read"], "expires_in": 5_000_000, "long_lived": true})).await;
    add(
        &s,
        "needy",
        &needy,
        &[&OWNED[..], &["--scopes-needed", "ads_read,ads_management"]].concat(),
    );
    // Ben is nobody the agency expects.
    let ben = mint(&s, json!({"user_id": ids::USER_BEN, "scopes": ["ads_read"], "expires_in": 5_000_000, "long_lived": true})).await;
    add(
        &s,
        "ben",
        &ben,
        &[&OWNED[..], &["--scopes-needed", "ads_read"]].concat(),
    );
    // Recorded as Ben's, but Meta says it acts as Ana.
    let imposter = mint(&s, json!({"user_id": ids::USER_ANA, "scopes": ["ads_read"], "expires_in": 5_000_000, "long_lived": true})).await;
    add(
        &s,
        "imposter",
        &imposter,
        &[
            &OWNED[..],
            &["--user-id", ids::USER_BEN, "--scopes-needed", "ads_read"],
        ]
        .concat(),
    );
    // No owner, no purpose, no declared needs.
    add(&s, "nobody", &s.token("bot-never-expires"), &[]);
    // A system-user token issued 80 days ago: rotation due, data access lapsing in 10 days.
    control(&s, "clock", json!({"advance": -80 * 86_400})).await;
    let old = mint(
        &s,
        json!({"kind": "system_user", "system_user_id": ids::SYSTEM_USER, "scopes": ["ads_read"]}),
    )
    .await;
    control(&s, "clock", json!({"advance": 80 * 86_400})).await;
    add(
        &s,
        "old-bot",
        &old,
        &[&OWNED[..], &["--scopes-needed", "ads_read"]].concat(),
    );
    // A Page token whose parent (a short-lived user token) dies.
    add(&s, "short", &s.token("ana-short-lived"), &OWNED);
    add(
        &s,
        "kid",
        &s.token("acme-page"),
        &[&OWNED[..], &["--parent", "short"]].concat(),
    );
    control(&s, "clock", json!({"advance": 3 * 3600})).await;
    s.gw.run(&["check", "short", "kid"]);

    // Let the unused window pass, then use Ana's token (and only hers) through the proxy.
    std::thread::sleep(Duration::from_millis(3_500));
    let serving = crate::proxy::serve(&s);
    let http = reqwest::Client::new();
    for path in ["me", "me", &format!("act_{}/campaigns", ids::AD_ACCOUNT)] {
        let r = http
            .get(format!("{}/v26.0/{path}?access_token={ana}", serving.proxy))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    crate::proxy::stop(serving);

    // The app was stored seconds ago: a one-second secret policy makes its secret old.
    s.gw.env
        .push(("GRAPHWARDEN_AUDIT__APP_SECRET_AGE".into(), "1s".into()));
    let (code, first) = audit(&s, &[]);
    s.gw.env.pop();
    assert_eq!(code, 2, "critical and high findings: {first:#}");
    let f = finding(&first, "excess_scope", "ana");
    assert_eq!(f["severity"], "high");
    assert!(
        first["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "excess_scope"
                && f["alias"] == "ana"
                && f["subject"] == "ads_management"),
        "the scope at fault is named"
    );
    assert_eq!(
        finding(&first, "missing_scope", "needy")["subject"],
        "ads_management"
    );
    assert_eq!(
        finding(&first, "unexpected_target", "ana")["subject"],
        format!("pages_show_list:{}", ids::PAGE)
    );
    assert_eq!(
        finding(&first, "unexpected_user", "ben")["subject"],
        ids::USER_BEN
    );
    assert_eq!(
        finding(&first, "user_changed", "imposter")["severity"],
        "critical"
    );
    finding(&first, "no_owner", "nobody");
    finding(&first, "no_purpose", "nobody");
    finding(&first, "needs_undeclared", "nobody");
    finding(&first, "unused", "nobody");
    assert!(!has(&first, "findings", "unused", "ana"), "ana was used");
    finding(&first, "personal_token_automation", "ana");
    finding(&first, "rotation_due", "old-bot");
    finding(&first, "data_access_lapsing", "old-bot");
    assert_eq!(finding(&first, "parent_dead", "kid")["subject"], "short");
    finding(&first, "dead_token", "short");
    finding(&first, "app_not_approved", ids::APP);
    finding(&first, "app_secret_old", ids::APP);
    assert_eq!(
        finding(&first, "access_tier", ids::APP)["subject"],
        "development_access"
    );
    for f in first["findings"].as_array().unwrap() {
        assert_eq!(f["new"], true, "the first audit: all new");
        for field in ["title", "evidence", "action"] {
            assert!(!f[field].as_str().unwrap().is_empty(), "{field} of {f}");
        }
    }
    assert_eq!(first["previous_id"], Value::Null);

    // Fix some: remove the ownerless token.
    s.gw.run(&["token", "remove", "nobody", "--yes"]).ok();
    let (_, second) = audit(&s, &[]);
    assert_eq!(second["previous_id"], first["id"]);
    assert!(
        has(&second, "resolved", "no_owner", "nobody"),
        "{:#}",
        second["resolved"]
    );
    assert!(has(&second, "resolved", "unused", "nobody"));
    assert!(!has(&second, "findings", "no_owner", "nobody"));
    assert_eq!(finding(&second, "excess_scope", "ana")["new"], false);
    assert!(second["summary"]["resolved"].as_u64().unwrap() >= 4);
    assert!(
        !second["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "app_secret_old"),
        "back to the default policy"
    );

    // The other formats, of the same stored audit.
    let html_path = s.gw.data_dir.join("audit.html");
    let out = s.gw.run(&[
        "audit",
        "--last",
        "--format",
        "html",
        "--output",
        html_path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 2, "{}", out.transcript());
    assert!(
        out.stdout
            .contains(&format!("Audit #{} written to", second["id"])),
        "{}",
        out.stdout
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Resolved since the previous audit"));
    assert!(html.contains("<span class=\"sev high\">high</span>"));
    assert!(
        !html.contains("<script") && !html.contains("src=") && !html.contains("href="),
        "self-contained"
    );
    let md =
        s.gw.run(&["audit", "--last", "--format", "markdown"])
            .stdout;
    assert!(
        md.contains("| high | ana | `excess_scope` | ads_management |"),
        "{md}"
    );
    let table = s.gw.run(&["audit", "--last"]).stdout;
    assert!(
        table.contains(&format!("Since audit #{}", first["id"])),
        "{table}"
    );
    let (_, last) = audit(&s, &["--last"]);
    assert_eq!(last["id"], second["id"], "--last runs nothing new");

    // Secrets appear nowhere.
    for text in [html, md, table, serde_json::to_string(&second).unwrap()] {
        for secret in [&ana, &needy, &ben, &imposter, &old] {
            assert!(!text.contains(secret.as_str()));
        }
    }

    // A tampered event log is the first finding.
    // (on a thread of its own: the helper runs its own runtime)
    std::thread::scope(|scope| {
        scope.spawn(|| {
            crate::events::tamper(
                &s.gw,
                &["UPDATE events SET actor = 'nobody-at-all' WHERE id = 1"],
            );
        });
    });
    let (_, third) = audit(&s, &[]);
    assert_eq!(third["findings"][0]["rule"], "event_log_tampered");
    assert_eq!(third["findings"][0]["severity"], "critical");
}
