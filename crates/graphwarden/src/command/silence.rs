//! `graphwarden silence add | list | expire`: silences, straight on the database, so they work
//! whether or not a daemon runs; the daemon applies them at its next evaluation.

use comfy_table::Cell;

use crate::cli::SilenceCommand;
use crate::command::Context;
use crate::exit::{CliError, CliResult};
use crate::output;

pub async fn run(ctx: &Context, command: SilenceCommand) -> CliResult<u8> {
    let inventory = ctx.inventory().await?;
    let store = inventory.store();
    let now = ctx.clock.now();
    match command {
        SilenceCommand::Add {
            matchers,
            duration,
            comment,
            json,
        } => {
            let d = graphwarden_core::duration::parse_duration(&duration)
                .map_err(|e| CliError::usage(format!("--duration: {e}")))?;
            let ends_at = now
                .checked_add(d)
                .map_err(|e| CliError::usage(format!("--duration: {e}")))?;
            let silence = graphwarden_server::alerting::new_silence(
                &matchers, now, ends_at, &ctx.actor, &comment,
            )
            .map_err(|e| CliError::usage(e.to_string()))?;
            store.insert_silence(&silence, now.as_millisecond()).await?;
            if json {
                output::print_json(&silence)?;
            } else {
                println!(
                    "Silenced {} until {} (silence {}).",
                    silence.matchers,
                    output::time(silence.ends_at),
                    silence.id
                );
            }
            Ok(0)
        }
        SilenceCommand::List { json } => {
            let all = store.silences().await?;
            if json {
                return output::print_json(&all).map(|()| 0);
            }
            if all.is_empty() {
                println!("No silences.");
                return Ok(0);
            }
            let mut table = output::table(&["ID", "STATE", "MATCHERS", "ENDS", "BY", "COMMENT"]);
            for r in &all {
                let s = &r.silence;
                table.add_row(vec![
                    Cell::new(&s.id),
                    Cell::new(s.state(now).as_str()),
                    Cell::new(s.matchers.to_string()),
                    Cell::new(output::time(s.ends_at)),
                    Cell::new(&s.created_by),
                    Cell::new(&s.comment),
                ]);
            }
            output::print_table(&table);
            Ok(0)
        }
        SilenceCommand::Expire { id } => {
            if !store.expire_silence(&id, now.as_millisecond()).await? {
                return Err(CliError::new(
                    crate::exit::NO_INPUT,
                    format!(
                        "no silence `{id}` that has not ended yet (see `graphwarden silence list`)"
                    ),
                ));
            }
            println!("Silence {id} has ended.");
            Ok(0)
        }
    }
}
