//! Debian's real `prometheus` scrapes the daemon's `/metrics` and answers a query with the
//! proxy's call counter, labelled as graphwarden wrote it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::spawn;

const PROMETHEUS: &str = "/usr/bin/prometheus";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_metrics_and_queries_a_series_back() {
    if !std::path::Path::new(PROMETHEUS).is_file() {
        if std::env::var_os("CI").is_some() {
            panic!("no {PROMETHEUS}: run scripts/setup.sh (installs Debian's prometheus)");
        }
        eprintln!("\n*** SKIPPED: no {PROMETHEUS}; run scripts/setup.sh ***\n");
        return;
    }
    let d = spawn(Default::default()).await;
    let p = d.proxy(|_| {}).await;
    let bot = d.sim.simulator().token("bot-never-expires").unwrap();
    for _ in 0..3 {
        let r = d
            .http
            .get(format!("{}/v26.0/me?access_token={bot}", p.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let dir = tempfile::tempdir().unwrap();
    let target = d.url.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: graphwarden\n    \
             scrape_interval: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Running(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let query = format!("http://127.0.0.1:{port}/api/v1/query");
    let mut last = Value::Null;
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(r) = d
            .http
            .get(&query)
            .query(&[("query", "graphwarden_proxy_calls_total{token=\"bot\"}")])
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = r.json::<Value>().await else {
            continue;
        };
        last = body.clone();
        let Some(series) = body["data"]["result"]
            .as_array()
            .and_then(|r| r.first())
            .cloned()
        else {
            continue;
        };
        assert_eq!(series["metric"]["outcome"], "forwarded");
        assert_eq!(series["metric"]["class"], "ok");
        assert_eq!(series["metric"]["method"], "GET");
        assert_eq!(series["value"][1], "3");
        // The scrape parsed whole: token status is there too.
        let status: Value = d
            .http
            .get(&query)
            .query(&[("query", "graphwarden_token_status{token=\"ana\"}")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["data"]["result"][0]["value"][1], "1", "{status}");
        p.stop().await;
        return;
    }
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    panic!("Prometheus never had the series; last answer {last}\n{log}");
}
