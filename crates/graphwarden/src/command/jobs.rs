//! `graphwarden jobs [run NAME | runs NAME]`: the scheduler's jobs, seen and run from the
//! command line. `run` works here, in this process, and is recorded like a scheduled run; it
//! refuses while another process (a daemon) is running the same job.

use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_server::scheduler::ScheduleError;

use crate::cli::{JobsArgs, JobsCommand};
use crate::command::Context;
use crate::exit::{CliError, CliResult};
use crate::output;

fn schedule_error(e: ScheduleError) -> CliError {
    match e {
        ScheduleError::UnknownJob(_) => CliError::new(crate::exit::NO_INPUT, e.to_string()),
        ScheduleError::Busy(_) => CliError::new(crate::exit::TEMP_FAIL, e.to_string()),
        ScheduleError::Store(s) => CliError::from(s),
        other => CliError::config(other.to_string()),
    }
}

fn print_runs(runs: &[graphwarden_store::JobRun]) {
    let mut table = output::table(&[
        "RUN", "JOB", "TRIGGER", "STARTED", "FINISHED", "OUTCOME", "SUMMARY",
    ]);
    for r in runs {
        table.add_row(vec![
            Cell::new(r.id),
            Cell::new(&r.job),
            Cell::new(&r.trigger),
            Cell::new(output::time(r.started_at)),
            Cell::new(r.finished_at.map(output::time).unwrap_or_default()),
            Cell::new(&r.outcome),
            Cell::new(&r.summary),
        ]);
    }
    output::print_table(&table);
}

pub async fn run(ctx: &Context, args: JobsArgs) -> CliResult<u8> {
    let inventory = Arc::new(ctx.inventory().await?);
    let owner = format!("{}:{}", ctx.actor, std::process::id());
    let scheduler = ctx.scheduler(inventory, &owner)?;
    scheduler.register().await.map_err(schedule_error)?;
    match args.command {
        None => {
            let jobs = scheduler.jobs().await?;
            if args.json {
                return output::print_json(&jobs).map(|()| 0);
            }
            if jobs.is_empty() {
                println!("No jobs are enabled (see `[scheduler.jobs]` in the configuration).");
                return Ok(0);
            }
            let mut table = output::table(&[
                "JOB", "KIND", "SCHEDULE", "NEXT RUN", "LAST RUN", "OUTCOME", "SUMMARY",
            ]);
            for j in &jobs {
                let kind = serde_json::to_value(j.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                table.add_row(vec![
                    Cell::new(&j.name),
                    Cell::new(kind),
                    Cell::new(format!("{} ({})", j.schedule, j.timezone)),
                    Cell::new(j.next_run_at.map(output::time).unwrap_or_default()),
                    Cell::new(
                        j.last_run
                            .as_ref()
                            .map(|r| output::time(r.started_at))
                            .unwrap_or_default(),
                    ),
                    Cell::new(match (&j.running_on, &j.last_run) {
                        (Some(on), _) => format!("running on {on}"),
                        (None, Some(r)) => r.outcome.clone(),
                        (None, None) => "never run".to_owned(),
                    }),
                    Cell::new(
                        j.last_run
                            .as_ref()
                            .map(|r| r.summary.clone())
                            .unwrap_or_default(),
                    ),
                ]);
            }
            output::print_table(&table);
            Ok(0)
        }
        Some(JobsCommand::Run { name, json }) => {
            let id = scheduler.run_now(&name).await.map_err(schedule_error)?;
            if !json {
                eprintln!("Running `{name}` (run {id})…");
            }
            scheduler.wait_idle().await;
            let run = scheduler
                .runs(Some(&name), 1)
                .await?
                .into_iter()
                .find(|r| r.id == id)
                .ok_or_else(|| CliError::new(crate::exit::SOFTWARE, "the run's record vanished"))?;
            if json {
                output::print_json(&run)?;
            } else {
                println!("`{name}`: {} — {}", run.outcome, run.summary);
            }
            Ok(match run.outcome.as_str() {
                "ok" => 0,
                "warning" => 1,
                _ => 2,
            })
        }
        Some(JobsCommand::Runs { name, limit, json }) => {
            if !scheduler.has_job(&name) {
                return Err(schedule_error(ScheduleError::UnknownJob(name)));
            }
            let runs = scheduler.runs(Some(&name), limit.clamp(1, 1000)).await?;
            if json {
                output::print_json(&runs)?;
            } else if runs.is_empty() {
                println!("`{name}` has not run yet.");
            } else {
                print_runs(&runs);
            }
            Ok(0)
        }
    }
}
