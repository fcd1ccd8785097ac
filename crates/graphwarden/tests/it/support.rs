//! A harness that runs the binary in a private data directory with a clean environment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const APP_ID: &str = "1234567890";
pub const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Both streams, for snapshots: `stdout`, then `stderr` if any, prefixed with the exit code.
    pub fn transcript(&self) -> String {
        let mut out = format!("exit: {}\n{}", self.code, self.stdout);
        if !self.stderr.is_empty() {
            out.push_str("--- stderr ---\n");
            out.push_str(&self.stderr);
        }
        out
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\n{}", self.transcript());
        self
    }
}

#[derive(Debug)]
pub struct Gw {
    _root: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Gw {
    /// A fresh, not yet initialised data directory.
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        Self {
            _root: root,
            data_dir,
            env: Vec::new(),
        }
    }

    /// Initialised, with the test app registered.
    pub fn with_app() -> Self {
        let gw = Self::new();
        gw.run(&["init"]).ok();
        gw.run_with_stdin(
            &["app", "add", APP_ID, "--name", "Acme Ads", "--approved"],
            APP_SECRET,
        )
        .ok();
        gw
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphwarden"));
        // Nothing from the developer's own environment leaks in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GRAPHWARDEN_") {
                cmd.env_remove(key);
            }
        }
        // No test ever reaches out to Meta: an address that refuses at once, unless a test
        // points graph_url at a simulator.
        cmd.env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("GRAPHWARDEN_GRAPH_URL", "http://127.0.0.1:1")
            .env("GRAPHWARDEN_GRAPH__RETRIES", "0");
        cmd.arg("--data-dir").arg(&self.data_dir);
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with_stdin_bytes(args, stdin.as_bytes())
    }

    pub fn run_with_stdin_bytes(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut input = child.stdin.take().unwrap();
            // The command may stop reading early (e.g. on a usage error): that is fine.
            let _ = input.write_all(stdin);
        }
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    pub fn add_token(&self, alias: &str, secret: &str, extra: &[&str]) -> Output {
        let mut args = vec!["token", "add", alias, "--app", APP_ID];
        args.extend_from_slice(extra);
        self.run_with_stdin(&args, secret)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("graphwarden.db")
    }

    /// Every file in the data directory except the key, concatenated.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("graphwarden.db"))
            {
                // The `-wal` and `-shm` files may vanish as the last connection closes.
                all.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
        all
    }

    /// Every row of every table, as text: what the database holds, independent of how SQLite
    /// lays it out in its files (opening a WAL database may checkpoint without changing data).
    pub fn logical_dump(&self) -> String {
        use sqlx::{Connection, Row};
        let url = format!("sqlite://{}", self.db_path().display());
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let tables: Vec<(String,)> =
                sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
            let mut out = String::new();
            for (table,) in tables {
                let columns = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                let names: Vec<String> = columns
                    .iter()
                    .map(|c| format!("quote(\"{}\")", c.get::<String, _>("name")))
                    .collect();
                let rows: Vec<(String,)> = sqlx::query_as(&format!(
                    "SELECT {} FROM \"{table}\" ORDER BY rowid",
                    names.join(" || '|' || ")
                ))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
                out.push_str(&format!("## {table}\n"));
                for (row,) in rows {
                    out.push_str(&row);
                    out.push('\n');
                }
            }
            out
        })
    }

    pub fn token_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.run(&["token", "list", "--json"]).ok().stdout).unwrap()
    }
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Snapshot settings: times and the temporary directory replaced by stable placeholders.
#[macro_export]
macro_rules! assert_cli_snapshot {
    ($gw:expr, $name:expr, $value:expr) => {{
        let data_dir = $gw.data_dir.display().to_string();
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&$crate::support::regex_escape(&data_dir), "[DATA_DIR]");
        settings.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[TIME]");
        settings.add_filter(
            r"expires_in_seconds.: -?\d+",
            "expires_in_seconds\": [SECONDS]",
        );
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn fake_token() -> String {
    graphwarden_testkit::fake_token()
}

/// Stop a `graphwarden serve` child as an init system would (SIGTERM), wait up to 20 s, and
/// return its exit status and everything it wrote to standard error.
pub fn terminate(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut waited = std::time::Duration::ZERO;
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(
            waited < std::time::Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += std::time::Duration::from_millis(100);
    };
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut log).unwrap();
    }
    (code, log)
}
