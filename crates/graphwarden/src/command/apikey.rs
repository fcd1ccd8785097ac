//! `graphwarden apikey create|list|revoke`: keys for the HTTP API.

use comfy_table::Cell;
use graphwarden_core::{Role, TokenAlias};
use secrecy::ExposeSecret as _;

use crate::cli::ApikeyCommand;
use crate::command::{Context, parse_flag};
use crate::exit::{CliError, CliResult};
use crate::output;

pub async fn run(ctx: &Context, command: ApikeyCommand) -> CliResult<u8> {
    let inventory = ctx.inventory().await?;
    match command {
        ApikeyCommand::Create {
            name,
            role,
            aliases,
        } => {
            let role: Role = role.parse().map_err(CliError::usage)?;
            let aliases = aliases
                .iter()
                .filter(|a| !a.trim().is_empty())
                .map(|a| parse_flag("--aliases", a.trim(), TokenAlias::parse))
                .collect::<CliResult<Vec<_>>>()?;
            let (key, secret) = inventory
                .create_api_key(&name, role, aliases, &ctx.actor)
                .await?;
            eprintln!(
                "Created the {} key `{}` (id {}){}. It is shown once, below; graphwarden keeps only a hash of it.",
                key.role,
                key.name,
                key.id,
                if key.aliases.is_empty() {
                    String::new()
                } else {
                    format!(
                        " for {}",
                        key.aliases
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            eprintln!("Send it as `Authorization: Bearer KEY`.");
            println!("{}", secret.expose_secret());
        }
        ApikeyCommand::List { json } => {
            let keys = inventory.api_keys().await?;
            if json {
                output::print_json(&keys)?;
            } else if keys.is_empty() {
                println!("No API keys. Make one with `graphwarden apikey create`.");
            } else {
                let mut table = output::table(&[
                    "NAME",
                    "ID",
                    "ROLE",
                    "ALIASES",
                    "CREATED",
                    "LAST USED",
                    "STATE",
                ]);
                for k in &keys {
                    table.add_row(vec![
                        Cell::new(&k.name),
                        Cell::new(&k.id),
                        Cell::new(k.role.as_str()),
                        Cell::new(
                            k.aliases
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                        ),
                        Cell::new(output::time(k.created_at)),
                        Cell::new(k.last_used_at.map(output::time).unwrap_or_default()),
                        Cell::new(if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }),
                    ]);
                }
                output::print_table(&table);
            }
        }
        ApikeyCommand::Revoke { name } => {
            inventory.revoke_api_key(&name, &ctx.actor).await?;
            println!("Revoked the API key `{name}`.");
        }
    }
    Ok(0)
}
