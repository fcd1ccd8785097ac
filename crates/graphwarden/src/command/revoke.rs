//! `graphwarden revoke ALIAS [--dry-run] [--json]`: show what revoking a stored token would
//! break (the tokens derived from it, the consumer keys that fetch it, its recent calls through
//! the proxy), then revoke it through Meta (`/oauth/revoke`) and inspect it, so its status —
//! and its children's, which die with it — comes from Meta's own answer. The inspection's
//! events name who did it.

use std::sync::Arc;

use graphwarden_core::{TokenAlias, TokenKind};
use graphwarden_lifecycle::{Checker, Selection};
use graphwarden_meta::AppCredentials;
use graphwarden_store::Token;
use serde::Serialize;

use crate::cli::RevokeArgs;
use crate::command::{Context, parse_flag};
use crate::exit::{self, CliError, CliResult};
use crate::output;

#[derive(Debug, Serialize)]
struct Dependent {
    alias: String,
    kind: &'static str,
    status: String,
}

#[derive(Debug, Serialize)]
struct Preview {
    alias: String,
    kind: &'static str,
    status: String,
    /// Tokens derived from it, at any depth: they die with it.
    derived: Vec<Dependent>,
    /// Consumer keys that may fetch it (or a token derived from it).
    consumers: Vec<String>,
    /// Calls made with it through the proxy (of the records kept), and the latest.
    recent_calls: usize,
    last_call_at: Option<String>,
    revoked: bool,
    /// Its status after revocation (Meta's answer to the inspection).
    status_after: Option<String>,
    derived_after: Vec<Dependent>,
}

fn dependent(t: &Token) -> Dependent {
    Dependent {
        alias: t.alias.to_string(),
        kind: t.kind.as_str(),
        status: t.status.as_str().to_owned(),
    }
}

async fn derived(inventory: &graphwarden_store::Inventory, token: &Token) -> CliResult<Vec<Token>> {
    let mut out: Vec<Token> = Vec::new();
    let mut frontier = vec![token.clone()];
    while let Some(t) = frontier.pop() {
        for child in inventory.children(&t).await.map_err(CliError::from)? {
            if out.iter().all(|o| o.id != child.id) && child.id != token.id {
                frontier.push(child.clone());
                out.push(child);
            }
        }
    }
    out.sort_by(|a, b| a.alias.cmp(&b.alias));
    Ok(out)
}

/// Revoke a stored user or system-user token through Meta, then inspect it so its status (and
/// its children's) follows Meta's answer. Page and app tokens are refused with the way to go.
pub async fn revoke_stored(
    ctx: &Context,
    inventory: &Arc<graphwarden_store::Inventory>,
    token: &Token,
) -> CliResult {
    let alias = &token.alias;
    match token.kind {
        TokenKind::Page => {
            return Err(CliError::new(
                exit::DATA,
                format!(
                    "`{alias}` is a Page token: Meta has no revocation for one on its own; revoke the user token it was derived from{}, or remove the app from the Page",
                    token
                        .parent_alias
                        .as_ref()
                        .map(|p| format!(" (`graphwarden revoke {p}`)"))
                        .unwrap_or_default()
                ),
            ));
        }
        TokenKind::App => {
            return Err(CliError::new(
                exit::DATA,
                format!(
                    "`{alias}` is an app token: it lives as long as the app secret; reset the secret in the app's dashboard, then store the new one with `graphwarden app add`"
                ),
            ));
        }
        TokenKind::User | TokenKind::SystemUser => {}
    }
    let secret = inventory
        .open_token_secret(alias)
        .await
        .map_err(CliError::from)?;
    let app_secret = inventory
        .app_secret(&token.app_id)
        .await
        .map_err(CliError::from)?;
    let creds = AppCredentials {
        app_id: token.app_id.to_string(),
        secret: app_secret,
    };
    let graph = ctx.graph()?;
    let revoked = graph.revoke(&secret, &secret, &creds).await.map_err(|e| {
        CliError::new(
            exit::UNAVAILABLE,
            format!("Meta did not revoke `{alias}`: {e}"),
        )
    })?;
    if !revoked {
        return Err(CliError::new(
            exit::UNAVAILABLE,
            format!("Meta answered the revocation of `{alias}` without success"),
        ));
    }
    // Meta's answer decides the status; the children follow their parent's death.
    let checker = Checker::new(
        Arc::clone(inventory),
        graph,
        Arc::clone(&ctx.clock),
        ctx.check_policy()?,
    );
    let actor = format!("{} (revoke)", ctx.actor);
    checker
        .check(Selection::Aliases(vec![alias.clone()]), &actor, &|_, _| {})
        .await
        .map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("`{alias}` was revoked, but inspecting it afterwards failed: {e}"),
            )
        })?;
    Ok(())
}

pub async fn run(ctx: &Context, args: RevokeArgs) -> CliResult<u8> {
    let alias = parse_flag("ALIAS", &args.alias, TokenAlias::parse)?;
    let inventory = Arc::new(ctx.inventory().await?);
    let token = inventory.token(&alias).await.map_err(CliError::from)?;
    let children = derived(&inventory, &token).await?;
    let affected: Vec<&TokenAlias> = std::iter::once(&token.alias)
        .chain(children.iter().map(|c| &c.alias))
        .collect();
    let mut consumers: Vec<String> = inventory
        .api_keys()
        .await
        .map_err(CliError::from)?
        .into_iter()
        .filter(|k| k.revoked_at.is_none() && k.aliases.iter().any(|a| affected.contains(&a)))
        .map(|k| k.name)
        .collect();
    consumers.sort();
    let calls = inventory
        .store()
        .recent_calls(Some(alias.as_str()), 10_000)
        .await
        .map_err(CliError::from)?;
    let last_call_at = calls.first().and_then(|c| {
        jiff::Timestamp::from_millisecond(c.at_ms)
            .ok()
            .map(|t| t.to_string())
    });
    let mut preview = Preview {
        alias: alias.to_string(),
        kind: token.kind.as_str(),
        status: token.status.as_str().to_owned(),
        derived: children.iter().map(dependent).collect(),
        consumers,
        recent_calls: calls.len(),
        last_call_at,
        revoked: false,
        status_after: None,
        derived_after: Vec::new(),
    };

    if !args.dry_run {
        revoke_stored(ctx, &inventory, &token).await?;
        preview.revoked = true;
        let after = inventory.token(&alias).await.map_err(CliError::from)?;
        preview.status_after = Some(after.status.as_str().to_owned());
        preview.derived_after = derived(&inventory, &after)
            .await?
            .iter()
            .map(dependent)
            .collect();
    }

    if args.json {
        output::print_json(&preview)?;
        return Ok(0);
    }
    let verb = if args.dry_run {
        "Revoking would break"
    } else {
        "Revoked; what it broke"
    };
    println!(
        "`{}` ({}, {}). {verb}:",
        preview.alias, preview.kind, preview.status
    );
    if preview.derived.is_empty() {
        println!("  derived tokens: none");
    } else {
        println!("  derived tokens (they die with it):");
        for d in &preview.derived {
            println!("    {} ({}, {})", d.alias, d.kind, d.status);
        }
    }
    if preview.consumers.is_empty() {
        println!("  consumer keys that fetch it: none");
    } else {
        println!(
            "  consumer keys that fetch it: {}",
            preview.consumers.join(", ")
        );
    }
    match &preview.last_call_at {
        Some(at) => println!(
            "  calls through the proxy: {} recorded, the latest at {at}",
            preview.recent_calls
        ),
        None => println!("  calls through the proxy: none recorded"),
    }
    if args.dry_run {
        println!("Nothing was changed (--dry-run).");
    } else {
        println!(
            "Meta revoked `{}`; it is now {}.",
            preview.alias,
            preview.status_after.as_deref().unwrap_or("unknown")
        );
        for d in &preview.derived_after {
            println!("  {} is now {}", d.alias, d.status);
        }
    }
    Ok(0)
}
