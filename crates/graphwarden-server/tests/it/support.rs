//! A running daemon for tests: SQLite store, the simulator as Meta, a `ManualClock`, the API on
//! a free port, and one key per role.

use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, Role, TokenAlias, TokenKind};
use graphwarden_lifecycle::{CheckPolicy, Checker, RenewPolicy, Renewer};
use graphwarden_meta::{GraphClient, GraphConfig};
use graphwarden_server::{
    AppState, JobKind, JobSpec, Scheduler, SchedulerConfig, ServerConfig, Services,
};
use graphwarden_sim::world::ids;
use graphwarden_sim::{SimConfig, SimHandle, World};
use graphwarden_store::{Inventory, NewApp, NewToken};
use graphwarden_testkit::TestStore;
use jiff::SignedDuration;
use secrecy::{ExposeSecret, SecretString};

pub struct Daemon {
    pub store: TestStore,
    pub inventory: Arc<Inventory>,
    pub sim: SimHandle,
    pub scheduler: Scheduler,
    pub url: String,
    pub keys: std::collections::HashMap<&'static str, String>,
    pub http: reqwest::Client,
    pub alerts: graphwarden_server::AlertEngine,
    pub clock: graphwarden_testkit::ManualClock,
    pub state: AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A Graph proxy running in front of the daemon's simulator.
pub struct ProxyHandle {
    pub url: String,
    pub proxy: Arc<graphwarden_server::Proxy>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// Stop it as SIGTERM would, and wait until its records are written.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

pub fn job(name: &str, kind: JobKind, schedule: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        kind,
        schedule: schedule.into(),
        timezone: "UTC".into(),
    }
}

pub async fn scheduler_for(
    inventory: &Arc<Inventory>,
    graph: &GraphClient,
    clock: &graphwarden_testkit::ManualClock,
    jobs: Vec<JobSpec>,
    owner: &str,
) -> Scheduler {
    scheduler_with(inventory, graph, clock, jobs, owner, Vec::new()).await
}

/// [`scheduler_for`] with datasets for `quality` jobs.
pub async fn scheduler_with(
    inventory: &Arc<Inventory>,
    graph: &GraphClient,
    clock: &graphwarden_testkit::ManualClock,
    jobs: Vec<JobSpec>,
    owner: &str,
    datasets: Vec<graphwarden_server::DatasetSpec>,
) -> Scheduler {
    let clock: Arc<dyn graphwarden_core::Clock> = Arc::new(clock.clone());
    let checker = Checker::new(
        Arc::clone(inventory),
        graph.clone(),
        Arc::clone(&clock),
        CheckPolicy::default(),
    );
    let renewer = Renewer::new(
        Arc::clone(inventory),
        graph.clone(),
        Arc::clone(&clock),
        RenewPolicy::default(),
        SignedDuration::from_hours(24 * 7),
        owner.to_owned(),
    );
    Scheduler::new(
        Arc::clone(inventory),
        checker,
        renewer,
        clock,
        SchedulerConfig {
            jobs,
            jitter: Duration::ZERO,
            owner: owner.to_owned(),
            datasets,
            ..SchedulerConfig::default()
        },
    )
    .unwrap()
}

pub async fn spawn(config: ServerConfig) -> Daemon {
    spawn_with_alerts(config, |_| {}).await
}

/// A daemon whose alert engine is configured by `alerting` (everything to the log receiver
/// before it), with the API's URL as the base of re-login links.
pub async fn spawn_with_alerts(
    config: ServerConfig,
    alerting: impl FnOnce(&mut graphwarden_server::AlertingConfig),
) -> Daemon {
    let store = TestStore::sqlite();
    let clock = store.clock.clone();
    // The API's address first, so the simulated app can call its callbacks there.
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", api_listener.local_addr().unwrap());
    let mut world = World::default_world(graphwarden_core::Clock::now(&clock).as_second());
    for app in &mut world.apps {
        app.deauthorize_callback_url = Some(format!("{url}/meta/deauthorize/{}", app.id));
        app.data_deletion_callback_url = Some(format!("{url}/meta/data-deletion/{}", app.id));
        app.redirect_uris.push(format!("{url}/oauth/callback"));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = graphwarden_sim::start(
        SimConfig {
            world: Some(world),
            control: true,
            clock: Arc::new(clock.clone()),
        },
        listener,
    )
    .unwrap();
    let inventory = Arc::new(store.initialize().await);
    inventory
        .add_app(
            NewApp {
                app_id: AppId::parse(ids::APP).unwrap(),
                name: "sim".into(),
                secret: SecretString::from(sim.simulator().app_secret(ids::APP).unwrap()),
                approved: true,
                notes: String::new(),
            },
            "test",
        )
        .await
        .unwrap();
    for (alias, label, kind) in [
        ("ana", "ana-long-lived", TokenKind::User),
        ("bot", "bot-never-expires", TokenKind::SystemUser),
    ] {
        inventory
            .add_token(
                NewToken {
                    alias: TokenAlias::parse(alias).unwrap(),
                    kind,
                    app_id: AppId::parse(ids::APP).unwrap(),
                    secret: SecretString::from(sim.simulator().token(label).unwrap()),
                    meta_user_id: None,
                    page_id: None,
                    business_id: None,
                    parent: None,
                    owner: "ops@example.com".into(),
                    requested_by: String::new(),
                    purpose: "reporting".into(),
                    scopes_needed: vec![],
                    tags: vec![],
                },
                "test",
            )
            .await
            .unwrap();
    }
    let graph = GraphClient::new(
        GraphConfig {
            base_url: sim.url().to_owned(),
            timeout: Duration::from_secs(5),
            retries: 1,
            ..GraphConfig::default()
        },
        Arc::new(clock.clone()),
    )
    .unwrap();
    let scheduler = scheduler_for(
        &inventory,
        &graph,
        &clock,
        vec![
            job("inspect", JobKind::Inspect, "0 */6 * * *"),
            job("renew", JobKind::Renew, "0 8 * * *"),
            job("prune", JobKind::Prune, "30 3 * * *"),
        ],
        "test-daemon",
    )
    .await;
    scheduler.register().await.unwrap();
    let clock_dyn: Arc<dyn graphwarden_core::Clock> = Arc::new(clock.clone());
    let mut alert_config = graphwarden_server::AlertingConfig::new(&url).unwrap();
    alerting(&mut alert_config);
    alert_config.validate().unwrap();
    let alerts = graphwarden_server::AlertEngine::start(
        Arc::clone(&inventory),
        Arc::clone(&clock_dyn),
        alert_config,
    )
    .await
    .unwrap();
    let state = AppState::new(
        Services {
            inventory: Arc::clone(&inventory),
            graph: graph.clone(),
            checker: Checker::new(
                Arc::clone(&inventory),
                graph.clone(),
                Arc::clone(&clock_dyn),
                CheckPolicy::default(),
            ),
            renewer: Renewer::new(
                Arc::clone(&inventory),
                graph.clone(),
                Arc::clone(&clock_dyn),
                RenewPolicy::default(),
                SignedDuration::from_hours(24 * 7),
                "test-api".into(),
            ),
            clock: clock_dyn,
            scheduler: scheduler.clone(),
            alerts: Some(alerts.clone()),
        },
        config,
    );
    let mut keys = std::collections::HashMap::new();
    for (name, role, aliases) in [
        ("admin", Role::Admin, vec![]),
        ("operator", Role::Operator, vec![]),
        ("reader", Role::Reader, vec![]),
        (
            "consumer",
            Role::Consumer,
            vec![TokenAlias::parse("ana").unwrap()],
        ),
    ] {
        let (_, secret) = inventory
            .create_api_key(name, role, aliases, "test")
            .await
            .unwrap();
        keys.insert(name, secret.expose_secret().to_owned());
    }
    let listener = api_listener;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(graphwarden_server::launch_with_listener(
        state.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    Daemon {
        store,
        inventory,
        sim,
        scheduler,
        url,
        keys,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        alerts,
        clock,
        state,
        _stop: stop,
    }
}

impl Daemon {
    /// Start a proxy to the simulator, with `configure` applied to test-friendly settings.
    pub async fn proxy(
        &self,
        configure: impl FnOnce(&mut graphwarden_server::ProxyConfig),
    ) -> ProxyHandle {
        let mut config = graphwarden_server::ProxyConfig {
            upstream: self.sim.url().to_owned(),
            max_wait: Duration::from_millis(500),
            upstream_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            // One instance unless a test runs two (`pacing_sync` then shares their pacing).
            pacing_sync: Duration::ZERO,
            ..graphwarden_server::ProxyConfig::default()
        };
        config.pacing.max_spacing = Duration::from_millis(20);
        configure(&mut config);
        let proxy = graphwarden_server::Proxy::new(self.state.clone(), config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(Arc::clone(&proxy).serve(
            listener,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));
        ProxyHandle {
            url,
            proxy,
            stop,
            task,
        }
    }

    pub async fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.http
            .post(format!("{}/__sim{path}", self.sim.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Inspect every token through the API (so the inventory knows each token's Meta user).
    pub async fn check(&self) {
        let r = self
            .request("post", "/api/v1/checks", Some("operator"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// A GET's JSON answer.
    pub async fn get_json(&self, path: &str, role: &str) -> serde_json::Value {
        self.request("get", path, Some(role))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn key(&self, role: &str) -> &str {
        &self.keys[role]
    }

    pub fn request(&self, method: &str, path: &str, role: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(
            reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
            format!("{}{path}", self.url),
        );
        match role {
            Some(role) => r.bearer_auth(self.key(role)),
            None => r,
        }
    }
}
