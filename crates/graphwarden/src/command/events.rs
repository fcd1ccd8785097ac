//! `graphwarden events list|verify|find`: the whole event log, its hash chain, and whether a
//! token was ever stored here (found by its keyed fingerprint, so the log never holds it).

use std::path::Path;

use graphwarden_store::Event;
use serde::Serialize;

use crate::cli::EventsCommand;
use crate::command::Context;
use crate::exit::{CliError, CliResult};
use crate::input::{self, SecretSource};
use crate::output;

pub async fn run(ctx: &Context, command: EventsCommand) -> CliResult<u8> {
    match command {
        EventsCommand::List { limit, json } => {
            if !(1..=10_000).contains(&limit) {
                return Err(CliError::usage("--limit must be between 1 and 10000"));
            }
            let events = ctx.inventory().await?.recent_events(limit).await?;
            print_events(&events, json)?;
            Ok(0)
        }
        EventsCommand::Verify { json } => verify(ctx, json).await,
        EventsCommand::Find { token, json } => find(ctx, &token, json).await,
    }
}

async fn verify(ctx: &Context, json: bool) -> CliResult<u8> {
    let report = ctx.inventory().await?.verify_events().await?;
    if json {
        output::print_json(&report)?;
    } else if report.intact() {
        println!(
            "The event log is intact: {} event(s) chained{}.",
            report.events,
            legacy_note(report.legacy)
        );
        match report.head_event_id {
            Some(id) => println!(
                "Head: event #{id}, hash {}\n(Keep this line somewhere else: a later `verify` whose history does not \
                 pass through it means the database was rolled back.)",
                report.head_hash
            ),
            None => println!("Nothing has been chained yet."),
        }
    } else {
        println!(
            "The event log was TAMPERED WITH: {} problem(s) in {} event(s){}.",
            report.problems.len(),
            report.events,
            legacy_note(report.legacy)
        );
        for problem in &report.problems {
            println!("  - {problem}");
        }
        println!(
            "Restore the database from a backup you trust, and find out who had write access to it."
        );
    }
    Ok(if report.intact() { 0 } else { 1 })
}

fn legacy_note(legacy: i64) -> String {
    if legacy == 0 {
        String::new()
    } else {
        format!(", and {legacy} from before the chain existed (counted, not hashed)")
    }
}

async fn find(ctx: &Context, token: &str, json: bool) -> CliResult<u8> {
    let source = if token == "-" {
        SecretSource::Stdin
    } else {
        SecretSource::File(Path::new(token))
    };
    let secret = input::read_secret("token", &source)?;
    let sighting = ctx.inventory().await?.find_secret(&secret).await?;
    drop(secret);
    if json {
        #[derive(Serialize)]
        struct Found<'a> {
            known: bool,
            fingerprint: &'a str,
            stored_as: Option<&'a str>,
            events: Vec<EventView<'a>>,
        }
        output::print_json(&Found {
            known: sighting.known(),
            fingerprint: &sighting.fingerprint,
            stored_as: sighting.stored_as.as_ref().map(|a| a.as_str()),
            events: sighting.events.iter().map(EventView::from).collect(),
        })?;
    } else if !sighting.known() {
        println!(
            "This token was never stored here (fingerprint {}).",
            sighting.fingerprint
        );
    } else {
        match &sighting.stored_as {
            Some(alias) => println!("This token is stored here as `{alias}`."),
            None => println!("This token was stored here, and is not any more."),
        }
        print_events(&sighting.events, false)?;
    }
    Ok(if sighting.known() { 0 } else { 1 })
}

#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    id: i64,
    at: String,
    actor: &'a str,
    action: &'a str,
    token: Option<&'a str>,
    app: Option<&'a str>,
    detail: &'a serde_json::Value,
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        Self {
            id: e.id,
            at: output::time(e.at),
            actor: &e.actor,
            action: &e.action,
            token: e.token_alias.as_deref(),
            app: e.app_id.as_deref(),
            detail: &e.detail,
        }
    }
}

/// Events as JSON, or as a table with each event's detail as `key=value` pairs
/// ([`Event::detail_text`]).
pub fn print_events(events: &[Event], json: bool) -> CliResult {
    let views: Vec<EventView<'_>> = events.iter().map(EventView::from).collect();
    if json {
        return output::print_json(&views);
    }
    let mut table = output::table(&["#", "AT", "ACTOR", "ACTION", "TOKEN", "DETAIL"]);
    for (e, event) in views.iter().zip(events) {
        let detail = event.detail_text();
        table.add_row(vec![
            e.id.to_string(),
            e.at.clone(),
            e.actor.to_owned(),
            e.action.to_owned(),
            e.token.unwrap_or("").to_owned(),
            detail,
        ]);
    }
    output::print_table(&table);
    Ok(())
}
