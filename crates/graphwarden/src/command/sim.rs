//! `graphwarden sim`: the offline Graph API simulator, for tests, the demo, and anyone who
//! wants to exercise their Meta integration without a live app.

use std::io::Write;
use std::sync::Arc;

use graphwarden_core::SystemClock;
use graphwarden_sim::{SimConfig, World};

use crate::cli::SimArgs;
use crate::exit::{self, CliError, CliResult};

pub async fn run(args: SimArgs) -> CliResult<u8> {
    let world = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    exit::NO_INPUT
                } else {
                    exit::IO
                };
                CliError::new(
                    code,
                    format!("could not read the scenario {}: {e}", path.display()),
                )
            })?;
            Some(
                World::parse(&text)
                    .map_err(|e| CliError::new(exit::DATA, format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| {
            CliError::new(
                exit::UNAVAILABLE,
                format!("could not listen on {}: {e}", args.listen),
            )
        })?;
    let config = SimConfig {
        world,
        control: args.control,
        clock: Arc::new(SystemClock),
    };
    let handle =
        graphwarden_sim::start(config, listener).map_err(|e| CliError::new(exit::DATA, e))?;
    let summary = handle.simulator().summary();
    if args.json {
        println!("{summary}");
    } else {
        print_summary(&summary, args.control);
    }
    let _ = std::io::stdout().flush();
    wait_for_shutdown().await;
    handle.stop().await;
    Ok(0)
}

fn print_summary(summary: &serde_json::Value, control: bool) {
    let url = summary["url"].as_str().unwrap_or("");
    println!(
        "graphwarden sim: a simulated Meta Graph API on {url} (serving {})",
        summary["version"].as_str().unwrap_or("")
    );
    if control {
        println!("Control API: {url}/__sim/ (clock, scenario, events, faults, calls, usage)");
    }
    for app in summary["apps"].as_array().into_iter().flatten() {
        println!();
        println!(
            "App {} \"{}\"",
            app["id"].as_str().unwrap_or(""),
            app["name"].as_str().unwrap_or("")
        );
        println!("  secret     {}", app["secret"].as_str().unwrap_or(""));
        println!("  app token  {}", app["app_token"].as_str().unwrap_or(""));
    }
    println!();
    println!("Tokens:");
    for t in summary["tokens"].as_array().into_iter().flatten() {
        let expires = match t["expires_at"].as_i64() {
            Some(0) | None => "never expires".to_owned(),
            Some(s) => jiff::Timestamp::from_second(s)
                .map(|ts| format!("expires {}", ts.strftime("%Y-%m-%dT%H:%M:%SZ")))
                .unwrap_or_default(),
        };
        println!(
            "  {:<20} {:<12} {:<26} {}",
            t["label"].as_str().unwrap_or(""),
            t["kind"].as_str().unwrap_or(""),
            expires,
            t["token"].as_str().unwrap_or("")
        );
    }
    println!();
    println!("Point a client at {url} instead of https://graph.facebook.com. Ctrl-C stops it.");
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
