//! `graphwarden pages derive` and `graphwarden token mint-system-user`.

use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_core::{AppId, MetaId, TokenAlias, parse_scope_list};

use crate::cli::PagesCommand;
use crate::command::{Context, derive_error, parse_flag};
use crate::exit::{CliError, CliResult};
use crate::output;

pub async fn run(ctx: &Context, command: PagesCommand) -> CliResult<u8> {
    let PagesCommand::Derive {
        user_alias,
        pages,
        json,
    } = command;
    let alias = parse_flag("USER_ALIAS", &user_alias, TokenAlias::parse)?;
    let pages = pages
        .iter()
        .map(|p| parse_flag("--page", p, MetaId::parse))
        .collect::<CliResult<Vec<_>>>()?;
    let inventory = Arc::new(ctx.inventory().await?);
    let user = inventory.token(&alias).await?;
    let renewer = ctx.renewer(Arc::clone(&inventory))?;
    let derived = graphwarden_lifecycle::derive::derive_pages(
        &inventory,
        &ctx.graph()?,
        &renewer,
        &user,
        &pages,
        ctx.clock.now(),
        ctx.check_policy()?.warning_window,
        &ctx.actor,
    )
    .await
    .map_err(derive_error)?;
    if json {
        output::print_json(&derived)?;
    } else if derived.is_empty() {
        println!("`{alias}` has no role on any Page.");
    } else {
        let mut table = output::table(&["ALIAS", "PAGE", "NAME", "OUTCOME", "DETAIL"]);
        for d in &derived {
            table.add_row(vec![
                Cell::new(&d.alias),
                Cell::new(&d.page_id),
                Cell::new(&d.page_name),
                Cell::new(d.outcome),
                Cell::new(&d.detail),
            ]);
        }
        output::print_table(&table);
    }
    Ok(if derived.iter().any(|d| d.outcome == "failed") {
        1
    } else {
        0
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn mint(
    ctx: &Context,
    alias: &str,
    app_id: &str,
    system_user: &str,
    scopes: &str,
    expiring: bool,
    caller: &str,
    json: bool,
) -> CliResult<u8> {
    let alias = parse_flag("ALIAS", alias, TokenAlias::parse)?;
    let app_id = parse_flag("--app", app_id, AppId::parse)?;
    let system_user = parse_flag("--system-user", system_user, MetaId::parse)?;
    let scopes: Vec<String> = parse_flag("--scopes", scopes, parse_scope_list)?
        .into_iter()
        .map(|s| s.into_string())
        .collect();
    if scopes.is_empty() {
        return Err(CliError::usage(
            "--scopes: name at least one permission, such as `ads_read`",
        ));
    }
    let caller = parse_flag("--caller", caller, TokenAlias::parse)?;
    let inventory = ctx.inventory().await?;
    let caller = inventory.token(&caller).await?;
    let token = graphwarden_lifecycle::derive::mint_system_user(
        &inventory,
        &ctx.graph()?,
        &caller,
        alias,
        &app_id,
        &system_user,
        &scopes,
        expiring,
        ctx.clock.now(),
        ctx.check_policy()?.warning_window,
        &ctx.actor,
    )
    .await
    .map_err(derive_error)?;
    if json {
        output::print_json(&serde_json::json!({
            "alias": token.alias,
            "kind": token.kind,
            "status": token.status,
            "hint": token.hint,
            "expires_in": output::expires_in(token.expires, ctx.clock.now()),
        }))?;
    } else {
        println!(
            "Minted and stored system-user token `{}` ({}) for system user {system_user}: {}, expires in {}.",
            token.alias,
            token.hint,
            token.status,
            output::expires_in(token.expires, ctx.clock.now())
        );
    }
    Ok(0)
}
