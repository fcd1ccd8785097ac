//! `graphwarden usage`: what the proxy recorded, from its per-minute rollups — call volume,
//! errors by class and code, time spent, the highest usage Meta reported, and a sparkline of
//! calls over the window, grouped by token, app, account or endpoint.

use std::collections::BTreeMap;

use comfy_table::Cell;
use graphwarden_core::duration::parse_duration;
use graphwarden_store::Rollup;
use serde::Serialize;

use crate::cli::UsageArgs;
use crate::command::Context;
use crate::exit::{CliError, CliResult};
use crate::output;

/// Columns of the sparkline.
const BUCKETS: usize = 24;
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

#[derive(Debug, Default, Serialize)]
struct Group {
    key: String,
    calls: i64,
    errors: i64,
    /// Calls graphwarden held back from Meta and answered itself.
    refused: i64,
    error_rate: f64,
    /// `class:code` → calls.
    errors_by_code: BTreeMap<String, i64>,
    mean_duration_ms: f64,
    max_usage_pct: f64,
    /// Calls per bucket of the window, oldest first.
    timeline: Vec<i64>,
    #[serde(skip)]
    duration_us: i64,
}

fn sparkline(counts: &[i64]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                let i = ((c as f64 / max as f64) * 7.0).round() as usize;
                BARS[i.min(7)]
            }
        })
        .collect()
}

fn group_key(r: &Rollup, by: &str) -> String {
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "(unknown)".to_owned()
        } else {
            s.to_owned()
        }
    };
    match by {
        "app" => or_unknown(&r.app_id),
        "account" => or_unknown(&r.account),
        "endpoint" => r.path.clone(),
        _ => or_unknown(&r.token_alias),
    }
}

pub async fn run(ctx: &Context, args: UsageArgs) -> CliResult<u8> {
    let window =
        parse_duration(&args.since).map_err(|e| CliError::usage(format!("--since: {e}")))?;
    if window.is_negative() || window.is_zero() {
        return Err(CliError::usage(
            "--since must be a positive duration, such as `24h`",
        ));
    }
    let inventory = ctx.inventory().await?;
    let now_ms = ctx.clock.now_ms();
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let since_ms = now_ms.saturating_sub(window_ms);
    let rows = inventory.store().rollups_since(since_ms - 60_000).await?;
    let bucket_ms = (window_ms / BUCKETS as i64).max(60_000);
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    let mut total = Group {
        key: "all".to_owned(),
        timeline: vec![0; BUCKETS],
        ..Group::default()
    };
    for r in rows.iter().filter(|r| r.minute_ms + 60_000 > since_ms) {
        let key = group_key(r, &args.by);
        let g = groups.entry(key.clone()).or_insert_with(|| Group {
            key,
            timeline: vec![0; BUCKETS],
            ..Group::default()
        });
        let bucket = usize::try_from((r.minute_ms.max(since_ms) - since_ms) / bucket_ms)
            .unwrap_or(0)
            .min(BUCKETS - 1);
        for g in [&mut *g, &mut total] {
            g.calls += r.calls;
            g.refused += r.refused;
            g.duration_us += r.duration_us;
            g.max_usage_pct = g.max_usage_pct.max(r.max_usage_pct);
            g.timeline[bucket] += r.calls;
            if !r.error_class.is_empty() {
                g.errors += r.calls;
                *g.errors_by_code
                    .entry(format!("{}:{}", r.error_class, r.error_code))
                    .or_default() += r.calls;
            }
        }
    }
    let finish = |g: &mut Group| {
        if g.calls > 0 {
            g.error_rate = g.errors as f64 / g.calls as f64;
            g.mean_duration_ms = g.duration_us as f64 / g.calls as f64 / 1000.0;
        }
    };
    let mut list: Vec<Group> = groups.into_values().collect();
    list.iter_mut().for_each(finish);
    finish(&mut total);
    list.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
    list.truncate(args.top.max(1));
    if args.json {
        #[derive(Serialize)]
        struct Report<'a> {
            since: String,
            by: &'a str,
            bucket_seconds: i64,
            total: &'a Group,
            groups: &'a [Group],
        }
        return output::print_json(&Report {
            since: args.since.clone(),
            by: &args.by,
            bucket_seconds: bucket_ms / 1000,
            total: &total,
            groups: &list,
        })
        .map(|()| 0);
    }
    if total.calls == 0 {
        println!(
            "No calls went through the proxy in the last {} (start it with `graphwarden serve --proxy-listen ADDR`).",
            args.since
        );
        return Ok(0);
    }
    let mut table = output::table(&[
        &args.by.to_ascii_uppercase(),
        "CALLS",
        "ERRORS",
        "ERROR %",
        "HELD",
        "TOP ERRORS",
        "MEAN MS",
        "MAX USAGE %",
        &format!("CALLS OVER {}", args.since),
    ]);
    for g in list.iter().chain(std::iter::once(&total)) {
        let mut top: Vec<(&String, &i64)> = g.errors_by_code.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = top
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        table.add_row(vec![
            Cell::new(&g.key),
            Cell::new(g.calls),
            Cell::new(g.errors),
            Cell::new(format!("{:.1}", g.error_rate * 100.0)),
            Cell::new(g.refused),
            Cell::new(top.join(", ")),
            Cell::new(format!("{:.1}", g.mean_duration_ms)),
            Cell::new(format!("{:.1}", g.max_usage_pct)),
            Cell::new(sparkline(&g.timeline)),
        ]);
    }
    output::print_table(&table);
    Ok(0)
}
