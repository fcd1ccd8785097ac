//! `graphwarden key rotate|status`.

use comfy_table::Cell;
use graphwarden_store::{MasterKey, RotateOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::KeyCommand;
use crate::command::Context;
use crate::exit::{self, CliError, CliResult};
use crate::output;

pub async fn run(ctx: &Context, command: KeyCommand) -> CliResult<u8> {
    let next_was_pending = ctx.next_key_file().exists();
    let inventory = ctx.inventory().await?;
    match command {
        KeyCommand::RotateMaster { json } => {
            let next_path = ctx.next_key_file();
            if next_was_pending && !next_path.exists() {
                // Opening the inventory found the interrupted rotation had committed, and
                // finished it: that was the rotation asked for.
                println!(
                    "Finished the interrupted master key rotation; the new key is in {}. Copy it to every other instance that shares this database.",
                    ctx.loaded.key_file().display()
                );
                return Ok(0);
            }
            // A `.next` key from an interrupted run is reused: the database may be about to be,
            // or already be, wrapped under it.
            let next = if next_path.exists() {
                MasterKey::load_file(&next_path, ctx.loaded.config.key.allow_insecure_permissions)?
            } else {
                let key = MasterKey::generate();
                key.write_new_file(&next_path)?;
                key
            };
            let data_keys = inventory.rewrap_master_key(&next, &ctx.actor).await?;
            promote_next_key(ctx)?;
            let key_file = ctx.loaded.key_file();
            if json {
                output::print_json(&serde_json::json!({
                    "key_file": key_file.display().to_string(),
                    "data_keys_rewrapped": data_keys,
                }))?;
            } else {
                println!(
                    "Rotated the master key: re-wrapped {data_keys} data key(s); the new key is in {}.",
                    key_file.display()
                );
                println!(
                    "Back it up, and copy it to every other instance that shares this database: the old key no longer opens it."
                );
            }
        }
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

/// Move the `.next` key over the key file (an atomic rename), and make it durable.
pub fn promote_next_key(ctx: &Context) -> CliResult {
    let key_file = ctx.loaded.key_file();
    let next = ctx.next_key_file();
    std::fs::rename(&next, &key_file).map_err(|e| {
        CliError::new(
            exit::IO,
            format!(
                "the database now uses the key in {}, but moving it to {} failed ({e}); move it by hand",
                next.display(),
                key_file.display()
            ),
        )
    })?;
    if let Some(dir) = key_file.parent()
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}
