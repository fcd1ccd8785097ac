//! `graphwarden check [ALIAS…] [--json]`: inspect, update the inventory, report by urgency,
//! exit 0 / 1 / 2 for cron and monitoring.

use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_core::TokenAlias;
use graphwarden_lifecycle::{Checked, Checker, Selection, Severity};
use graphwarden_store::{Expiry, TokenFilter};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::CheckArgs;
use crate::command::{Context, parse_flag};
use crate::exit::CliResult;
use crate::output;

#[derive(Debug, Serialize)]
struct CheckView<'a> {
    alias: &'a str,
    kind: &'a str,
    app: &'a str,
    status: &'a str,
    cause: &'a str,
    severity: Severity,
    expires_at: Option<String>,
    expires_in: String,
    data_access_expires_at: Option<String>,
    action: &'static str,
    warning: Option<&'a str>,
    flags: &'a [String],
    scopes: Option<&'a [String]>,
    checked_at: Option<String>,
    inspected: bool,
}

pub async fn run(ctx: &Context, args: CheckArgs) -> CliResult<u8> {
    let inventory = Arc::new(ctx.inventory().await?);
    let selection = if args.aliases.is_empty() {
        Selection::Filter(TokenFilter::default())
    } else {
        let aliases = args
            .aliases
            .iter()
            .map(|a| parse_flag("ALIAS", a, TokenAlias::parse))
            .collect::<Result<Vec<_>, _>>()?;
        Selection::Aliases(aliases)
    };
    let checker = Checker::new(
        Arc::clone(&inventory),
        ctx.graph()?,
        Arc::clone(&ctx.clock),
        ctx.check_policy()?,
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("Inspecting [{bar:30}] {pos}/{len} tokens")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = checker
        .check(selection, &ctx.actor, &progress)
        .await
        .map_err(|e| match e {
            graphwarden_lifecycle::check::CheckError::Store(s) => crate::exit::CliError::from(s),
        })?;
    bar.finish_and_clear();
    let now = ctx.clock.now();
    if report.tokens.is_empty() {
        if args.json {
            output::print_json(&Vec::<()>::new())?;
        } else {
            println!("No tokens to check. Add one with `graphwarden token add`.");
        }
        return Ok(0);
    }
    if args.json {
        output::print_json(&output::Seq::new(
            report.tokens.iter().map(|c| view(c, now)),
        ))?;
    } else {
        let mut table = output::table(&["ALIAS", "KIND", "STATUS", "EXPIRES IN", "ACTION"]);
        for c in &report.tokens {
            let action = match (&c.warning, c.status.is_usable()) {
                (Some(w), true) => format!("{w}. {}", c.status.action()),
                _ => c.status.action().to_owned(),
            };
            table.add_row(vec![
                Cell::new(c.alias.as_str()),
                Cell::new(c.kind.as_str()),
                output::status_cell(c.status),
                Cell::new(output::expires_in(c.expires, now)),
                Cell::new(action),
            ]);
        }
        output::print_table(&table);
        let count = |s: Severity| report.tokens.iter().filter(|c| c.severity == s).count();
        println!(
            "{} token(s) checked with {} Graph request(s){}: {} critical, {} warning, {} fine.",
            report.tokens.len(),
            report.requests,
            report
                .api_version
                .as_deref()
                .map(|v| format!(" (Graph {v})"))
                .unwrap_or_default(),
            count(Severity::Critical),
            count(Severity::Warning),
            count(Severity::Ok)
        );
        for c in report.tokens.iter().filter(|c| !c.inspected) {
            println!("`{}`: {}", c.alias, c.cause);
        }
    }
    Ok(report.severity().exit_code())
}

fn view(c: &Checked, now: jiff::Timestamp) -> CheckView<'_> {
    CheckView {
        alias: c.alias.as_str(),
        kind: c.kind.as_str(),
        app: c.app_id.as_str(),
        status: c.status.as_str(),
        cause: &c.cause,
        severity: c.severity,
        expires_at: match c.expires {
            Expiry::At(at) => Some(output::time(at)),
            _ => None,
        },
        expires_in: output::expires_in(c.expires, now),
        data_access_expires_at: c.data_access_expires_at.map(output::time),
        action: c.status.action(),
        warning: c.warning.as_deref(),
        flags: &c.flags,
        scopes: c.scopes.as_deref(),
        checked_at: c.checked_at.map(output::time),
        inspected: c.inspected,
    }
}
