//! An audit report as Markdown (for a ticket or a wiki) or as one self-contained HTML page a
//! person can read and forward: styles inline, no script, nothing fetched.

use graphwarden_core::escape_html as escape;
use std::fmt::Write as _;

use super::{AuditReport, Finding, Severity};

const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Info,
];

fn when(report: &AuditReport) -> String {
    report.at.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn compared(report: &AuditReport) -> String {
    match (report.previous_id, report.previous_at) {
        (Some(id), Some(at)) => format!(
            "Compared with audit #{id} of {}: {} new, {} resolved.",
            at.strftime("%Y-%m-%d %H:%M UTC"),
            report.summary.new,
            report.summary.resolved
        ),
        _ => "The first audit: every finding is new.".to_owned(),
    }
}

fn counts(report: &AuditReport) -> String {
    let s = &report.summary;
    format!(
        "{} critical, {} high, {} medium, {} low, {} info — {} token(s), {} app(s) audited",
        s.critical, s.high, s.medium, s.low, s.info, s.tokens, s.apps
    )
}

/// Markdown, with `|` and line breaks in values escaped so each finding stays one table row.
pub fn markdown(report: &AuditReport) -> String {
    fn cell(text: &str) -> String {
        text.replace('|', "\\|").replace(['\n', '\r'], " ")
    }
    fn row(out: &mut String, f: &Finding) {
        let _ = writeln!(
            out,
            "| {}{} | {} | `{}` | {} | {} | {} | {} |",
            f.severity.as_str(),
            if f.new { " (new)" } else { "" },
            cell(f.alias.as_deref().or(f.app_id.as_deref()).unwrap_or("—")),
            f.rule,
            cell(f.subject.as_deref().unwrap_or("")),
            cell(&f.title),
            cell(&f.evidence),
            cell(&f.action),
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# graphwarden audit #{} — {}\n",
        report.id,
        when(report)
    );
    let _ = writeln!(out, "{}\n\n{}\n", counts(report), compared(report));
    let header = "| Severity | Token or app | Rule | Subject | Finding | Evidence | Action |\n|---|---|---|---|---|---|---|";
    if report.findings.is_empty() {
        out.push_str("## Findings\n\nNothing found.\n");
    } else {
        let _ = writeln!(out, "## Findings\n\n{header}");
        for f in &report.findings {
            row(&mut out, f);
        }
    }
    if !report.resolved.is_empty() {
        let _ = writeln!(out, "\n## Resolved since the previous audit\n\n{header}");
        for f in &report.resolved {
            row(&mut out, f);
        }
    }
    out
}

const STYLE: &str = "
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24;background:#fff}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem}
.meta{color:#454d57}
.counts span{display:inline-block;margin:.25rem .5rem .25rem 0;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
table{border-collapse:collapse;width:100%;margin-top:.5rem}
th,td{text-align:left;vertical-align:top;padding:.45rem .6rem;border-bottom:1px solid #d0d7de}
th{background:#f3f4f6;font-size:.85rem;text-transform:uppercase;letter-spacing:.03em}
code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;padding:.05rem .3rem;border-radius:.25rem}
.sev{font-weight:700;white-space:nowrap;border-radius:.25rem;padding:.1rem .45rem}
.critical{background:#8b0000;color:#fff}.high{background:#c2410c;color:#fff}
.medium{background:#fde68a;color:#3d2c00}.low{background:#dbeafe;color:#0c2d6b}.info{background:#e5e7eb;color:#1f2937}
.new{font-size:.75rem;font-weight:700;color:#8b0000;margin-left:.35rem}
.resolved td{color:#454d57}
";

/// One HTML page, self-contained.
pub fn html(report: &AuditReport) -> String {
    fn rows(out: &mut String, findings: &[Finding]) {
        out.push_str(
            "<table><thead><tr><th>Severity</th><th>Token or app</th><th>Finding</th>\
             <th>Evidence</th><th>Action</th></tr></thead><tbody>\n",
        );
        for f in findings {
            let who = f.alias.as_deref().or(f.app_id.as_deref()).unwrap_or("—");
            let _ = writeln!(
                out,
                "<tr><td><span class=\"sev {sev}\">{sev}</span>{new}</td><td><code>{who}</code></td>\
                 <td><strong>{title}</strong><br><small><code>{rule}</code>{subject}</small></td>\
                 <td>{evidence}</td><td>{action}</td></tr>",
                sev = f.severity.as_str(),
                new = if f.new {
                    "<span class=\"new\">NEW</span>"
                } else {
                    ""
                },
                who = escape(who),
                title = escape(&f.title),
                rule = escape(&f.rule),
                subject = f
                    .subject
                    .as_deref()
                    .map(|s| format!(" · {}", escape(s)))
                    .unwrap_or_default(),
                evidence = escape(&f.evidence),
                action = escape(&f.action),
            );
        }
        out.push_str("</tbody></table>\n");
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>graphwarden audit #{id} — {when}</title><style>{STYLE}</style></head><body>\n\
         <h1>graphwarden audit #{id}</h1><p class=\"meta\">{when}, run by {actor}. {compared}</p>\n<p class=\"counts\">",
        id = report.id,
        when = escape(&when(report)),
        actor = escape(&report.actor),
        compared = escape(&compared(report)),
    );
    for s in SEVERITIES {
        let n = report.findings.iter().filter(|f| f.severity == s).count();
        let _ = write!(
            out,
            "<span class=\"{cls}\">{n} {cls}</span>",
            cls = s.as_str()
        );
    }
    let _ = writeln!(
        out,
        "</p><p class=\"meta\">{} token(s) and {} app(s) audited.</p>",
        report.summary.tokens, report.summary.apps
    );
    out.push_str("<h2>Findings</h2>\n");
    if report.findings.is_empty() {
        out.push_str("<p>Nothing found.</p>\n");
    } else {
        rows(&mut out, &report.findings);
    }
    if !report.resolved.is_empty() {
        out.push_str("<h2>Resolved since the previous audit</h2>\n<div class=\"resolved\">");
        rows(&mut out, &report.resolved);
        out.push_str("</div>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditSummary;

    fn report(title: &str) -> AuditReport {
        AuditReport {
            id: 3,
            at: "2026-12-01T12:00:00Z".parse().unwrap(),
            actor: "cli:<ops>".into(),
            previous_id: None,
            previous_at: None,
            summary: AuditSummary::default(),
            findings: vec![Finding {
                rule: "no_purpose".into(),
                severity: Severity::Low,
                alias: Some("t".into()),
                app_id: None,
                subject: Some("purpose".into()),
                title: title.into(),
                evidence: "line one\nline two".into(),
                action: "act".into(),
                new: true,
            }],
            resolved: Vec::new(),
        }
    }

    #[test]
    fn markdown_keeps_each_finding_on_one_row() {
        let md = markdown(&report("a | b"));
        let row = md.lines().find(|l| l.starts_with("| low")).unwrap();
        assert!(
            row.contains("a \\| b") && row.contains("line one line two"),
            "{row}"
        );
        assert!(row.starts_with("| low (new) | t |"));
    }

    #[test]
    fn html_escapes_everything_it_is_given() {
        let html = html(&report("<script>alert(1)</script>"));
        assert!(!html.contains("<script"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("cli:&lt;ops&gt;"));
    }
}
