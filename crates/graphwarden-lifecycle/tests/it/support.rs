use std::sync::Arc;
use std::time::Duration;

use graphwarden_core::{AppId, TokenAlias, TokenKind};
use graphwarden_lifecycle::{CheckPolicy, Checker, RenewPolicy, Renewer};
use graphwarden_meta::{GraphClient, GraphConfig};
use graphwarden_sim::world::ids;
use graphwarden_sim::{SimConfig, SimHandle, World};
use graphwarden_store::{Inventory, NewApp, NewToken, Token};
use graphwarden_testkit::TestStore;
use jiff::SignedDuration;
use secrecy::SecretString;
use serde_json::Value;

pub struct World2 {
    pub store: TestStore,
    pub inventory: Arc<Inventory>,
    pub sim: SimHandle,
    pub graph: GraphClient,
}

pub async fn setup(change: impl FnOnce(&mut World)) -> World2 {
    let store = TestStore::sqlite();
    let clock = store.clock.clone();
    let mut world = World::default_world(graphwarden_core::Clock::now(&clock).as_second());
    change(&mut world);
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
    let graph = GraphClient::new(
        GraphConfig {
            base_url: sim.url().to_owned(),
            timeout: Duration::from_secs(5),
            retries: 1,
            ..GraphConfig::default()
        },
        Arc::new(clock),
    )
    .unwrap();
    World2 {
        store,
        inventory,
        sim,
        graph,
    }
}

impl World2 {
    pub fn sim_token(&self, label: &str) -> String {
        self.sim.simulator().token(label).unwrap()
    }

    pub async fn add(
        &self,
        alias: &str,
        label: &str,
        kind: TokenKind,
        parent: Option<&str>,
    ) -> Token {
        self.add_secret(alias, &self.sim_token(label), kind, parent)
            .await
    }

    pub async fn add_secret(
        &self,
        alias: &str,
        secret: &str,
        kind: TokenKind,
        parent: Option<&str>,
    ) -> Token {
        self.inventory
            .add_token(
                NewToken {
                    alias: TokenAlias::parse(alias).unwrap(),
                    kind,
                    app_id: AppId::parse(ids::APP).unwrap(),
                    secret: SecretString::from(secret.to_owned()),
                    meta_user_id: None,
                    page_id: None,
                    business_id: None,
                    parent: parent.map(|p| TokenAlias::parse(p).unwrap()),
                    owner: String::new(),
                    requested_by: String::new(),
                    purpose: String::new(),
                    scopes_needed: vec![],
                    tags: vec![],
                },
                "test",
            )
            .await
            .unwrap()
    }

    pub fn checker(&self) -> Checker {
        Checker::new(
            Arc::clone(&self.inventory),
            self.graph.clone(),
            Arc::new(self.store.clock.clone()),
            CheckPolicy::default(),
        )
    }

    pub fn renewer(&self, policy: RenewPolicy, owner: &str) -> Renewer {
        Renewer::new(
            Arc::clone(&self.inventory),
            self.graph.clone(),
            Arc::new(self.store.clock.clone()),
            policy,
            SignedDuration::from_hours(24 * 7),
            owner.to_owned(),
        )
    }

    pub async fn check_all(&self) -> graphwarden_lifecycle::CheckReport {
        self.checker()
            .check(
                graphwarden_lifecycle::Selection::default(),
                "test",
                &|_, _| {},
            )
            .await
            .unwrap()
    }

    pub async fn token(&self, alias: &str) -> Token {
        self.inventory
            .token(&TokenAlias::parse(alias).unwrap())
            .await
            .unwrap()
    }

    pub async fn control(&self, method: &str, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/__sim{path}", self.sim.url()),
            )
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    pub fn advance_days(&self, days: i64) {
        self.store
            .clock
            .advance(SignedDuration::from_hours(24 * days));
    }

    /// Whether the secret stored for `alias` is valid according to Meta right now.
    pub async fn stored_secret_is_valid(&self, alias: &str) -> bool {
        let secret = self
            .inventory
            .open_token_secret(&TokenAlias::parse(alias).unwrap())
            .await
            .unwrap();
        let app = graphwarden_meta::AppCredentials {
            app_id: ids::APP.into(),
            secret: SecretString::from(self.sim.simulator().app_secret(ids::APP).unwrap()),
        };
        self.graph
            .debug_token(&secret, &app)
            .await
            .unwrap()
            .0
            .is_valid
    }
}
