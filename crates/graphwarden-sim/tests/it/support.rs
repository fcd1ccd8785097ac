//! A simulator per test, on a manual clock, with a small HTTP client.

use std::sync::Arc;

use graphwarden_core::ManualClock;
use graphwarden_sim::world::ids;
use graphwarden_sim::{SimConfig, SimHandle, World};
use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header_json(&self, name: &str) -> Value {
        let text = self
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` header in {:?}", self.headers))
            .to_str()
            .unwrap();
        serde_json::from_str(text).unwrap()
    }

    pub fn error_code(&self) -> (i64, Option<i64>) {
        let e = &self.body["error"];
        (e["code"].as_i64().unwrap_or(0), e["error_subcode"].as_i64())
    }
}

#[derive(Debug)]
pub struct TestSim {
    pub handle: SimHandle,
    pub clock: ManualClock,
    pub client: reqwest::Client,
}

pub fn start_time() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

impl TestSim {
    pub async fn start() -> Self {
        Self::with_world(|_| {}).await
    }

    pub async fn with_world(change: impl FnOnce(&mut World)) -> Self {
        let clock = ManualClock::new(start_time());
        let mut world = World::default_world(start_time().as_second());
        change(&mut world);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = graphwarden_sim::start(
            SimConfig {
                world: Some(world),
                control: true,
                clock: Arc::new(clock.clone()),
            },
            listener,
        )
        .unwrap();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            handle,
            clock,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.url())
    }

    pub fn token(&self, label: &str) -> String {
        self.handle.simulator().token(label).unwrap()
    }

    pub fn secret(&self) -> String {
        self.handle.simulator().app_secret(ids::APP).unwrap()
    }

    pub fn app_token(&self) -> String {
        format!("{}|{}", ids::APP, self.secret())
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let response = self
            .client
            .get(self.url(path))
            .query(params)
            .send()
            .await
            .unwrap();
        Self::reply(response).await
    }

    pub async fn post(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let response = self
            .client
            .post(self.url(path))
            .form(params)
            .send()
            .await
            .unwrap();
        Self::reply(response).await
    }

    pub async fn delete(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        let response = self
            .client
            .delete(self.url(path))
            .query(params)
            .send()
            .await
            .unwrap();
        Self::reply(response).await
    }

    pub async fn control(&self, method: &str, path: &str, body: Value) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .client
            .request(method, self.url(&format!("/__sim{path}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        Self::reply(response).await
    }

    pub async fn debug(&self, input: &str) -> Value {
        let app_token = self.app_token();
        let reply = self
            .get(
                "/v26.0/debug_token",
                &[("input_token", input), ("access_token", &app_token)],
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["data"].clone()
    }

    /// Mint a token through the control API.
    pub async fn mint(&self, body: Value) -> String {
        let reply = self.control("POST", "/tokens", body).await;
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    pub fn advance_days(&self, days: i64) {
        self.clock
            .advance(jiff::SignedDuration::from_hours(24 * days));
    }
}
