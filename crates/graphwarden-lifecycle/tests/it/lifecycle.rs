//! Full lifecycles, causes, propagation, renewal failures, crashes and single flight.

use std::sync::Arc;

use graphwarden_core::{TokenKind, TokenStatus};
use graphwarden_lifecycle::{FaultHook, FaultPoint, RenewPolicy, Severity};
use graphwarden_sim::world::ids;
use serde_json::json;

use crate::support::setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_and_twenty_days_of_every_kind_without_a_lapse() {
    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add("short", "ana-short-lived", TokenKind::User, None)
        .await;
    w.add("page", "acme-page", TokenKind::Page, Some("ana"))
        .await;
    w.add("bot60", "bot-60-days", TokenKind::SystemUser, None)
        .await;
    w.add("botnever", "bot-never-expires", TokenKind::SystemUser, None)
        .await;
    w.add_secret(
        "app",
        &format!(
            "{}|{}",
            ids::APP,
            w.sim.simulator().app_secret(ids::APP).unwrap()
        ),
        TokenKind::App,
        None,
    )
    .await;
    let renewer = w.renewer(RenewPolicy::default(), "daily");
    let mut renewals = 0;
    for day in 0..=120 {
        let report = w.check_all().await;
        for c in &report.tokens {
            // After day 90 Ana's data access has lapsed (she never came back), renewal needs her,
            // and her user tokens run out; nothing else may ever be dead.
            let lapsed_user = day >= 90
                && ["ana", "short", "page"].contains(&c.alias.as_str())
                && matches!(
                    c.status,
                    TokenStatus::DataAccessExpired | TokenStatus::Expired
                );
            assert!(
                c.status.is_usable() || lapsed_user,
                "day {day}: `{}` is {} ({})",
                c.alias,
                c.status,
                c.cause
            );
        }
        let r = renewer.renew_all(false, "daily").await.unwrap();
        renewals += r.tokens.iter().filter(|t| t.outcome == "renewed").count();
        for t in &r.tokens {
            assert_ne!(t.outcome, "failed", "day {day}: {r:?}");
            // Only the 90-day data-access lapse (the user has not been back) asks for a login.
            if t.outcome == "relogin" {
                assert!(
                    day >= 90
                        && (t.detail.contains("data_access_expired")
                            || t.detail.contains("is expired")),
                    "day {day}: {t:?}"
                );
            }
        }
        w.advance_days(1);
    }
    // The short-lived token was exchanged on day 0, then renewed with ana inside each 14-day
    // window; the 60-day system-user token refreshed at 45 days, twice.
    assert!(renewals >= 6, "renewals: {renewals}");
    // System-user tokens never lapsed and are renewed on schedule; Ana's tokens were kept
    // renewed until her 90 days of data access ran out, since she never came back (§1).
    for alias in ["bot60", "botnever"] {
        assert!(
            w.stored_secret_is_valid(alias).await,
            "`{alias}` still works after 120 days"
        );
        assert_eq!(w.token(alias).await.status, TokenStatus::Valid, "{alias}");
    }
    for alias in ["ana", "short", "page"] {
        let status = w.token(alias).await.status;
        assert!(
            matches!(
                status,
                TokenStatus::DataAccessExpired | TokenStatus::Expired
            ),
            "{alias}: {status}"
        );
    }
    let events = w.inventory.recent_events(10_000).await.unwrap();
    let renewed = |alias: &str| {
        events
            .iter()
            .filter(|e| e.action == "token.renewed" && e.token_alias.as_deref() == Some(alias))
            .count()
    };
    assert_eq!(renewed("bot60"), 2, "refreshed at 45 and 90 days");
    assert!(
        renewed("short") >= 2,
        "exchanged at once, then inside its window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revocation_cause_is_detected_with_its_action() {
    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add("page", "acme-page", TokenKind::Page, Some("ana"))
        .await;
    let ben = w
        .control("POST", "/tokens", json!({ "kind": "user", "app_id": ids::APP, "user_id": ids::USER_BEN, "scopes": ["ads_read"], "expires_in": 5_000_000, "long_lived": true }))
        .await;
    w.add_secret(
        "ben",
        ben["access_token"].as_str().unwrap(),
        TokenKind::User,
        None,
    )
    .await;
    w.add("bot", "bot-60-days", TokenKind::SystemUser, None)
        .await;
    assert_eq!(w.check_all().await.severity(), Severity::Ok);

    w.control(
        "POST",
        "/events/page_role_loss",
        json!({ "user_id": ids::USER_ANA, "page_id": ids::PAGE }),
    )
    .await;
    w.control(
        "POST",
        "/events/deauthorize",
        json!({ "user_id": ids::USER_BEN, "app_id": ids::APP }),
    )
    .await;
    let secret = w.sim.simulator().app_secret(ids::APP).unwrap();
    reqwest::get(format!(
        "{}/oauth/revoke?client_id={}&client_secret={secret}&revoke_token={}&access_token={}",
        w.sim.url(),
        ids::APP,
        w.sim_token("bot-60-days"),
        w.sim_token("bot-never-expires")
    ))
    .await
    .unwrap();
    let report = w.check_all().await;
    let status = |alias: &str| {
        report
            .tokens
            .iter()
            .find(|c| c.alias.as_str() == alias)
            .unwrap()
            .status
    };
    assert_eq!(status("page"), TokenStatus::RoleLost);
    assert_eq!(status("ben"), TokenStatus::Deauthorized);
    assert_eq!(status("bot"), TokenStatus::Revoked);
    assert_eq!(status("ana"), TokenStatus::Valid);
    assert_eq!(report.severity(), Severity::Critical);
    assert_eq!(
        report.tokens[0].severity,
        Severity::Critical,
        "most urgent first"
    );

    w.control(
        "POST",
        "/events/checkpoint",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    let report = w.check_all().await;
    let ana = report
        .tokens
        .iter()
        .find(|c| c.alias.as_str() == "ana")
        .unwrap();
    assert_eq!(ana.status, TokenStatus::Checkpoint);
    assert!(ana.status.action().contains("checkpoint"));

    // A reset app secret: the stored one no longer opens Graph, so nothing can be checked —
    // `unknown` with the reason, never a false death.
    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add_secret(
        "app",
        &format!(
            "{}|{}",
            ids::APP,
            w.sim.simulator().app_secret(ids::APP).unwrap()
        ),
        TokenKind::App,
        None,
    )
    .await;
    w.check_all().await;
    w.control(
        "POST",
        "/events/app_secret_reset",
        json!({ "app_id": ids::APP }),
    )
    .await;
    let report = w.check_all().await;
    let ana = &report
        .tokens
        .iter()
        .find(|c| c.alias.as_str() == "ana")
        .unwrap();
    assert_eq!(ana.status, TokenStatus::Unknown);
    assert!(ana.cause.contains("graphwarden app add"), "{}", ana.cause);
    let app = &report
        .tokens
        .iter()
        .find(|c| c.alias.as_str() == "app")
        .unwrap();
    assert_eq!(app.status, TokenStatus::AppSecretReset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_failures_transient_then_needs_attention_and_dead_then_relogin() {
    let w = setup(|_| {}).await;
    w.add("short", "ana-short-lived", TokenKind::User, None)
        .await;
    w.check_all().await;
    w.control(
        "PUT",
        "/faults",
        json!({ "route": "/oauth/access_token", "kind": "server_error" }),
    )
    .await;
    let renewer = w.renewer(RenewPolicy::default(), "r");
    for attempt in 1..=3 {
        let r = renewer.renew_all(false, "r").await.unwrap();
        assert_eq!(r.tokens[0].outcome, "failed", "attempt {attempt}: {r:?}");
        assert_eq!(r.exit_code(), 1);
    }
    let t = w.token("short").await;
    assert_eq!(
        (t.status, t.renewal_failures),
        (TokenStatus::NeedsAttention, 3)
    );
    assert!(
        w.stored_secret_is_valid("short").await,
        "the old secret is untouched"
    );
    // A later check keeps the flag up while renewals keep failing.
    w.check_all().await;
    assert_eq!(w.token("short").await.status, TokenStatus::NeedsAttention);
    // Fixed: the next renewal succeeds and clears it.
    w.control("DELETE", "/faults", json!(null)).await;
    let r = renewer.renew_all(false, "r").await.unwrap();
    assert_eq!(r.tokens[0].outcome, "renewed", "{r:?}");
    let t = w.token("short").await;
    assert_eq!((t.status, t.renewal_failures), (TokenStatus::Valid, 0));

    // A token that dies before its renewal: Meta refuses, and it is marked for a login.
    w.add("long", "ana-long-lived", TokenKind::User, None).await;
    w.control(
        "POST",
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    let r = renewer
        .renew(vec![w.token("long").await], false, true, "r")
        .await
        .unwrap();
    assert_eq!(
        (r.tokens[0].outcome, r.exit_code()),
        ("relogin", 2),
        "{r:?}"
    );
    assert_eq!(w.token("long").await.status, TokenStatus::PasswordChanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_leaves_a_valid_secret_and_the_next_run_finishes() {
    for point in [
        FaultPoint::AfterExchange,
        FaultPoint::AfterStage,
        FaultPoint::AfterVerify,
        FaultPoint::AfterPromote,
    ] {
        let w = setup(|_| {}).await;
        w.add("short", "ana-short-lived", TokenKind::User, None)
            .await;
        w.check_all().await;
        let hook: FaultHook = Arc::new(move |p| {
            if p == point {
                panic!("simulated crash at {p:?}");
            }
        });
        let crashing = w.renewer(
            RenewPolicy {
                fault_hook: Some(hook),
                ..RenewPolicy::default()
            },
            "crashing",
        );
        let task = tokio::spawn(async move { crashing.renew_all(false, "crashing").await });
        assert!(task.await.is_err(), "{point:?}: the run died");
        assert!(
            w.stored_secret_is_valid("short").await,
            "{point:?}: a valid secret is stored"
        );

        // A restart (another owner, once the dead run's lease has run out) finishes the work.
        w.store.clock.advance(jiff::SignedDuration::from_mins(3));
        let r = w
            .renewer(RenewPolicy::default(), "restart")
            .renew_all(false, "restart")
            .await
            .unwrap();
        let t = w.token("short").await;
        assert!(
            t.pending_since.is_none(),
            "{point:?}: nothing left pending: {r:?}"
        );
        assert!(w.stored_secret_is_valid("short").await, "{point:?}");
        assert_ne!(
            w.inventory
                .open_token_secret(&t.alias)
                .await
                .unwrap()
                .expose_secret_str(),
            w.sim_token("ana-short-lived"),
            "{point:?}: the short-lived token was replaced: {r:?}"
        );
    }
}

trait Expose {
    fn expose_secret_str(&self) -> String;
}

impl Expose for secrecy::SecretString {
    fn expose_secret_str(&self) -> String {
        use secrecy::ExposeSecret;
        self.expose_secret().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_is_single_flight() {
    let w = setup(|_| {}).await;
    w.add("short", "ana-short-lived", TokenKind::User, None)
        .await;
    w.check_all().await;
    // Slow exchanges, so two renewers overlap.
    w.control(
        "PUT",
        "/faults",
        json!({ "route": "/oauth/access_token", "kind": "latency", "latency_ms": 300 }),
    )
    .await;
    let a = w.renewer(RenewPolicy::default(), "a");
    let b = w.renewer(RenewPolicy::default(), "b");
    let (ra, rb) = tokio::join!(a.renew_all(false, "a"), b.renew_all(false, "b"));
    let outcomes = [ra.unwrap().tokens[0].outcome, rb.unwrap().tokens[0].outcome];
    assert!(outcomes.contains(&"renewed"), "{outcomes:?}");
    let exchanges = w
        .sim
        .simulator()
        .calls()
        .iter()
        .filter(|c| c.path == "/oauth/access_token")
        .count();
    assert_eq!(
        exchanges, 1,
        "only one renewal talked to Meta: {outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_says_why() {
    let w = setup(|_| {}).await;
    w.add("short", "ana-short-lived", TokenKind::User, None)
        .await;
    w.add("bot", "bot-60-days", TokenKind::SystemUser, None)
        .await;
    w.check_all().await;
    w.advance_days(46);
    w.check_all().await;
    let before = w.inventory.recent_events(1000).await.unwrap().len();
    let r = w
        .renewer(RenewPolicy::default(), "dry")
        .renew_all(true, "dry")
        .await
        .unwrap();
    let bot = r.tokens.iter().find(|t| t.alias == "bot").unwrap();
    assert_eq!(bot.outcome, "planned");
    assert!(bot.detail.contains("75 %"), "{}", bot.detail);
    assert_eq!(w.inventory.recent_events(1000).await.unwrap().len(), before);
    assert!(
        !w.sim
            .simulator()
            .calls()
            .iter()
            .any(|c| c.path == "/oauth/access_token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_graph_answers_give_unknown_and_lose_nothing() {
    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add("short", "ana-short-lived", TokenKind::User, None)
        .await;
    w.check_all().await;
    let before: Vec<_> = w
        .inventory
        .tokens(&graphwarden_store::TokenFilter::default())
        .await
        .unwrap();
    for kind in [
        "malformed_body",
        "truncated_body",
        "wrong_content_type",
        "server_error",
        "drop_connection",
    ] {
        w.control("PUT", "/faults", json!({ "route": "/", "kind": kind }))
            .await;
        let report = w.check_all().await;
        for c in &report.tokens {
            if kind == "wrong_content_type" {
                // A JSON body labelled as HTML is still read.
                assert!(
                    matches!(c.status, TokenStatus::Valid | TokenStatus::Expiring),
                    "{kind}"
                );
            } else {
                assert_eq!(c.status, TokenStatus::Unknown, "{kind}: {}", c.cause);
                assert!(
                    c.cause.starts_with("could not check"),
                    "{kind}: {}",
                    c.cause
                );
            }
        }
        // Renewal through the same faults stores nothing half-done.
        let r = w
            .renewer(RenewPolicy::default(), kind)
            .renew(vec![w.token("short").await], false, true, kind)
            .await
            .unwrap();
        assert!(
            r.tokens.iter().all(|t| t.outcome != "renewed") || kind == "wrong_content_type",
            "{kind}: {r:?}"
        );
        w.control("DELETE", "/faults", json!(null)).await;
        assert!(
            w.stored_secret_is_valid("short").await,
            "{kind}: the stored secret still works"
        );
    }
    let after: Vec<_> = w
        .inventory
        .tokens(&graphwarden_store::TokenFilter::default())
        .await
        .unwrap();
    assert_eq!(before.len(), after.len(), "nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_settings_per_app_and_per_token() {
    use graphwarden_store::RenewalOverride;
    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add("bot", "bot-60-days", TokenKind::SystemUser, None)
        .await;
    w.check_all().await;
    w.advance_days(40);
    w.check_all().await;
    // Globally: ana (20 days left) outside the 14-day window, bot at 67 % of its life.
    let default = w
        .renewer(RenewPolicy::default(), "p")
        .renew_all(true, "p")
        .await
        .unwrap();
    let outcome = |r: &graphwarden_lifecycle::RenewReport, a: &str| {
        r.tokens.iter().find(|t| t.alias == a).unwrap().outcome
    };
    assert_eq!(
        (outcome(&default, "ana"), outcome(&default, "bot")),
        ("skipped", "skipped")
    );
    // The app widens the window and refreshes earlier…
    let mut policy = RenewPolicy::default();
    policy.apps.insert(
        ids::APP.into(),
        RenewalOverride {
            enabled: None,
            user_window_secs: Some(21 * 86_400),
            system_user_fraction: Some(0.5),
        },
    );
    let app_level = w
        .renewer(policy.clone(), "p")
        .renew_all(true, "p")
        .await
        .unwrap();
    assert_eq!(
        (outcome(&app_level, "ana"), outcome(&app_level, "bot")),
        ("planned", "planned")
    );
    // …and the token's own setting wins over the app's.
    w.inventory
        .set_renewal_policy(
            &w.token("bot").await,
            Some(RenewalOverride {
                enabled: Some(false),
                ..RenewalOverride::default()
            }),
            "p",
        )
        .await
        .unwrap();
    let token_level = w.renewer(policy, "p").renew_all(true, "p").await.unwrap();
    assert_eq!(outcome(&token_level, "bot"), "skipped");
    assert!(
        token_level
            .tokens
            .iter()
            .any(|t| t.alias == "bot" && t.detail.contains("turned off"))
    );
    let bad = RenewalOverride {
        system_user_fraction: Some(2.0),
        ..RenewalOverride::default()
    };
    assert!(
        w.inventory
            .set_renewal_policy(&w.token("bot").await, Some(bad), "p")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_reads_the_inventory_in_pages_without_splitting_batches() {
    use graphwarden_lifecycle::{CheckPolicy, Checker, Selection};
    use graphwarden_store::TokenFilter;

    let w = setup(|_| {}).await;
    w.add("ana", "ana-long-lived", TokenKind::User, None).await;
    w.add("page", "acme-page", TokenKind::Page, Some("ana"))
        .await;
    for i in 0..10 {
        let t = w
            .control("POST", "/tokens", json!({ "kind": "user", "app_id": ids::APP, "user_id": ids::USER_BEN, "scopes": ["ads_read"], "expires_in": 5_000_000, "long_lived": true }))
            .await;
        w.add_secret(
            &format!("ben-{i:02}"),
            t["access_token"].as_str().unwrap(),
            TokenKind::User,
            None,
        )
        .await;
    }
    let checker = Checker::new(
        Arc::clone(&w.inventory),
        w.graph.clone(),
        Arc::new(w.store.clock.clone()),
        CheckPolicy {
            page_size: 3,
            ..CheckPolicy::default()
        },
    );
    let last = std::sync::Mutex::new((0, 0));
    let report = checker
        .check(Selection::default(), "test", &|done, total| {
            *last.lock().unwrap() = (done, total);
        })
        .await
        .unwrap();
    assert_eq!(*last.lock().unwrap(), (12, 12));
    let mut aliases: Vec<&str> = report.tokens.iter().map(|c| c.alias.as_str()).collect();
    aliases.sort_unstable();
    aliases.dedup();
    assert_eq!(aliases.len(), 12, "every token once");
    assert!(report.tokens.iter().all(|c| c.inspected));
    assert_eq!(report.requests, 1, "pages of 3 still fill one batch of 12");

    // A filter narrows the walk; an alias selection checks just those, and a dead parent's
    // children that were not in the round are marked once it ends.
    let only_pages = checker
        .check(
            Selection::Filter(TokenFilter {
                kind: Some(TokenKind::Page),
                ..TokenFilter::default()
            }),
            "test",
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(only_pages.tokens.len(), 1);
    w.control(
        "POST",
        "/events/password_change",
        json!({ "user_id": ids::USER_ANA }),
    )
    .await;
    let report = checker
        .check(
            Selection::Aliases(vec![graphwarden_core::TokenAlias::parse("ana").unwrap()]),
            "test",
            &|_, _| {},
        )
        .await
        .unwrap();
    assert_eq!(report.tokens.len(), 1);
    assert_eq!(report.tokens[0].status, TokenStatus::PasswordChanged);
    let page = w.token("page").await;
    assert_eq!(page.status, TokenStatus::PasswordChanged);
    assert!(
        page.status_cause.contains("derived from `ana`"),
        "{}",
        page.status_cause
    );
    assert_eq!(w.token("ben-00").await.status, TokenStatus::Valid);
}
