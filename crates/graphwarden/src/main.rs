//! The `graphwarden` binary: command-line parsing, configuration loading, and the commands.
//!
//! What lives here: turning arguments and configuration into calls on the library crates, and
//! their results into tables, JSON and exit codes. What does not: business logic, SQL, crypto.

mod cli;
mod command;
mod config;
mod exit;
mod input;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the proxy allocates and frees small buffers on every call,
/// and call records are made on the proxy's threads and freed on the writer's, which glibc's
/// per-thread arenas handle with locks and consolidation (see BENCHMARKS.md, run 10).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let _ = err.print();
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::from(exit::USAGE),
                _ => ExitCode::from(exit::USAGE),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(exit::SOFTWARE);
        }
    };
    let result = runtime.block_on(command::run(cli));
    // Close what is left promptly; nothing long-running outlives a CLI command.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", err.one_line());
            ExitCode::from(err.code)
        }
    }
}
