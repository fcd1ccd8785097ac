//! `graphwarden user add|list|remove`: local users who sign in to the dashboard with a password
//! (stored as an argon2id hash). The password is read from standard input or a prompt (twice),
//! never from the command line.

use std::io::IsTerminal;

use graphwarden_core::Role;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::cli::UserCommand;
use crate::command::Context;
use crate::exit::{CliError, CliResult};
use crate::input::{self, SecretSource};
use crate::output;

#[derive(Serialize)]
struct UserView<'a> {
    name: &'a str,
    role: &'a str,
    created_at: String,
    created_by: &'a str,
    last_login_at: Option<String>,
}

pub async fn run(ctx: &Context, command: UserCommand) -> CliResult<u8> {
    let inventory = ctx.inventory().await?;
    match command {
        UserCommand::Add { name, role } => {
            let role: Role = role.parse().map_err(CliError::usage)?;
            let password = input::read_secret("password", &SecretSource::Stdin)?;
            if std::io::stdin().is_terminal() {
                let again = input::read_secret("password again", &SecretSource::Stdin)?;
                if again.expose_secret() != password.expose_secret() {
                    return Err(CliError::usage(
                        "the two passwords differ; nothing was changed",
                    ));
                }
            }
            // A password piped in ends with the newline `echo` added.
            let trimmed = secrecy::SecretString::from(
                password
                    .expose_secret()
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            );
            let user = inventory
                .add_user(&name, role, &trimmed, &ctx.actor)
                .await?;
            println!(
                "Added the {} `{}`: they sign in to the dashboard with their name and password.",
                user.role, user.name
            );
            Ok(0)
        }
        UserCommand::List { json } => {
            let users = inventory.users().await?;
            let views: Vec<UserView<'_>> = users
                .iter()
                .map(|u| UserView {
                    name: &u.name,
                    role: u.role.as_str(),
                    created_at: output::time(u.created_at),
                    created_by: &u.created_by,
                    last_login_at: u.last_login_at.map(output::time),
                })
                .collect();
            if json {
                output::print_json(&views)?;
            } else {
                let mut table = output::table(&["NAME", "ROLE", "CREATED", "BY", "LAST SIGN-IN"]);
                for v in &views {
                    table.add_row(vec![
                        v.name.to_owned(),
                        v.role.to_owned(),
                        v.created_at.clone(),
                        v.created_by.to_owned(),
                        v.last_login_at.clone().unwrap_or_else(|| "never".into()),
                    ]);
                }
                output::print_table(&table);
            }
            Ok(0)
        }
        UserCommand::Remove { name } => {
            inventory.remove_user(&name, &ctx.actor).await?;
            println!("Removed `{name}`; their sessions end at their next request.");
            Ok(0)
        }
    }
}
