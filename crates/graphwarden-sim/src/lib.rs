//! `graphwarden-sim`: a faithful offline Meta Graph API.
//!
//! What lives here: a world model (apps, users, pages, businesses, system users, ad accounts,
//! campaigns, datasets, tokens) loaded from a scenario file; the Graph endpoints graphwarden and
//! its users touch — `debug_token`, OAuth, the login dialog, Page and system-user tokens,
//! permissions, batch, a Marketing API subset, Dataset Quality — with Meta's payload and error
//! shapes (each handler names its section of `meta-graph-reference.md`); rate limits computed
//! from the calls made; and a control API (`/__sim/…`) for the clock, the scenario, account
//! events, faults, the call log and usage.
//!
//! What does not: anything graphwarden itself needs at run time. Tests start it in-process with
//! [`start`]; people run `graphwarden sim`.

pub mod batch;
pub mod control;
pub mod error;
pub mod fault;
pub mod graph;
pub mod marketing;
pub mod paging;
pub mod server;
pub mod sim;
pub mod usage;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use graphwarden_core::Clock;
use jiff::Timestamp;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::GraphError;
pub use sim::{Body, SimClock, SimRequest, SimResponse};
pub use world::World;

use crate::sim::{CallRecord, State, lock};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The world; `None` = [`World::default_world`].
    pub world: Option<World>,
    /// Serve the control API under `/__sim/`.
    pub control: bool,
    /// The base clock: the system clock for people, a `ManualClock` for tests.
    pub clock: Arc<dyn Clock>,
}

/// The simulator: state behind one lock, and the clock.
#[derive(Debug)]
pub struct Simulator {
    state: Mutex<State>,
    clock: SimClock,
    control: bool,
    base_url: Mutex<String>,
    http: reqwest::Client,
}

impl Simulator {
    /// A simulator for `config`; fails when the scenario does not hold together.
    pub fn new(config: SimConfig) -> Result<Arc<Self>, String> {
        let clock = SimClock::new(config.clock);
        let mut world = match config.world {
            Some(world) => world,
            None => World::default_world(clock.now().as_second()),
        };
        if let Some(now) = world.now.take() {
            let at: Timestamp = now
                .parse()
                .map_err(|e| format!("scenario `now` is not an RFC 3339 time: {e}"))?;
            clock.set(at);
        }
        world.normalise(clock.now().as_second())?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            state: Mutex::new(State::new(world)),
            clock,
            control: config.control,
            base_url: Mutex::new(String::new()),
            http,
        }))
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    pub fn control_enabled(&self) -> bool {
        self.control
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().map(|u| u.clone()).unwrap_or_default()
    }

    pub(crate) fn set_base_url(&self, url: String) {
        if let Ok(mut u) = self.base_url.lock() {
            *u = url;
        }
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A copy of the world as it stands.
    pub fn world(&self) -> World {
        self.state().world.clone()
    }

    /// The token string with this label (scenario `label`), if any.
    pub fn token(&self, label: &str) -> Option<String> {
        self.state()
            .world
            .tokens
            .iter()
            .find(|t| t.label == label)
            .map(|t| t.token.clone())
    }

    /// The secret of an app.
    pub fn app_secret(&self, app_id: &str) -> Option<String> {
        self.state().world.app(app_id).map(|a| a.secret.clone())
    }

    /// The call log, oldest first.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.state().calls.iter().cloned().collect()
    }

    /// Apps, secrets and labelled tokens: what `graphwarden sim` prints at start.
    pub fn summary(&self) -> Value {
        let st = self.state();
        let apps: Vec<Value> = st
            .world
            .apps
            .iter()
            .map(|a| json!({ "id": a.id, "name": a.name, "secret": a.secret, "app_token": format!("{}|{}", a.id, a.secret) }))
            .collect();
        let tokens: Vec<Value> = st
            .world
            .tokens
            .iter()
            .filter(|t| !t.label.is_empty())
            .map(|t| {
                json!({
                    "label": t.label,
                    "kind": t.kind,
                    "app_id": t.app_id,
                    "expires_at": t.expires_at,
                    "token": t.token,
                })
            })
            .collect();
        json!({ "url": self.base_url(), "version": st.world.default_version, "apps": apps, "tokens": tokens })
    }

    /// Answer one Graph call (a batch included).
    pub fn handle(&self, req: SimRequest) -> SimResponse {
        if req.method == "POST" && req.path.trim_matches('/').is_empty() {
            return batch::handle(self, &req);
        }
        self.handle_one(req, false)
    }

    pub(crate) fn handle_one(&self, req: SimRequest, in_batch: bool) -> SimResponse {
        let now = self.clock.now();
        let base_url = self.base_url();
        let mut st = self.state();
        let version = req
            .version
            .clone()
            .unwrap_or_else(|| st.world.default_version.clone());
        let mut ctx = graph::Ctx {
            now_ms: now.as_millisecond(),
            now_secs: now.as_second(),
            base_url: &base_url,
            version: version.clone(),
            charged_app: None,
        };
        let outcome = graph::route(&mut st, &mut ctx, &req);
        let trace: String = rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(11)
            .map(char::from)
            .collect();
        let (mut response, code, subcode) = match outcome {
            Ok(r) => (r, None, None),
            Err(e) => {
                let mut headers = e.headers.clone();
                headers.push((
                    "www-authenticate".into(),
                    format!(
                        "OAuth \"Facebook Platform\" \"invalid_request\" \"{}\"",
                        e.message.replace('"', "'")
                    ),
                ));
                (
                    SimResponse {
                        status: e.http_status,
                        body: Body::Json(e.body(&trace)),
                        headers,
                    },
                    Some(e.code),
                    e.subcode,
                )
            }
        };
        response
            .headers
            .push(("facebook-api-version".into(), version.clone()));
        response.headers.push(("x-fb-trace-id".into(), trace));
        let mut params: Vec<String> = req.params.keys().cloned().collect();
        params.sort();
        let record = CallRecord {
            at_ms: ctx.now_ms,
            method: req.method.clone(),
            path: req.path.clone(),
            version: req.version.clone(),
            params,
            status: response.status,
            error_code: code,
            error_subcode: subcode,
            app_id: ctx.charged_app.clone(),
            in_batch,
        };
        st.log_call(record);
        response
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    url: String,
    sim: Arc<Simulator>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: what `graph_url` or `FacebookSession.GRAPH` should be.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    /// Stop accepting and end open connections.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Start a simulator on `listener` (bind port 0 in tests).
pub fn start(config: SimConfig, listener: TcpListener) -> Result<SimHandle, String> {
    let sim = Simulator::new(config)?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener: {e}"))?;
    let url = format!("http://{addr}");
    sim.set_base_url(url.clone());
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(Arc::clone(&sim), listener, rx));
    Ok(SimHandle {
        addr,
        url,
        sim,
        shutdown,
        task,
    })
}
