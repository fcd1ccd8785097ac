//! The plaintext token appears nowhere but in `token reveal`: not in the database file, not in
//! trace-level logs (text or JSON), not in any other command's output or error.

use crate::support::{APP_ID, APP_SECRET, Gw, fake_token};

#[test]
fn plaintext_appears_only_in_reveal() {
    let mut gw = Gw::new();
    gw.env
        .push(("GRAPHWARDEN_LOG__LEVEL".into(), "trace".into()));
    let token = fake_token();
    let child = fake_token();
    let mut transcripts = Vec::new();
    let mut run = |gw: &Gw, args: &[&str], stdin: &str| {
        let out = gw.run_with_stdin(args, stdin);
        transcripts.push(format!("$ {}\n{}", args.join(" "), out.transcript()));
        out
    };
    run(&gw, &["init"], "").ok();
    run(&gw, &["app", "add", APP_ID, "--name", "Acme"], APP_SECRET).ok();
    run(&gw, &["token", "add", "main", "--app", APP_ID], &token).ok();
    run(
        &gw,
        &["token", "add", "child", "--app", APP_ID, "--parent", "main"],
        &child,
    )
    .ok();
    // Failures that involve the secret must not echo it either.
    assert_ne!(
        run(&gw, &["token", "add", "dup", "--app", APP_ID], &token).code,
        0
    );
    assert_ne!(
        run(
            &gw,
            &["token", "add", "bad", "--app", APP_ID],
            &format!("{token} {token}")
        )
        .code,
        0
    );
    assert_ne!(
        run(&gw, &["token", "add", "bad", "--app", "999"], &token).code,
        0
    );
    for args in [
        vec!["token", "list"],
        vec!["token", "list", "--json"],
        vec!["token", "show", "main"],
        vec!["token", "show", "main", "--json"],
        vec!["token", "events", "main", "--json"],
        vec!["app", "list", "--json"],
        vec!["app", "show", APP_ID],
        vec!["config", "show"],
        vec!["key", "rotate"],
        vec!["key", "status"],
    ] {
        run(&gw, &args, "").ok();
    }
    gw.env
        .push(("GRAPHWARDEN_LOG__FORMAT".into(), "json".into()));
    run(&gw, &["token", "list", "--json"], "").ok();
    let revealed = gw
        .run(&["token", "reveal", "main", "--yes", "--log-level", "trace"])
        .ok();
    assert_eq!(revealed.stdout.trim(), token);
    assert!(!revealed.stderr.contains(&token), "reveal logs the token");
    run(&gw, &["token", "remove", "child", "--yes"], "").ok();

    let all = transcripts.join("\n");
    assert!(
        all.contains("sqlx::query"),
        "trace logging was on and logged every statement"
    );
    for secret in [&token, &child, &APP_SECRET.to_owned()] {
        assert!(
            !all.contains(secret.as_str()),
            "a secret reached the output:\n{all}"
        );
    }
    let db = gw.database_bytes();
    for secret in [&token, &child, &APP_SECRET.to_owned()] {
        assert!(
            !graphwarden_testkit::contains_secret(&db, secret),
            "a secret is in the database file"
        );
    }
}
