//! The dashboard in a real browser: Debian's Chromium, driven by `playwright-core`
//! (`tests/browser/dashboard.mjs`), against `graphwarden serve` in front of the simulator.
//! Screenshots are kept in `target/browser-screenshots/`. `scripts/setup.sh` installs Chromium
//! and the script's one npm package; without them this test fails and says so.

use std::path::PathBuf;
use std::process::Command;

use crate::check::Setup;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_see_tokens_renew_silence_and_read_the_audit_in_chromium() {
    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in tests/browser: run scripts/setup.sh"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run scripts/setup.sh (Debian's `chromium`)"
    );

    let mut s = Setup::new().await;
    // A reporting token that holds more than it needs, a token expiring within the hour's
    // warnings, and a system-user token.
    s.add(
        "ana",
        "ana-long-lived",
        &[
            "--owner",
            "ana@example.com",
            "--purpose",
            "insights export",
            "--scopes-needed",
            "ads_read",
        ],
    )
    .ok();
    s.add("short", "ana-short-lived", &["--owner", "ana@example.com"])
        .ok();
    s.add("bot", "bot-never-expires", &["--owner", "data-team"])
        .ok();
    let out =
        s.gw.run(&["apikey", "create", "--name", "ops", "--role", "admin"])
            .ok();
    let key = out.stdout.lines().last().unwrap().to_owned();
    s.gw.env
        .push(("GRAPHWARDEN_ALERTS__EVALUATE_EVERY".into(), "1s".into()));
    let serving = crate::proxy::serve(&s);

    let shots = repo().join("target/browser-screenshots");
    let out = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .env("DASHBOARD_URL", &serving.api)
        .env("KEY", &key)
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .current_dir(&browser_dir)
        .output()
        .expect("node runs");
    let log = crate::proxy::stop(serving);
    assert!(
        out.status.success(),
        "the browser run failed (screenshots in {}):\n{}\n{}\n--- daemon log ---\n{log}",
        shots.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!log.contains(&key), "the sign-in key is not logged");
    for name in [
        "01-login",
        "02-tokens",
        "04-token",
        "05-renew-preview",
        "06-alerts",
        "07-audit",
    ] {
        assert!(
            shots.join(format!("{name}.png")).exists(),
            "no screenshot {name}"
        );
    }
}
