//! The scheduler with a manual clock: slots, missed runs, restarts, one claimant.

use std::sync::Arc;

use graphwarden_server::JobKind;
use jiff::SignedDuration;

use crate::support::{job, scheduler_for, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_jobs_run_once_per_slot_and_missed_slots_collapse_into_one_run() {
    let d = spawn(graphwarden_server::ServerConfig::default()).await;
    let clock = d.store.clock.clone();
    let graph = graphwarden_meta::GraphClient::new(
        graphwarden_meta::GraphConfig {
            base_url: d.sim.url().to_owned(),
            ..graphwarden_meta::GraphConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .unwrap();
    let jobs = || vec![job("inspect", JobKind::Inspect, "0 * * * *")];
    let s = scheduler_for(&d.inventory, &graph, &clock, jobs(), "one").await;
    s.register().await.unwrap();
    assert!(s.tick().await.unwrap().is_empty(), "nothing is due yet");

    clock.advance(SignedDuration::from_hours(1));
    let started = s.tick().await.unwrap();
    assert_eq!(started.len(), 1);
    s.wait_idle().await;
    assert!(s.tick().await.unwrap().is_empty(), "the slot ran already");
    let runs = s.runs(Some("inspect"), 10).await.unwrap();
    assert_eq!(runs[0].outcome, "ok");
    assert_eq!(runs[0].counts["tokens"], 2);

    // The daemon is down for a day: 24 slots pass, one run catches up, then the schedule goes on.
    clock.advance(SignedDuration::from_hours(24));
    let s = scheduler_for(&d.inventory, &graph, &clock, jobs(), "one-again").await;
    s.register().await.unwrap();
    assert_eq!(s.tick().await.unwrap().len(), 1);
    s.wait_idle().await;
    assert!(s.tick().await.unwrap().is_empty());
    let runs = s.runs(Some("inspect"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].trigger, "missed");
    let view = s.jobs().await.unwrap();
    let next = view[0].next_run_at.unwrap();
    assert!(next > clock_now(&clock) && next <= clock_now(&clock) + SignedDuration::from_hours(1));
}

fn clock_now(clock: &graphwarden_testkit::ManualClock) -> jiff::Timestamp {
    graphwarden_core::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_run_the_same_slot_and_an_interrupted_run_resumes() {
    let d = spawn(graphwarden_server::ServerConfig::default()).await;
    let clock = d.store.clock.clone();
    let graph = graphwarden_meta::GraphClient::new(
        graphwarden_meta::GraphConfig {
            base_url: d.sim.url().to_owned(),
            ..graphwarden_meta::GraphConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .unwrap();
    let jobs = || vec![job("prune", JobKind::Prune, "0 3 * * *")];
    let a = scheduler_for(&d.inventory, &graph, &clock, jobs(), "a").await;
    let b = scheduler_for(&d.inventory, &graph, &clock, jobs(), "b").await;
    a.register().await.unwrap();
    b.register().await.unwrap();
    clock.advance(SignedDuration::from_hours(25));
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    assert_eq!(
        ra.unwrap().len() + rb.unwrap().len(),
        1,
        "one instance claims the slot"
    );
    a.wait_idle().await;
    b.wait_idle().await;

    // A run whose process died: its lease expires, the next start marks it and runs the job.
    let store = d.inventory.store();
    let now = clock_now(&clock).as_millisecond();
    store
        .claim_job(&graphwarden_store::JobClaim {
            name: "prune",
            owner: "dead",
            now_ms: now,
            lease_until_ms: now + 1_000,
            expected_next_ms: None,
            new_next_ms: None,
        })
        .await
        .unwrap();
    store
        .start_job_run("prune", "schedule", "dead", now)
        .await
        .unwrap();
    clock.advance(SignedDuration::from_secs(5));
    let c = scheduler_for(&d.inventory, &graph, &clock, jobs(), "c").await;
    c.register().await.unwrap();
    let runs = c.runs(Some("prune"), 10).await.unwrap();
    assert_eq!(runs[0].outcome, "interrupted");
    assert_eq!(
        c.tick().await.unwrap().len(),
        1,
        "the interrupted job runs again at start"
    );
    c.wait_idle().await;
    assert_eq!(c.runs(Some("prune"), 1).await.unwrap()[0].outcome, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_job_reads_event_match_quality_and_a_drop_raises_an_alert() {
    use graphwarden_sim::world::ids;
    let d = spawn(graphwarden_server::ServerConfig::default()).await;
    let clock = d.store.clock.clone();
    let graph = graphwarden_meta::GraphClient::new(
        graphwarden_meta::GraphConfig {
            base_url: d.sim.url().to_owned(),
            ..graphwarden_meta::GraphConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .unwrap();
    let datasets = vec![
        graphwarden_server::DatasetSpec {
            dataset_id: ids::DATASET.into(),
            token: graphwarden_core::TokenAlias::parse("bot").unwrap(),
            agent_name: None,
        },
        graphwarden_server::DatasetSpec {
            dataset_id: "699999999999999".into(),
            token: graphwarden_core::TokenAlias::parse("bot").unwrap(),
            agent_name: Some("partner".into()),
        },
    ];
    let s = crate::support::scheduler_with(
        &d.inventory,
        &graph,
        &clock,
        vec![job("quality", JobKind::Quality, "15 */6 * * *")],
        "q",
        datasets,
    )
    .await;
    s.register().await.unwrap();
    s.run_now("quality").await.unwrap();
    s.wait_idle().await;
    let run = &s.runs(Some("quality"), 1).await.unwrap()[0];
    assert_eq!(
        run.outcome, "warning",
        "one dataset does not exist: {run:?}"
    );
    assert_eq!(run.counts["events"], 2);
    assert!(run.summary.contains("699999999999999"), "{}", run.summary);

    // Purchase's score falls from 8.3 to 6.5 on Meta's side.
    let http = reqwest::Client::new();
    let scenario_url = format!("{}/__sim/scenario", d.sim.url());
    let mut world: serde_json::Value = http
        .get(&scenario_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    world["datasets"][0]["events"][0]["composite_score"] = serde_json::json!(6.5);
    let r = http.put(&scenario_url).json(&world).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    clock.advance(SignedDuration::from_hours(6));
    s.run_now("quality").await.unwrap();
    s.wait_idle().await;
    let run = &s.runs(Some("quality"), 1).await.unwrap()[0];
    assert_eq!(run.counts["events"], 2, "{run:?}");
    let trends = d.inventory.store().quality_trends().await.unwrap();
    let purchase = trends
        .iter()
        .find(|t| t.latest.event_name == "Purchase")
        .unwrap();
    assert_eq!(
        (purchase.latest.score, purchase.previous),
        (6.5, Some(8.3)),
        "{trends:?}"
    );

    d.alerts.evaluate().await.unwrap();
    let firing = d.alerts.alerts().await.unwrap();
    let dropped: Vec<_> = firing
        .iter()
        .filter(|v| v.alert.name() == "event_match_quality_dropped")
        .collect();
    assert_eq!(dropped.len(), 1, "{firing:#?}");
    assert_eq!(dropped[0].alert.labels["event"], "Purchase");
    assert_eq!(dropped[0].alert.labels["dataset_id"], ids::DATASET);
    assert!(dropped[0].alert.annotations["summary"].contains("8.3 to 6.5"));
}
