//! `graphwarden key rotate|status`.

use comfy_table::Cell;
use graphwarden_store::RotateOptions;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::KeyCommand;
use crate::command::Context;
use crate::exit::CliResult;
use crate::output;

pub async fn run(ctx: &Context, command: KeyCommand) -> CliResult<u8> {
    let inventory = ctx.inventory().await?;
    match command {
        KeyCommand::Rotate { batch_size, json } => {
            // indicatif draws nothing when standard error is not a terminal.
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} secrets")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message("Re-encrypting");
            let progress = |done: usize, total: usize| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let options = RotateOptions {
                batch_size,
                stop_after: None,
            };
            let report = inventory
                .rotate_data_key_with_progress(&options, &ctx.actor, &progress)
                .await?;
            bar.finish_and_clear();
            if json {
                output::print_json(&report)?;
            } else {
                let verb = if report.resumed {
                    "Finished the interrupted rotation to"
                } else {
                    "Rotated to"
                };
                println!(
                    "{verb} data key {}: re-encrypted {} secret(s).",
                    report.version, report.resealed
                );
                if !report.deleted_keys.is_empty() {
                    let versions: Vec<String> =
                        report.deleted_keys.iter().map(i64::to_string).collect();
                    println!("Destroyed retired data key(s) {}.", versions.join(", "));
                }
            }
        }
        KeyCommand::Status { json } => {
            let usage = inventory.key_usage().await?;
            if json {
                output::print_json(&usage)?;
            } else {
                let mut table = output::table(&["VERSION", "STATE", "CREATED", "SECRETS"]);
                for key in &usage {
                    table.add_row(vec![
                        Cell::new(key.version),
                        Cell::new(key.state.as_str()),
                        Cell::new(output::time(key.created_at)),
                        Cell::new(key.secrets),
                    ]);
                }
                output::print_table(&table);
                if usage.len() > 1 {
                    println!(
                        "Some secrets are still on retired keys: run `graphwarden key rotate` to finish."
                    );
                }
            }
        }
    }
    Ok(0)
}
