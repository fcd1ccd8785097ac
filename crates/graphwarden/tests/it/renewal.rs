//! `renew`, `token exchange`, `pages derive`, `token mint-system-user` and `login`, end to end
//! against the simulator; the process killed at each renewal step.

use graphwarden_sim::world::ids;
use serde_json::Value;

use crate::check::Setup;

fn show(s: &Setup, alias: &str) -> Value {
    serde_json::from_str(&s.gw.run(&["token", "show", alias, "--json"]).ok().stdout).unwrap()
}

/// Whether the stored secret of `alias` is one Meta accepts (read as `reveal` would).
async fn stored_is_valid(s: &Setup, alias: &str) -> bool {
    let secret =
        s.gw.run(&["token", "reveal", alias, "--yes"])
            .ok()
            .stdout
            .trim()
            .to_owned();
    let app_token = format!(
        "{}|{}",
        ids::APP,
        s.sim.simulator().app_secret(ids::APP).unwrap()
    );
    let url = format!(
        "{}/v26.0/debug_token?input_token={secret}&access_token={app_token}",
        s.sim.url()
    );
    let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    v["data"]["is_valid"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_dry_run_then_for_real() {
    let s = Setup::new().await;
    s.add("short", "ana-short-lived", &[]).ok();
    s.add("long", "ana-long-lived", &[]).ok();
    let dry = s.gw.run(&["renew", "--dry-run"]).ok();
    assert!(
        dry.stdout.contains("would exchange: short-lived"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("Dry run: nothing was changed."));
    assert_eq!(show(&s, "short")["hint"], show(&s, "short")["hint"]);
    let before = show(&s, "short")["hint"].clone();
    let out = s.gw.run(&["renew", "--json"]).ok();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let short = report["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["alias"] == "short")
        .unwrap();
    assert_eq!(short["outcome"], "renewed", "{report}");
    assert_ne!(show(&s, "short")["hint"], before, "a new token is stored");
    assert!(stored_is_valid(&s, "short").await);
    assert!(
        show(&s, "short")["expires_in"]
            .as_str()
            .unwrap()
            .starts_with("59d"),
        "now long-lived"
    );
    let events =
        s.gw.run(&["token", "events", "short", "--json"])
            .ok()
            .stdout;
    assert!(
        events.contains("token.renewal_staged") && events.contains("token.renewed"),
        "{events}"
    );
    // `token exchange` does it on demand.
    let out = s.gw.run(&["token", "exchange", "long"]).ok();
    assert!(out.stdout.contains("renewed"), "{}", out.stdout);
    assert!(stored_is_valid(&s, "long").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_step_then_restarted() {
    for point in [
        "after_exchange",
        "after_stage",
        "after_verify",
        "after_promote",
    ] {
        let s = Setup::new().await;
        s.add("short", "ana-short-lived", &[]).ok();
        let mut killed = s.gw.command(&["renew", "short"]);
        killed
            .env("GRAPHWARDEN_GRAPH_URL", s.sim.url())
            .env("GRAPHWARDEN_FAULT_POINT", point);
        let out = killed.output().unwrap();
        assert_eq!(
            out.status.code(),
            None,
            "{point}: the process was killed by a signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stored_is_valid(&s, "short").await,
            "{point}: a valid secret is stored after the kill"
        );
        // The dead process's lease expires after two minutes; a restart by another process
        // finishes what it can right away and the rest once the lease is free.
        let again = s.gw.run(&["renew", "short"]);
        assert!(
            again.code == 0 || again.code == 1,
            "{point}: {}",
            again.transcript()
        );
        assert!(
            stored_is_valid(&s, "short").await,
            "{point}: still valid after the restart"
        );
        let t = show(&s, "short");
        if point == "after_stage" || point == "after_verify" {
            assert!(
                again.stdout.contains("finished"),
                "{point}: the pending renewal was finished: {}",
                again.stdout
            );
            assert!(
                t["expires_in"].as_str().unwrap().starts_with("59d"),
                "{point}: {t}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_derive_and_mint_system_user() {
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &[]).ok();
    let out = s.gw.run(&["pages", "derive", "ana", "--json"]).ok();
    let derived: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(derived[0]["page_id"], ids::PAGE);
    assert_eq!(derived[0]["outcome"], "added");
    let alias = derived[0]["alias"].as_str().unwrap().to_owned();
    let page = show(&s, &alias);
    assert_eq!(
        (
            page["kind"].as_str(),
            page["parent"].as_str(),
            page["status"].as_str()
        ),
        (Some("page"), Some("ana"), Some("valid"))
    );
    let again =
        s.gw.run(&["pages", "derive", "ana", "--page", ids::PAGE, "--json"])
            .ok();
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again[0]["outcome"], "unchanged");
    assert_eq!(
        s.gw.run(&["pages", "derive", "ana", "--page", "42"]).code,
        65
    );

    s.add("bot", "bot-never-expires", &["--kind", "system_user"])
        .ok();
    let minted =
        s.gw.run(&[
            "token",
            "mint-system-user",
            "fresh-bot",
            "--app",
            ids::APP,
            "--system-user",
            ids::SYSTEM_USER,
            "--scopes",
            "ads_read",
            "--expiring",
            "--caller",
            "bot",
        ])
        .ok();
    assert!(
        minted
            .stdout
            .contains("Minted and stored system-user token `fresh-bot`"),
        "{}",
        minted.stdout
    );
    let t = show(&s, "fresh-bot");
    assert_eq!(
        (t["kind"].as_str(), t["status"].as_str()),
        (Some("system_user"), Some("valid"))
    );
    assert!(
        t["expires_in"].as_str().unwrap().starts_with("59d")
            || t["expires_in"].as_str().unwrap().starts_with("60d")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_replaces_a_dead_token() {
    // The callback address must be registered with the app, so pick the port first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Setup::new().await;
    s.add("ana", "ana-long-lived", &[]).ok();
    s.event(
        "password_change",
        serde_json::json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    s.gw.run(&["check"]);
    assert_eq!(show(&s, "ana")["status"], "password_changed");
    let redirect = format!("http://127.0.0.1:{port}/callback");
    {
        let mut world = s.sim.simulator().world();
        world.apps[0].redirect_uris.push(redirect.clone());
        let body = serde_json::to_string(&world).unwrap();
        let r = reqwest::Client::new()
            .put(format!("{}/__sim/scenario", s.sim.url()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let listen = format!("127.0.0.1:{port}");
    let mut child =
        s.gw.command(&[
            "login",
            ids::APP,
            "--alias",
            "ana",
            "--scopes",
            "ads_read,pages_show_list",
            "--listen",
            &listen,
            "--timeout",
            "30s",
        ])
        .env("GRAPHWARDEN_GRAPH_URL", s.sim.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.starts_with("http") {
                return (line.trim().to_owned(), reader);
            }
        }
    })
    .await
    .unwrap();
    let (dialog_url, mut reader) = url;
    assert!(
        dialog_url.contains("/dialog/oauth?client_id="),
        "{dialog_url}"
    );
    // The person's browser: the dialog approves and redirects to the callback.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let dialog = client.get(&dialog_url).send().await.unwrap();
    assert_eq!(dialog.status().as_u16(), 302);
    let location = dialog.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&redirect), "{location}");
    let page = client
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Logged in"), "{page}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Replaced `ana`"), "{rest}");
    assert_eq!(show(&s, "ana")["status"], "valid");
    assert!(stored_is_valid(&s, "ana").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_a_forged_state() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Setup::new().await;
    let listen = format!("127.0.0.1:{port}");
    let child =
        s.gw.command(&["login", ids::APP, "--listen", &listen, "--timeout", "20s"])
            .env("GRAPHWARDEN_GRAPH_URL", s.sim.url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    // Wait for the listener, then send a callback with someone else's state.
    let mut sent = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://{listen}/callback?code=abc&state=forged")).await
        {
            assert_eq!(r.status().as_u16(), 200);
            sent = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(sent);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_renewal_settings_from_the_cli_and_per_app_config() {
    let s = Setup::new().await;
    s.add("short", "ana-short-lived", &[]).ok();
    s.gw.run(&["token", "renewal", "short", "--off"]).ok();
    let dry = s.gw.run(&["renew", "--dry-run"]).ok();
    assert!(dry.stdout.contains("turned off"), "{}", dry.stdout);
    assert!(show(&s, "short")["renewal_policy"]["enabled"] == false);
    s.gw.run(&["token", "renewal", "short", "--reset"]).ok();
    assert!(
        s.gw.run(&["renew", "--dry-run"])
            .ok()
            .stdout
            .contains("would exchange")
    );
    assert_eq!(
        s.gw.run(&["token", "renewal", "short", "--window", "soon"])
            .code,
        64
    );
    assert_eq!(
        s.gw.run(&["token", "renewal", "short", "--fraction", "3"])
            .code,
        64
    );
    // The app's settings, from the configuration file.
    std::fs::write(
        s.gw.data_dir.join("graphwarden.toml"),
        format!("[renewal.apps.\"{}\"]\nenabled = false\n", ids::APP),
    )
    .unwrap();
    assert!(
        s.gw.run(&["renew", "--dry-run"])
            .ok()
            .stdout
            .contains("turned off")
    );
    std::fs::write(
        s.gw.data_dir.join("graphwarden.toml"),
        "[renewal.apps.\"x\"]\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(s.gw.run(&["renew", "--dry-run"]).code, 78);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_trace_logs_during_graph_work() {
    let mut s = Setup::new().await;
    s.gw.env
        .push(("GRAPHWARDEN_LOG__LEVEL".into(), "trace".into()));
    let mut all = String::new();
    for (alias, label, extra) in [
        ("short", "ana-short-lived", vec![]),
        ("ana", "ana-long-lived", vec![]),
        ("bot", "bot-60-days", vec!["--kind", "system_user"]),
    ] {
        all.push_str(&s.add(alias, label, &extra).ok().transcript());
    }
    for args in [
        vec!["check"],
        vec!["check", "--json"],
        vec!["renew"],
        vec!["pages", "derive", "ana"],
        vec!["token", "exchange", "ana"],
        vec!["renew", "--dry-run"],
    ] {
        all.push_str(&s.gw.run(&args).transcript());
    }
    assert!(
        all.contains("TRACE") || all.contains("DEBUG"),
        "logging was on"
    );
    let world = s.sim.simulator().world();
    assert!(world.tokens.len() > 6, "the run minted tokens");
    for t in &world.tokens {
        assert!(
            !all.contains(&t.token),
            "a token ({}) reached the output or logs",
            t.label
        );
    }
    let secret = s.sim.simulator().app_secret(ids::APP).unwrap();
    assert!(
        !all.contains(&secret),
        "the app secret reached the output or logs"
    );
}
