//! `graphwarden demo`, the README's first command: with nothing configured it runs the whole
//! scenario, says what happened, and leaves nothing behind.

use std::process::Command;

#[test]
fn the_demo_shows_renewal_a_password_change_pacing_alerts_and_an_audit_then_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_graphwarden"))
        .args(["demo", "--once", "--seconds-per-day", "0.3"])
        .env_remove("GRAPHWARDEN_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for expected in [
        "Dashboard:  http://127.0.0.1:",
        "Sign in with this key",
        "27 tokens stored and inspected with debug_token",
        "renewed",
        "Ben changes his Facebook password",
        "ben-northwind-page is now password_changed",
        "alerts fired: ",
        "alerts resolved: ",
        "the weekly audit: audit #",
        "held back by graphwarden",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from:\n{stdout}\n{stderr}"
        );
    }
    let dir = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("graphwarden demo: a simulated agency, the daemon on SQLite in ")
        })
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was left behind"
    );
    assert!(stdout.contains(&format!("Stopped; {dir} is gone.")));
    // The sign-in key appears once, where it is handed out, and never in the log.
    let key = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("gwk_"))
        .unwrap();
    assert_eq!(stdout.matches(key).count(), 1);
    assert!(!stderr.contains(key));
}
