//! The cost of writing call records, without the proxy in front: what the proxy's writer does
//! with a batch (`Rollup::fold`, then `insert_calls` in one transaction), repeated, against a
//! fresh SQLite database (or PostgreSQL, with a URL), with records like the ones
//! `bench/proxy.sh` makes.
//!
//! `cargo run --release -p graphwarden-store --example insert_calls -- [ROWS] [BATCH] [URL]`
//! (defaults 200000, 400, a SQLite file in a scratch directory) prints rows/s and CPU µs per row
//! of this whole process (all its threads, sqlx's SQLite worker included), from
//! `/proc/self/stat`. Under `valgrind --tool=callgrind` the total divided by ROWS gives
//! instructions per row, which do not vary with the machine's speed.

use std::sync::Arc;

use graphwarden_core::Stopwatch;
use graphwarden_core::call::{CallRecord, ChangeType};
use graphwarden_store::{PostgresOptions, Rollup, SqliteOptions, Store};

/// CPU time of this process so far (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The text a record shares with the proxy's caches (the token's fingerprint, the parsed path,
/// the answer's usage), as the proxy shares it.
struct Shared {
    fingerprint: Arc<str>,
    path: Arc<str>,
    object: Arc<str>,
    usage: Arc<str>,
}

fn record(shared: &Shared, i: usize, at_ms: i64) -> CallRecord {
    CallRecord {
        at_ms,
        token_alias: None,
        token_fingerprint: Some(Arc::clone(&shared.fingerprint)),
        app_id: None,
        method: "GET".into(),
        path: Arc::clone(&shared.path),
        object_id: Some(Arc::clone(&shared.object)),
        change: ChangeType::Read,
        http_status: 200,
        error_code: None,
        error_subcode: None,
        error_class: None,
        duration_us: 180 + (i % 97) as i64,
        usage_pct: Some(10.0),
        usage: Some(Arc::clone(&shared.usage)),
        batch_index: None,
        outcome: "forwarded".into(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let batch: usize = args.next().map_or(Ok(400), |a| a.parse())?.max(1);
    let scratch = tempfile::tempdir()?;
    let url = match args.next() {
        Some(url) => url,
        None => format!("sqlite://{}", scratch.path().join("calls.db").display()),
    };
    let sqlite = SqliteOptions {
        create: true,
        ..SqliteOptions::default()
    };
    let store: Arc<dyn Store> =
        graphwarden_store::connect(&url, &sqlite, &PostgresOptions::default()).await?;
    store.migrate().await?;

    // Records are made outside the measured part, as the proxy threads make them.
    let base = 1_800_000_000_000_i64;
    let shared = Shared {
        fingerprint: "3q2F8mN0cT1zX9bY7wV6uS5rQ4pO3nM2lK1jI0hGfEd".into(),
        path: "/{version}/me".into(),
        object: "me".into(),
        usage: r#"{"app":{"call_count":10.0,"total_cputime":5.0,"total_time":5.0},"business_use_case":[{"id":"1","type":"ads_management","call_count":5.0,"total_cputime":1.0,"total_time":1.0,"estimated_time_to_regain_access":0.0}]}"#.into(),
    };
    let batches: Vec<Vec<CallRecord>> = (0..rows)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| {
            c.iter()
                .map(|&i| record(&shared, i, base + (i as i64) / 20))
                .collect()
        })
        .collect();
    let cpu0 = cpu_seconds();
    let watch = Stopwatch::start();
    for b in &batches {
        let rollups = Rollup::fold(b);
        store.insert_calls(b, &rollups).await?;
    }
    let wall = watch.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{rows} rows in batches of {batch}: {:.0} rows/s, {:.2} CPU µs/row (wall {:.2} µs/row)",
        rows as f64 / wall,
        cpu * 1e6 / rows as f64,
        wall * 1e6 / rows as f64
    );
    Ok(())
}
