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
    // The hot account was paced: some calls were held back.
    let held: u64 = stdout
        .lines()
        .find(|l| l.contains("held back by graphwarden"))
        .and_then(|l| l.split("; ").find(|p| p.contains("held back")))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(held > 0, "nothing was paced:\n{stdout}");
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

#[test]
fn ctrl_c_stops_the_demo_cleanly_and_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphwarden"))
        .args(["demo", "--seconds-per-day", "30"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut dir = String::new();
    let mut seen = String::new();
    for _ in 0..200 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if let Some(d) =
            line.strip_prefix("graphwarden demo: a simulated agency, the daemon on SQLite in ")
        {
            dir = d.trim().to_owned();
        }
        if line.contains("[day  0] renew job") {
            break;
        }
    }
    assert!(
        std::path::Path::new(&dir).is_dir(),
        "the demo runs in {dir}: {seen}"
    );
    // Ctrl-C, as a terminal sends it.
    send_sigint(child.id());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(
        rest.contains("Stopping: the daemon writes its last call records"),
        "{rest}"
    );
    assert!(
        !std::path::Path::new(&dir).exists(),
        "{dir} was left behind"
    );
}

/// SIGINT to `pid` through the `kill` command (the test suite has no libc binding).
fn send_sigint(pid: u32) {
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
