//! `graphwarden app add|list|show|remove`.

use comfy_table::Cell;
use graphwarden_core::AppId;
use graphwarden_store::{App, NewApp};
use serde::Serialize;

use crate::cli::AppCommand;
use crate::command::{Context, parse_flag};
use crate::exit::CliResult;
use crate::input::{self, SecretSource};
use crate::output;

/// An app as `--json` shows it.
#[derive(Debug, Serialize)]
struct AppView<'a> {
    app_id: &'a str,
    name: &'a str,
    approved: bool,
    tokens: i64,
    notes: &'a str,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a App> for AppView<'a> {
    fn from(app: &'a App) -> Self {
        Self {
            app_id: app.app_id.as_str(),
            name: &app.name,
            approved: app.approved,
            tokens: app.token_count,
            notes: &app.notes,
            created_at: output::time(app.created_at),
            updated_at: output::time(app.updated_at),
        }
    }
}

pub async fn run(ctx: &Context, command: AppCommand) -> CliResult<u8> {
    match command {
        AppCommand::Add {
            app_id,
            name,
            secret_file,
            secret_env,
            approved,
            notes,
            json,
        } => {
            let app_id = parse_flag("APP_ID", &app_id, AppId::parse)?;
            let source = SecretSource::from_flags(secret_file.as_deref(), secret_env.as_deref());
            let inventory = ctx.inventory().await?;
            let secret = input::read_secret("app secret", &source)?;
            let app = inventory
                .add_app(
                    NewApp {
                        app_id,
                        name,
                        secret,
                        approved,
                        notes,
                    },
                    &ctx.actor,
                )
                .await?;
            if json {
                output::print_json(&AppView::from(&app))?;
            } else {
                println!("Registered app {} ({}).", app.app_id, app.name);
            }
        }
        AppCommand::List { json } => {
            let apps = ctx.inventory().await?.apps().await?;
            if json {
                let views: Vec<AppView<'_>> = apps.iter().map(AppView::from).collect();
                output::print_json(&views)?;
            } else if apps.is_empty() {
                println!(
                    "No apps yet. Register one with `graphwarden app add APP_ID --name NAME`."
                );
            } else {
                let mut table = output::table(&["APP ID", "NAME", "APPROVED", "TOKENS", "ADDED"]);
                for app in &apps {
                    table.add_row(vec![
                        Cell::new(app.app_id.as_str()),
                        Cell::new(&app.name),
                        Cell::new(if app.approved { "yes" } else { "no" }),
                        Cell::new(app.token_count),
                        Cell::new(output::time(app.created_at)),
                    ]);
                }
                output::print_table(&table);
            }
        }
        AppCommand::Show { app_id, json } => {
            let app_id = parse_flag("APP_ID", &app_id, AppId::parse)?;
            let app = ctx.inventory().await?.app(&app_id).await?;
            if json {
                output::print_json(&AppView::from(&app))?;
            } else {
                let mut table = output::table(&["FIELD", "VALUE"]);
                let view = AppView::from(&app);
                table.add_row(vec!["app_id", view.app_id]);
                table.add_row(vec!["name", view.name]);
                table.add_row(vec!["approved", if view.approved { "yes" } else { "no" }]);
                table.add_row(vec!["tokens".to_owned(), view.tokens.to_string()]);
                table.add_row(vec![
                    "notes",
                    if view.notes.is_empty() {
                        "-"
                    } else {
                        view.notes
                    },
                ]);
                table.add_row(vec!["created_at".to_owned(), view.created_at.clone()]);
                table.add_row(vec!["updated_at".to_owned(), view.updated_at.clone()]);
                output::print_table(&table);
            }
        }
        AppCommand::Remove { app_id, yes } => {
            let app_id = parse_flag("APP_ID", &app_id, AppId::parse)?;
            let inventory = ctx.inventory().await?;
            let app = inventory.app(&app_id).await?;
            if !yes
                && !input::confirm(
                    &format!(
                        "Remove the app {} ({}) and its stored secret?",
                        app.app_id, app.name
                    ),
                    "--yes",
                )?
            {
                println!("Nothing removed.");
                return Ok(0);
            }
            let app = inventory.remove_app(&app_id, &ctx.actor).await?;
            println!("Removed app {} ({}).", app.app_id, app.name);
        }
    }
    Ok(0)
}
