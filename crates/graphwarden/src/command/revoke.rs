//! `graphwarden revoke ALIAS [--dry-run] [--json]`: show what revoking a stored token would
//! break (the tokens derived from it, the consumer keys that fetch it, its recent calls through
//! the proxy), then revoke it through Meta (`/oauth/revoke`) and inspect it, so its status —
//! and its children's, which die with it — comes from Meta's own answer. The inspection's
//! events name who did it.

use std::sync::Arc;

use graphwarden_core::TokenAlias;
use graphwarden_lifecycle::Checker;
use graphwarden_lifecycle::revoke::{self, RevokeError};
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

/// Revoke a stored token through Meta and inspect it (`graphwarden_lifecycle::revoke`).
pub async fn revoke_stored(
    ctx: &Context,
    inventory: &Arc<graphwarden_store::Inventory>,
    token: &Token,
) -> CliResult {
    let graph = ctx.graph()?;
    let checker = Checker::new(
        Arc::clone(inventory),
        graph.clone(),
        Arc::clone(&ctx.clock),
        ctx.check_policy()?,
    );
    let actor = format!("{} (revoke)", ctx.actor);
    revoke::revoke(inventory, &graph, &checker, token, &actor)
        .await
        .map_err(|e| match e {
            RevokeError::PageToken { .. } | RevokeError::AppToken(_) => {
                CliError::new(exit::DATA, e.to_string())
            }
            RevokeError::Store(s) => CliError::from(s),
            other => CliError::new(exit::UNAVAILABLE, other.to_string()),
        })
}

pub async fn run(ctx: &Context, args: RevokeArgs) -> CliResult<u8> {
    let alias = parse_flag("ALIAS", &args.alias, TokenAlias::parse)?;
    let inventory = Arc::new(ctx.inventory().await?);
    let token = inventory.token(&alias).await.map_err(CliError::from)?;
    let deps = revoke::dependents(&inventory, &token)
        .await
        .map_err(CliError::from)?;
    let last_call_at = deps.last_call_at_ms.and_then(|ms| {
        jiff::Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| t.to_string())
    });
    let mut preview = Preview {
        alias: alias.to_string(),
        kind: token.kind.as_str(),
        status: token.status.as_str().to_owned(),
        derived: deps.derived.iter().map(dependent).collect(),
        consumers: deps.consumers,
        recent_calls: deps.recent_calls,
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
        preview.derived_after = revoke::derived(&inventory, &after)
            .await
            .map_err(CliError::from)?
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
