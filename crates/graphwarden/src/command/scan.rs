//! `graphwarden scan PATH… [--git] [--no-check] [--json]`: find Meta tokens (`EAA…`), app tokens
//! (`APPID|SECRET`) and app id + secret pairs in files and, with `--git`, in every commit of the
//! repositories the paths are in; match them against the inventory by keyed fingerprint (tokens)
//! or by comparison with the stored app secrets; and say which are live: known tokens are
//! inspected (their status in the inventory follows), unknown ones are asked of `debug_token`
//! with each app the inventory holds. A whole secret is never printed, only its first and last
//! four characters. Exits 1 when anything was found, so it can guard a commit or a CI job.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use comfy_table::Cell;
use graphwarden_core::TokenAlias;
use graphwarden_lifecycle::{Checker, Selection};
use graphwarden_meta::AppCredentials;
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cli::ScanArgs;
use crate::command::Context;
use crate::exit::{self, CliError, CliResult};
use crate::output;

/// Files larger than this are skipped (logs are usually smaller; a dump is not source).
const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Directories never walked into.
const SKIP_DIRS: [&str; 4] = [".git", "target", "node_modules", ".venv"];
/// How many lines around a 32-hex secret an app id may be.
const PAIR_LINES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// A user, Page or system-user token (`EAA…`).
    Token,
    /// An app token `APPID|SECRET`.
    AppToken,
    /// An app secret beside its app id.
    AppSecret,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::AppToken => "app_token",
            Self::AppSecret => "app_secret",
        }
    }
}

struct Hit {
    kind: Kind,
    secret: SecretString,
    app_id: Option<String>,
    /// The file (in a commit: relative to the repository).
    path: String,
    /// The commit, for a line found in history.
    commit: Option<String>,
    line: usize,
}

impl Hit {
    fn location(&self) -> String {
        match &self.commit {
            Some(c) => format!("{c}:{}", self.path),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Finding {
    kind: Kind,
    /// `PATH` or `COMMIT:PATH`.
    location: String,
    line: usize,
    /// The first and last four characters.
    masked: String,
    app_id: Option<String>,
    /// The stored token it is, when the inventory holds it.
    alias: Option<String>,
    /// The secret is one the inventory holds (a token's, or an app's).
    known: bool,
    /// Whether Meta still accepts it; `None` when not asked.
    live: Option<bool>,
    /// The token's status after inspection, or why liveness is not known.
    status: String,
}

#[derive(Debug, Serialize)]
struct Report {
    findings: Vec<Finding>,
    /// Stored tokens revoked by `--revoke`.
    revoked: Vec<String>,
    /// Stored tokens given a fresh secret by `--renew`.
    renewed: Vec<String>,
    files_scanned: usize,
    commits_scanned: usize,
}

struct Patterns {
    token: Regex,
    app_token: Regex,
    hex_secret: Regex,
    app_id: Regex,
}

impl Patterns {
    fn new() -> CliResult<Self> {
        let re = |p: &str| {
            Regex::new(p)
                .map_err(|e| CliError::new(exit::SOFTWARE, format!("scan pattern {p}: {e}")))
        };
        Ok(Self {
            token: re(r"\bEAA[A-Za-z0-9]{32,}")?,
            app_token: re(r"\b(\d{13,17})\|([A-Za-z0-9_\-]{20,})")?,
            hex_secret: re(r"\b[0-9a-f]{32}\b")?,
            app_id: re(r"\b\d{13,17}\b")?,
        })
    }

    /// Scan one document: `(line number, text)` pairs of a file or of a commit's added lines.
    fn scan(&self, path: &str, commit: Option<&str>, lines: &[(usize, &str)], out: &mut Vec<Hit>) {
        for (i, (n, text)) in lines.iter().enumerate() {
            for m in self.token.find_iter(text) {
                out.push(Hit {
                    kind: Kind::Token,
                    secret: SecretString::from(m.as_str().to_owned()),
                    app_id: None,
                    path: path.to_owned(),
                    commit: commit.map(str::to_owned),
                    line: *n,
                });
            }
            for c in self.app_token.captures_iter(text) {
                out.push(Hit {
                    kind: Kind::AppToken,
                    secret: SecretString::from(c[2].to_owned()),
                    app_id: Some(c[1].to_owned()),
                    path: path.to_owned(),
                    commit: commit.map(str::to_owned),
                    line: *n,
                });
            }
            if !text.to_ascii_lowercase().contains("secret") {
                continue;
            }
            for m in self.hex_secret.find_iter(text) {
                // The app id on the same line or within a few lines.
                let from = i.saturating_sub(PAIR_LINES);
                let to = (i + PAIR_LINES + 1).min(lines.len());
                let app_id = lines[from..to]
                    .iter()
                    .find_map(|(_, t)| self.app_id.find(t).map(|a| a.as_str().to_owned()));
                out.push(Hit {
                    kind: Kind::AppSecret,
                    secret: SecretString::from(m.as_str().to_owned()),
                    app_id,
                    path: path.to_owned(),
                    commit: commit.map(str::to_owned),
                    line: *n,
                });
            }
        }
    }
}

fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Every file under `path` worth reading.
fn files(path: &Path, out: &mut Vec<PathBuf>) -> CliResult {
    let meta = std::fs::symlink_metadata(path).map_err(|e| {
        CliError::new(
            exit::NO_INPUT,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    if meta.is_file() {
        out.push(path.to_owned());
    } else if meta.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| CliError::new(exit::IO, format!("cannot list {}: {e}", path.display())))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let p = e.path();
            let skip = e
                .file_name()
                .to_str()
                .is_some_and(|n| SKIP_DIRS.contains(&n));
            if e.file_type().is_ok_and(|t| t.is_dir()) && skip {
                continue;
            }
            // Unreadable entries inside a tree are skipped, not fatal.
            let _ = files(&p, out);
        }
    }
    Ok(())
}

fn scan_files(patterns: &Patterns, paths: &[PathBuf], hits: &mut Vec<Hit>) -> CliResult<usize> {
    let mut all = Vec::new();
    for p in paths {
        files(p, &mut all)?;
    }
    let mut scanned = 0;
    for f in &all {
        if std::fs::metadata(f).is_ok_and(|m| m.len() > MAX_FILE) {
            continue;
        }
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        if bytes.iter().take(8000).any(|b| *b == 0) {
            continue; // binary
        }
        scanned += 1;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<(usize, &str)> = text.lines().enumerate().map(|(i, l)| (i + 1, l)).collect();
        patterns.scan(&f.display().to_string(), None, &lines, hits);
    }
    Ok(scanned)
}

/// The lines each commit added, in every repository the paths are in.
fn scan_git(patterns: &Patterns, paths: &[PathBuf], hits: &mut Vec<Hit>) -> CliResult<usize> {
    let mut tops: Vec<PathBuf> = Vec::new();
    for p in paths {
        let dir = if p.is_dir() {
            p.clone()
        } else {
            p.parent().map(Path::to_owned).unwrap_or_default()
        };
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &dir
            })
            .args(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("--git needs git: {e}")))?;
        if !out.status.success() {
            return Err(CliError::new(
                exit::NO_INPUT,
                format!("{} is not in a git repository", p.display()),
            ));
        }
        let top = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if !tops.contains(&top) {
            tops.push(top);
        }
    }
    let mut commits = 0;
    for top in tops {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&top)
            .args([
                "log",
                "--all",
                "-p",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                "--unified=0",
                "--format=%x00commit %H",
            ])
            .output()
            .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("git log failed: {e}")))?;
        if !out.status.success() {
            // An empty repository has no history to scan.
            continue;
        }
        let log = String::from_utf8_lossy(&out.stdout);
        let mut commit = String::new();
        let mut file = String::new();
        let mut next_line = 0usize;
        let mut doc: Vec<(usize, String)> = Vec::new();
        let flush =
            |commit: &str, file: &str, doc: &mut Vec<(usize, String)>, hits: &mut Vec<Hit>| {
                if !doc.is_empty() {
                    let short: String = commit.chars().take(12).collect();
                    let lines: Vec<(usize, &str)> =
                        doc.iter().map(|(n, t)| (*n, t.as_str())).collect();
                    patterns.scan(file, Some(&short), &lines, hits);
                    doc.clear();
                }
            };
        for line in log.lines() {
            if let Some(sha) = line.strip_prefix("\u{0}commit ") {
                flush(&commit, &file, &mut doc, hits);
                commit = sha.to_owned();
                commits += 1;
            } else if let Some(path) = line.strip_prefix("+++ ") {
                flush(&commit, &file, &mut doc, hits);
                file = path.strip_prefix("b/").unwrap_or(path).to_owned();
            } else if line.starts_with("@@") {
                // `@@ -a,b +c,d @@`: added lines count from c.
                next_line = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix('+'))
                    .and_then(|w| w.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            } else if let Some(added) = line.strip_prefix('+') {
                doc.push((next_line, added.to_owned()));
                next_line += 1;
            }
        }
        flush(&commit, &file, &mut doc, hits);
    }
    Ok(commits)
}

/// The aliases of the stored tokens found live, once each.
fn live_stored(findings: &[Finding]) -> Vec<String> {
    let mut live: Vec<String> = findings
        .iter()
        .filter(|f| f.live == Some(true))
        .filter_map(|f| f.alias.clone())
        .collect();
    live.sort();
    live.dedup();
    live
}

pub async fn run(ctx: &Context, args: ScanArgs) -> CliResult<u8> {
    let patterns = Patterns::new()?;
    let paths: Vec<PathBuf> = args.paths.iter().map(PathBuf::from).collect();
    let mut hits = Vec::new();
    let files_scanned = scan_files(&patterns, &paths, &mut hits)?;
    let commits_scanned = if args.git {
        scan_git(&patterns, &paths, &mut hits)?
    } else {
        0
    };
    // One finding per secret and place; history repeats a line in every commit that moves it.
    let mut seen = std::collections::HashSet::new();
    hits.retain(|h| seen.insert((h.secret.expose_secret().to_owned(), h.path.clone(), h.kind)));

    let inventory = Arc::new(ctx.inventory().await?);
    // What the inventory knows of each distinct secret.
    let mut apps: Vec<(String, SecretString)> = Vec::new();
    for app in inventory.apps().await.map_err(CliError::from)? {
        if let Ok(secret) = inventory.app_secret(&app.app_id).await {
            apps.push((app.app_id.to_string(), secret));
        }
    }
    let mut aliases: HashMap<String, Option<TokenAlias>> = HashMap::new();
    for h in hits.iter().filter(|h| h.kind == Kind::Token) {
        let s = h.secret.expose_secret();
        if aliases.contains_key(s) {
            continue;
        }
        let fingerprint = inventory.token_fingerprint(s).map_err(CliError::from)?;
        let alias = inventory
            .store()
            .token_alias_by_fingerprint(&fingerprint)
            .await
            .map_err(CliError::from)?;
        aliases.insert(s.to_owned(), alias);
    }

    // Liveness: known tokens are inspected (the inventory follows); unknown ones are asked of
    // `debug_token` with each app the inventory holds.
    let mut known_status: HashMap<String, (bool, String)> = HashMap::new();
    let mut unknown_live: HashMap<String, (Option<bool>, Option<String>, String)> = HashMap::new();
    if !args.no_check {
        let known: Vec<TokenAlias> = {
            let mut v: Vec<TokenAlias> = aliases.values().flatten().cloned().collect();
            v.sort();
            v.dedup();
            v
        };
        if !known.is_empty() {
            let checker = Checker::new(
                Arc::clone(&inventory),
                ctx.graph()?,
                Arc::clone(&ctx.clock),
                ctx.check_policy()?,
            );
            checker
                .check(Selection::Aliases(known.clone()), "scan", &|_, _| {})
                .await
                .map_err(|e| CliError::new(exit::UNAVAILABLE, format!("inspection failed: {e}")))?;
            for alias in known {
                if let Ok(t) = inventory.token(&alias).await {
                    let live = matches!(
                        t.status,
                        graphwarden_core::TokenStatus::Valid
                            | graphwarden_core::TokenStatus::Expiring
                    );
                    known_status.insert(alias.to_string(), (live, t.status.as_str().to_owned()));
                }
            }
        }
        let graph = ctx.graph()?;
        for (secret, alias) in &aliases {
            if alias.is_some() {
                continue;
            }
            let input = SecretString::from(secret.clone());
            let mut answer = (
                None,
                None,
                "not issued through an app in the inventory".to_owned(),
            );
            for (app_id, app_secret) in &apps {
                let creds = AppCredentials {
                    app_id: app_id.clone(),
                    secret: app_secret.clone(),
                };
                if let Ok((data, _)) = graph.debug_token(&input, &creds).await
                    && (data.app_id.as_deref() == Some(app_id.as_str()) || data.is_valid)
                {
                    let status = if data.is_valid { "valid" } else { "invalid" };
                    answer = (Some(data.is_valid), data.app_id.clone(), status.to_owned());
                    break;
                }
            }
            unknown_live.insert(secret.clone(), answer);
        }
    }

    let mut findings = Vec::with_capacity(hits.len());
    for h in &hits {
        let s = h.secret.expose_secret();
        let stored_app = |app_id: Option<&str>| {
            apps.iter().find(|(id, secret)| {
                app_id.is_none_or(|a| a == id) && secret.expose_secret().as_bytes() == s.as_bytes()
            })
        };
        let finding = match h.kind {
            Kind::Token => {
                let alias = aliases.get(s).cloned().flatten().map(|a| a.to_string());
                let (live, status, app_id) = match &alias {
                    Some(a) => match known_status.get(a) {
                        Some((live, status)) => (Some(*live), status.clone(), None),
                        None => (None, "not checked".to_owned(), None),
                    },
                    None => match unknown_live.get(s) {
                        Some((live, app, status)) => (*live, status.clone(), app.clone()),
                        None => (None, "not checked".to_owned(), None),
                    },
                };
                Finding {
                    kind: h.kind,
                    location: h.location(),
                    line: h.line,
                    masked: mask(s),
                    app_id,
                    known: alias.is_some(),
                    alias,
                    live,
                    status,
                }
            }
            Kind::AppToken | Kind::AppSecret => {
                let stored = stored_app(h.app_id.as_deref());
                // A 32-hex string near "secret" with no app id nearby is reported only when
                // it is an app secret the inventory holds.
                if h.kind == Kind::AppSecret && h.app_id.is_none() && stored.is_none() {
                    continue;
                }
                Finding {
                    kind: h.kind,
                    location: h.location(),
                    line: h.line,
                    masked: mask(s),
                    app_id: stored
                        .map(|(id, _)| id.clone())
                        .or_else(|| h.app_id.clone()),
                    alias: None,
                    known: stored.is_some(),
                    live: stored.map(|_| true),
                    status: if stored.is_some() {
                        "the app's current secret: reset it in the app dashboard".to_owned()
                    } else {
                        "not an app secret the inventory holds".to_owned()
                    },
                }
            }
        };
        findings.push(finding);
    }

    let mut revoked = Vec::new();
    if args.revoke {
        let live = live_stored(&findings);
        for alias in live {
            let Ok(parsed) = TokenAlias::parse(&alias) else {
                continue;
            };
            let token = inventory.token(&parsed).await.map_err(CliError::from)?;
            match super::revoke::revoke_stored(ctx, &inventory, &token).await {
                Ok(()) => {
                    let now = inventory.token(&parsed).await.map_err(CliError::from)?;
                    eprintln!(
                        "Revoked `{alias}` through Meta; it is now {}.",
                        now.status.as_str()
                    );
                    for f in findings
                        .iter_mut()
                        .filter(|f| f.alias.as_deref() == Some(alias.as_str()))
                    {
                        f.live = Some(false);
                        now.status.as_str().clone_into(&mut f.status);
                    }
                    revoked.push(alias);
                }
                Err(e) => eprintln!("Could not revoke `{alias}`: {}", e.message),
            }
        }
    }

    let mut renewed = Vec::new();
    if args.renew {
        let live = live_stored(&findings);
        let mut tokens = Vec::new();
        for alias in &live {
            if let Ok(parsed) = TokenAlias::parse(alias) {
                tokens.push(inventory.token(&parsed).await.map_err(CliError::from)?);
            }
        }
        if !tokens.is_empty() {
            let renewer = ctx.renewer(Arc::clone(&inventory))?;
            let actor = format!("{} (scan --renew)", ctx.actor);
            let report = renewer
                .renew(tokens, false, true, &actor)
                .await
                .map_err(super::renew::lifecycle_error)?;
            for r in &report.tokens {
                if r.outcome == "renewed" {
                    eprintln!(
                        "Renewed `{}`: consumers fetching it now get a fresh secret. The leaked one \
                         stays valid until it expires or is revoked.",
                        r.alias
                    );
                    renewed.push(r.alias.clone());
                } else {
                    eprintln!(
                        "Could not renew `{}` ({}): {}",
                        r.alias, r.outcome, r.detail
                    );
                }
            }
        }
    }

    let report = Report {
        revoked,
        renewed,
        findings,
        files_scanned,
        commits_scanned,
    };
    if args.json {
        output::print_json(&report)?;
    } else if report.findings.is_empty() {
        println!(
            "No Meta tokens or app secrets found ({} files{}).",
            report.files_scanned,
            if args.git {
                format!(", {} commits", report.commits_scanned)
            } else {
                String::new()
            }
        );
    } else {
        let mut table = output::table(&["KIND", "WHERE", "SECRET", "KNOWN AS", "LIVE", "STATUS"]);
        for f in &report.findings {
            table.add_row(vec![
                Cell::new(f.kind.as_str()),
                Cell::new(format!("{}:{}", f.location, f.line)),
                Cell::new(&f.masked),
                Cell::new(
                    f.alias
                        .clone()
                        .or_else(|| {
                            f.known
                                .then(|| format!("app {}", f.app_id.clone().unwrap_or_default()))
                        })
                        .unwrap_or_else(|| "-".to_owned()),
                ),
                Cell::new(match f.live {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                }),
                Cell::new(&f.status),
            ]);
        }
        output::print_table(&table);
        println!(
            "{} found in {} files{}. Revoke or rotate what is live, then remove it from the files{}.",
            report.findings.len(),
            report.files_scanned,
            if args.git {
                format!(" and {} commits", report.commits_scanned)
            } else {
                String::new()
            },
            if args.git { " and the history" } else { "" }
        );
    }
    Ok(u8::from(!report.findings.is_empty()))
}
