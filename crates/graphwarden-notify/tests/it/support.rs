//! What the tests share: sample notifications, a recording HTTP server that answers as told, free
//! ports, and a guard that kills the services a test starts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use graphwarden_core::alert::{Alert, Labels, Notification, NotifiedAlert};
use jiff::Timestamp;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// 2026-01-01T00:00:00Z.
pub fn start() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

/// A token alert as the engine raises it.
pub fn token_alert(token: &str, starts_at: Timestamp, ends_at: Option<Timestamp>) -> NotifiedAlert {
    NotifiedAlert::from(&Alert {
        labels: labels(&[
            ("alertname", "token_dead"),
            ("severity", "critical"),
            ("token", token),
            ("app_id", "1234567890"),
            ("business_id", "42"),
        ]),
        annotations: labels(&[
            ("summary", &format!("Token {token} is dead")),
            (
                "description",
                "Meta invalidated the token: the user changed their password (code 190/460).",
            ),
            ("action", "Ask the user to log in again."),
            (
                "relogin_url",
                &format!("https://gw.example.com/relogin/{token}"),
            ),
        ]),
        starts_at,
        ends_at,
    })
}

pub fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
    let mut n = Notification::new(
        "ops",
        "{}:{alertname=\"token_dead\"}",
        labels(&[("alertname", "token_dead")]),
        alerts,
    );
    n.external_url = "https://gw.example.com".to_owned();
    n
}

/// One request the recorder saw.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the recorder answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }
}

/// An HTTP server on a free loopback port that records every request and answers with `reply`.
/// Stopped when dropped.
pub struct Recorder {
    pub base: String,
    seen: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start(reply: Reply) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                let reply = reply.clone();
                async move {
                    record.lock().unwrap().push(Captured {
                        method,
                        path: uri.to_string(),
                        headers,
                        body,
                    });
                    tokio::time::sleep(reply.delay).await;
                    let mut headers = HeaderMap::new();
                    for (name, value) in &reply.headers {
                        headers.insert(*name, value.parse().unwrap());
                    }
                    (
                        StatusCode::from_u16(reply.status).unwrap(),
                        headers,
                        reply.body,
                    )
                }
            },
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, seen, task }
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }

    pub fn only_request(&self) -> Captured {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected one request, saw {}", all.len());
        all.into_iter().next().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails the test with the setup instructions when a required program is missing: CI runs
/// `scripts/setup.sh`, so a missing service is a broken machine, not a reason to skip.
pub fn require(path: &str, check: impl FnOnce() -> bool, package: &str) {
    assert!(
        check(),
        "{path} is missing or incomplete: this test needs Debian's `{package}`. \
         Run scripts/setup.sh (or `apt-get install {package}`)."
    );
}

/// A started service: its process is killed when the guard is dropped, pass or fail.
pub struct Service {
    pub name: &'static str,
    pub child: tokio::process::Child,
    pub log: std::path::PathBuf,
}

impl Service {
    /// Waits until `ready` says yes, failing with the service's log if it exits or takes more
    /// than `tries` × 100 ms.
    pub async fn wait_until<F, Fut>(&mut self, tries: u32, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..tries {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            if ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} was not ready after {} ms:\n{}",
            self.name,
            tries * 100,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `command`, its output to `log`, killed on drop.
pub fn spawn(
    name: &'static str,
    mut command: tokio::process::Command,
    log: std::path::PathBuf,
) -> Service {
    let out = std::fs::File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let child = command
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
    Service { name, child, log }
}

/// Whether something accepts connections on `port`.
pub async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}
