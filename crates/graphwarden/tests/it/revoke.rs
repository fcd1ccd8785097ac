//! `graphwarden revoke`: the preview of what would break, then revocation through Meta (the
//! simulator), with the token and the tokens derived from it marked from Meta's answer.

use graphwarden_sim::world::ids;
use serde_json::Value;

use crate::check::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_previews_then_revokes_and_marks_the_derived_tokens() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &["--user-id", ids::USER_ANA])
        .ok();
    s.add("page", "acme-page", &["--parent", "ana"]).ok();
    s.gw.run(&[
        "apikey",
        "create",
        "--name",
        "etl",
        "--role",
        "consumer",
        "--aliases",
        "page",
    ])
    .ok();

    // The preview changes nothing.
    let out = s.gw.run(&["revoke", "ana", "--dry-run", "--json"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    let preview: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(preview["revoked"], false);
    assert_eq!(preview["derived"][0]["alias"], "page");
    assert_eq!(preview["consumers"], serde_json::json!(["etl"]));
    let out = s.gw.run(&["revoke", "ana", "--dry-run"]).ok();
    assert!(
        out.stdout.contains("Revoking would break"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("page (page, valid)"), "{}", out.stdout);
    assert!(out.stdout.contains("Nothing was changed"));
    let (_, rows) = s.check_json(&["ana"]);
    assert_eq!(rows[0]["status"], "valid", "the dry run revoked nothing");

    // A Page token cannot be revoked on its own: a clear refusal naming the way.
    let out = s.gw.run(&["revoke", "page"]);
    assert_eq!(out.code, 65, "{}", out.transcript());
    assert!(
        out.stderr
            .contains("revoke the user token it was derived from (`ana`)"),
        "{}",
        out.stderr
    );

    // Revoked through Meta; the status comes from Meta's answer, the child follows.
    let out = s.gw.run(&["revoke", "ana", "--json"]);
    assert_eq!(out.code, 0, "{}", out.transcript());
    let done: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(done["revoked"], true);
    assert_eq!(done["status_after"], "revoked", "{done}");
    assert_ne!(done["derived_after"][0]["status"], "valid", "{done}");
    let token = s.token("ana-long-lived");
    assert!(!out.transcript().contains(&token));
    // Meta itself says so.
    let calls = s.sim.simulator().calls();
    assert!(
        calls.iter().any(|c| c.path.ends_with("oauth/revoke")),
        "{calls:?}"
    );

    // An unknown alias: the usual not-found exit.
    let out = s.gw.run(&["revoke", "nobody"]);
    assert_eq!(out.code, 66, "{}", out.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_revoke_revokes_the_live_stored_tokens_it_finds() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &["--user-id", ids::USER_ANA])
        .ok();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leak.env"),
        format!("TOKEN={}\n", s.token("ana-long-lived")),
    )
    .unwrap();
    let out =
        s.gw.run(&["scan", "--revoke", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.transcript());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["revoked"], serde_json::json!(["ana"]), "{report}");
    assert_eq!(report["findings"][0]["live"], false);
    assert_eq!(report["findings"][0]["status"], "revoked");
    let (_, rows) = s.check_json(&["ana"]);
    assert_eq!(rows[0]["status"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_renew_gives_the_live_stored_tokens_it_finds_a_fresh_secret() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &["--user-id", ids::USER_ANA])
        .ok();
    s.add("page", "acme-page", &[]).ok();
    let leaked = s.token("ana-long-lived");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("leak.env"),
        format!("TOKEN={leaked}\nPAGE={}\n", s.token("acme-page")),
    )
    .unwrap();
    let out =
        s.gw.run(&["scan", "--renew", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}", out.transcript());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["renewed"], serde_json::json!(["ana"]), "{report}");
    assert!(
        out.stderr.contains("The leaked one stays valid"),
        "{}",
        out.stderr
    );
    // A Page token without a stored parent cannot be derived again: said so, not hidden.
    assert!(
        out.stderr.contains("Could not renew `page`"),
        "{}",
        out.stderr
    );
    // The inventory holds a new secret; the leaked one is no longer what it hands out.
    let now = s.gw.run(&["token", "reveal", "ana", "--yes"]).ok().stdout;
    assert!(!now.contains(&leaked));
    let out =
        s.gw.run(&["scan", "--renew", "--revoke", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, 64, "either one: {}", out.transcript());
}
