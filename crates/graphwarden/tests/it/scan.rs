//! `graphwarden scan`: planted tokens and app secrets found in files and git history, matched
//! against the inventory, checked with Meta (the simulator); never printed whole; and nothing
//! found in ordinary source files.

use graphwarden_sim::world::ids;
use serde_json::Value;

use crate::check::Setup;

fn scan_json(s: &Setup, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["scan", "--json"];
    all.extend_from_slice(args);
    let out = s.gw.run(&all);
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.transcript()));
    (out.code, report, out.stdout.clone() + &out.stderr)
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_are_found_matched_and_checked_and_never_printed_whole() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &["--user-id", ids::USER_ANA])
        .ok();
    let ana = s.token("ana-long-lived");
    let app_secret = s.sim.simulator().app_secret(ids::APP).unwrap();
    let stranger = format!("EAA{}", "Zq8".repeat(30));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("config")).unwrap();
    std::fs::write(
        p.join("config/prod.env"),
        format!("FB_TOKEN={ana}\nDEBUG=0\n"),
    )
    .unwrap();
    std::fs::write(
        p.join("notes.txt"),
        format!("old token, do not use: {stranger}\n"),
    )
    .unwrap();
    std::fs::write(
        p.join("settings.py"),
        format!(
            "APP_ID = \"{}\"\n# the dashboard's key\nAPP_SECRET = \"{app_secret}\"\n",
            ids::APP
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("client.js"),
        format!("const appToken = '{}|{app_secret}';\n", ids::APP),
    )
    .unwrap();
    std::fs::write(p.join("main.rs"), "fn main() { println!(\"hello\"); }\n").unwrap();
    std::fs::write(p.join("blob.bin"), [0u8, 1, 2, 0, b'E', b'A', b'A']).unwrap();

    let (code, report, text) = scan_json(&s, &[p.to_str().unwrap()]);
    assert_eq!(code, 1, "something found: {text}");
    assert_eq!(
        report["files_scanned"], 5,
        "the binary file is skipped: {report}"
    );
    let findings = report["findings"].as_array().unwrap();
    let find = |kind: &str, file: &str| {
        findings
            .iter()
            .find(|f| f["kind"] == kind && f["location"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("no {kind} in {file}: {report}"))
    };
    let known = find("token", "config/prod.env");
    assert_eq!(known["alias"], "ana");
    assert_eq!(known["known"], true);
    assert_eq!(known["live"], true, "{known}");
    assert_eq!(known["line"], 1);
    let unknown = find("token", "notes.txt");
    assert_eq!(unknown["known"], false);
    assert_eq!(unknown["alias"], Value::Null);
    assert_ne!(unknown["live"], true, "{unknown}");
    let pair = find("app_secret", "settings.py");
    assert_eq!(pair["app_id"], ids::APP);
    assert_eq!(pair["known"], true);
    assert_eq!(pair["line"], 3);
    let app_token = find("app_token", "client.js");
    assert_eq!(app_token["known"], true);
    assert_eq!(findings.len(), 4, "{report}");
    for secret in [&ana, &stranger, &app_secret] {
        assert!(
            !text.contains(secret.as_str()),
            "a whole secret was printed"
        );
    }
    assert!(known["masked"].as_str().unwrap().starts_with(&ana[..4]));

    // The table says the same, and never the whole token either.
    let out = s.gw.run(&["scan", "--no-check", p.to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("config/prod.env:1"),
        "{}",
        out.transcript()
    );
    assert!(out.stdout.contains("ana"));
    assert!(!out.transcript().contains(&ana));

    // A token Meta has since invalidated: found, known, and no longer live.
    s.event(
        "password_change",
        serde_json::json!({"user_id": ids::USER_ANA}),
    )
    .await;
    let (_, report, _) = scan_json(&s, &[p.join("config").to_str().unwrap()]);
    let f = &report["findings"][0];
    assert_eq!(f["alias"], "ana");
    assert_eq!(f["live"], false, "{f}");
    assert_eq!(f["status"], "password_changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_removed_from_the_tree_is_still_found_in_history() {
    let s = Setup::new().await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q"]);
    std::fs::write(p.join("README"), "a project\n").unwrap();
    let token = s.token("ana-long-lived");
    std::fs::write(
        p.join("deploy.sh"),
        format!("#!/bin/sh\n\ncurl -d access_token={token} x\n"),
    )
    .unwrap();
    git(p, &["add", "."]);
    git(p, &["commit", "-q", "-m", "deploy"]);
    std::fs::remove_file(p.join("deploy.sh")).unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "oops"]);

    let (code, report, _) = scan_json(&s, &["--no-check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "nothing in the tree: {report}");
    let (code, report, text) = scan_json(&s, &["--no-check", "--git", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["commits_scanned"], 2);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    let loc = findings[0]["location"].as_str().unwrap();
    assert!(loc.ends_with(":deploy.sh"), "COMMIT:PATH, {loc}");
    assert_eq!(findings[0]["line"], 3);
    assert!(!text.contains(&token));

    // Not a repository: a clear error.
    let plain = tempfile::tempdir().unwrap();
    let out = s.gw.run(&["scan", "--git", plain.path().to_str().unwrap()]);
    assert_eq!(out.code, 66, "{}", out.transcript());
    assert!(out.stderr.contains("not in a git repository"));
    let out = s.gw.run(&["scan", "/no/such/path"]);
    assert_eq!(out.code, 66, "{}", out.transcript());
}

#[test]
fn ordinary_source_files_give_no_false_positives() {
    let gw = crate::support::Gw::new();
    gw.run(&["init"]).ok();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs: Vec<String> = [
        "graphwarden-server/src",
        "graphwarden-store/src",
        "graphwarden-meta/src",
        "graphwarden-lifecycle/src",
        "graphwarden-notify/src",
        "graphwarden-sim/src",
    ]
    .iter()
    .map(|d| root.join(d).to_string_lossy().into_owned())
    .collect();
    let mut args = vec!["scan", "--no-check", "--json"];
    args.extend(dirs.iter().map(String::as_str));
    let out = gw.run(&args);
    let report: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{}", out.transcript()));
    assert_eq!(out.code, 0, "{report}");
    assert!(report["files_scanned"].as_u64().unwrap() > 50);
    // And Python's standard library, where the machine has one.
    for lib in ["/usr/lib/python3.11", "/usr/lib/python3"] {
        if std::path::Path::new(lib).is_dir() {
            let out = gw.run(&["scan", "--no-check", lib]);
            assert_eq!(out.code, 0, "{}", out.transcript());
        }
    }
}
