//! `graphwarden renew [ALIAS…] [--dry-run]` and `graphwarden token exchange ALIAS`.

use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_core::{TokenAlias, TokenKind};
use graphwarden_lifecycle::RenewReport;

use crate::cli::RenewArgs;
use crate::command::{Context, parse_flag};
use crate::exit::{CliError, CliResult};
use crate::output;

pub fn lifecycle_error(e: graphwarden_lifecycle::renew::RenewError) -> CliError {
    match e {
        graphwarden_lifecycle::renew::RenewError::Store(s) => CliError::from(s),
    }
}

fn print(report: &RenewReport, json: bool, dry_run: bool) -> CliResult {
    if json {
        return output::print_json(report);
    }
    if report.tokens.is_empty() {
        println!("No tokens.");
        return Ok(());
    }
    let mut table = output::table(&["ALIAS", "PLAN", "OUTCOME", "DETAIL"]);
    for r in &report.tokens {
        table.add_row(vec![
            Cell::new(&r.alias),
            Cell::new(r.plan.name()),
            Cell::new(r.outcome),
            Cell::new(&r.detail),
        ]);
    }
    output::print_table(&table);
    if dry_run {
        println!("Dry run: nothing was changed.");
    }
    Ok(())
}

pub async fn run(ctx: &Context, args: RenewArgs) -> CliResult<u8> {
    let inventory = Arc::new(ctx.inventory().await?);
    let renewer = ctx.renewer(Arc::clone(&inventory))?;
    let report = if args.aliases.is_empty() {
        renewer
            .renew_all(args.dry_run, &ctx.actor)
            .await
            .map_err(lifecycle_error)?
    } else {
        let mut tokens = Vec::new();
        for alias in &args.aliases {
            let alias = parse_flag("ALIAS", alias, TokenAlias::parse)?;
            tokens.push(inventory.token(&alias).await?);
        }
        renewer
            .renew(tokens, args.dry_run, false, &ctx.actor)
            .await
            .map_err(lifecycle_error)?
    };
    print(&report, args.json, args.dry_run)?;
    Ok(report.exit_code())
}

pub async fn exchange(ctx: &Context, alias: &str, json: bool) -> CliResult<u8> {
    let alias = parse_flag("ALIAS", alias, TokenAlias::parse)?;
    let inventory = Arc::new(ctx.inventory().await?);
    let token = inventory.token(&alias).await?;
    if token.kind != TokenKind::User {
        return Err(CliError::usage(format!(
            "`{alias}` is a {} token; only user tokens are exchanged (system-user tokens are refreshed by `graphwarden renew`)",
            token.kind
        )));
    }
    let renewer = ctx.renewer(Arc::clone(&inventory))?;
    let report = renewer
        .renew(vec![token], false, true, &ctx.actor)
        .await
        .map_err(lifecycle_error)?;
    print(&report, json, false)?;
    Ok(report.exit_code())
}
