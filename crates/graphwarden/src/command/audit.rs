//! `graphwarden audit [--format table|json|markdown|html] [--output FILE] [--last]`: the security
//! audit (`graphwarden_lifecycle::audit`), stored and compared with the previous one.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use graphwarden_lifecycle::audit::{AuditError, AuditReport, Auditor, Finding, Severity, render};

use crate::cli::AuditArgs;
use crate::command::Context;
use crate::exit::{self, CliError, CliResult};
use crate::output;

pub async fn run(ctx: &Context, args: AuditArgs) -> CliResult<u8> {
    let inventory = Arc::new(ctx.inventory().await?);
    let auditor = Auditor::new(inventory, ctx.audit_policy()?);
    let report = if args.last {
        auditor
            .stored(None)
            .await
            .map_err(audit_error)?
            .ok_or_else(|| {
                CliError::new(
                    exit::NO_INPUT,
                    "no audit has been stored yet; run `graphwarden audit` without --last",
                )
            })?
    } else {
        auditor
            .run(&format!("{} (audit)", ctx.actor))
            .await
            .map_err(audit_error)?
    };
    let text = match args.format.as_str() {
        "json" => serde_json::to_string_pretty(&report)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| CliError::new(exit::SOFTWARE, format!("could not write JSON: {e}")))?,
        "markdown" => render::markdown(&report),
        "html" => render::html(&report),
        _ => table(&report),
    };
    match &args.output {
        Some(path) => {
            write_file(Path::new(path), &text)?;
            println!(
                "Audit #{} written to {path}: {} finding(s), {} new, {} resolved.",
                report.id,
                report.findings.len(),
                report.summary.new,
                report.summary.resolved
            );
        }
        None => print!("{text}"),
    }
    Ok(exit_code(&report))
}

/// 2 with a critical or high finding, 1 with a medium one, else 0 — as `check` does, for cron.
fn exit_code(report: &AuditReport) -> u8 {
    match report.findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical | Severity::High) => 2,
        Some(Severity::Medium) => 1,
        _ => 0,
    }
}

fn audit_error(e: AuditError) -> CliError {
    match e {
        AuditError::Store(s) => CliError::from(s),
        other => CliError::new(exit::DATA, other.to_string()),
    }
}

/// Write next to the target, then rename: a reader never sees half a report.
fn write_file(path: &Path, text: &str) -> CliResult {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |e: std::io::Error| {
        CliError::new(exit::IO, format!("could not write {}: {e}", path.display()))
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::usage(format!("`{}` is not a file name", path.display())))?;
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::File::create(&partial)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(io(e));
    }
    Ok(())
}

fn table(report: &AuditReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let s = &report.summary;
    let _ = writeln!(
        out,
        "Audit #{} at {}: {} critical, {} high, {} medium, {} low, {} info ({} token(s), {} app(s)).",
        report.id,
        output::time(report.at),
        s.critical,
        s.high,
        s.medium,
        s.low,
        s.info,
        s.tokens,
        s.apps
    );
    match report.previous_id {
        Some(id) => {
            let _ = writeln!(
                out,
                "Since audit #{id}: {} new, {} resolved.",
                s.new, s.resolved
            );
        }
        None => out.push_str("The first audit: every finding is new.\n"),
    }
    // A list, not a table: evidence and actions are sentences, too long for columns.
    let rows = |findings: &[Finding], resolved: bool| {
        let mut text = String::new();
        for f in findings {
            let who = f.alias.as_deref().or(f.app_id.as_deref()).unwrap_or("—");
            let tag = match (resolved, f.new) {
                (true, _) => format!("[{} resolved]", f.rule),
                (false, true) => format!("[{} NEW]", f.rule),
                (false, false) => format!("[{}]", f.rule),
            };
            let _ = writeln!(
                text,
                "{:<8} {who}: {} {tag}",
                f.severity.as_str().to_uppercase(),
                f.title
            );
            if !resolved {
                let _ = writeln!(text, "         evidence: {}", f.evidence);
                let _ = writeln!(text, "         action:   {}", f.action);
            }
        }
        text
    };
    if report.findings.is_empty() {
        out.push_str("\nNothing found.\n");
    } else {
        let _ = write!(out, "\n{}", rows(&report.findings, false));
    }
    if !report.resolved.is_empty() {
        let _ = write!(
            out,
            "\nResolved since the previous audit:\n{}",
            rows(&report.resolved, true)
        );
    }
    out
}
