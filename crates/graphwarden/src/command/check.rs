//! `graphwarden check [ALIAS…] [--json]`: inspect, update the inventory, report by urgency,
//! exit 0 / 1 / 2 for cron and monitoring.

use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_core::TokenAlias;
use graphwarden_lifecycle::{Checked, Checker, Severity};
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
    let tokens = if args.aliases.is_empty() {
        inventory.tokens(&TokenFilter::default()).await?
    } else {
        let mut tokens = Vec::new();
        for alias in &args.aliases {
            let alias = parse_flag("ALIAS", alias, TokenAlias::parse)?;
            tokens.push(inventory.token(&alias).await?);
        }
        tokens
    };
    if tokens.is_empty() {
        if args.json {
            output::print_json(&Vec::<()>::new())?;
        } else {
            println!("No tokens to check. Add one with `graphwarden token add`.");
        }
        return Ok(0);
    }
    let checker = Checker::new(
        Arc::clone(&inventory),
        ctx.graph()?,
        Arc::clone(&ctx.clock),
        ctx.check_policy()?,
    );
    let bar = ProgressBar::new(tokens.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("Inspecting [{bar:30}] {pos}/{len} tokens")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let report = checker
        .check(tokens, &ctx.actor, &progress)
        .await
        .map_err(|e| match e {
            graphwarden_lifecycle::check::CheckError::Store(s) => crate::exit::CliError::from(s),
        })?;
    bar.finish_and_clear();
    let now = ctx.clock.now();
    if args.json {
        output::print_json(&output::Seq::new(
            report.tokens.iter().map(|c| view(c, now)),
        ))?;
    } else {
        let mut table = output::table(&["ALIAS", "KIND", "STATUS", "EXPIRES IN", "ACTION"]);
        for c in &report.tokens {
            let action = match (&c.warning, c.token.status.is_usable()) {
                (Some(w), true) => format!("{w}. {}", c.token.status.action()),
                _ => c.token.status.action().to_owned(),
            };
            table.add_row(vec![
                Cell::new(c.token.alias.as_str()),
                Cell::new(c.token.kind.as_str()),
                output::status_cell(c.token.status),
                Cell::new(output::expires_in(c.token.expires, now)),
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
            println!("`{}`: {}", c.token.alias, c.token.status_cause);
        }
    }
    Ok(report.severity().exit_code())
}

fn view(c: &Checked, now: jiff::Timestamp) -> CheckView<'_> {
    let t = &c.token;
    CheckView {
        alias: t.alias.as_str(),
        kind: t.kind.as_str(),
        app: t.app_id.as_str(),
        status: t.status.as_str(),
        cause: &t.status_cause,
        severity: c.severity,
        expires_at: match t.expires {
            Expiry::At(at) => Some(output::time(at)),
            _ => None,
        },
        expires_in: output::expires_in(t.expires, now),
        data_access_expires_at: t.data_access_expires_at.map(output::time),
        action: t.status.action(),
        warning: c.warning.as_deref(),
        flags: &t.flags,
        scopes: t.scopes.as_deref(),
        checked_at: t.last_checked_at.map(output::time),
        inspected: c.inspected,
    }
}
