//! The Graph client: base URL and version from configuration, time-outs, retries with backoff and
//! jitter on transient failures only, `appsecret_proof` on every call that carries a token, usage
//! headers and `facebook-api-version` read from every response.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use graphwarden_core::Clock;
use graphwarden_core::usage::Usage;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::classify::classify;
use crate::error::MetaError;
use crate::parse;
use crate::proof;

/// Where Graph is and how to talk to it.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com`, or a simulator.
    pub base_url: String,
    /// `v26.0`.
    pub version: String,
    /// Per attempt.
    pub timeout: Duration,
    /// Extra attempts after a transient failure.
    pub retries: usize,
    /// Send the timed proof (`appsecret_time`) instead of the classic one.
    pub timed_proof: bool,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            base_url: "https://graph.facebook.com".into(),
            version: "v26.0".into(),
            timeout: Duration::from_secs(20),
            retries: 3,
            timed_proof: false,
        }
    }
}

/// An app's credentials.
#[derive(Debug, Clone)]
pub struct AppCredentials {
    pub app_id: String,
    pub secret: SecretString,
}

impl AppCredentials {
    /// The app token `id|secret` (§3.3).
    pub fn app_token(&self) -> SecretString {
        SecretString::from(format!("{}|{}", self.app_id, self.secret.expose_secret()))
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub http_status: u16,
    pub body: Value,
    pub usage: Usage,
    /// The `facebook-api-version` header: the version that served the call.
    pub api_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    config: GraphConfig,
    clock: Arc<dyn Clock>,
    /// The last `facebook-api-version` Meta answered with (shared by clones).
    api_version: Arc<std::sync::Mutex<Option<String>>>,
}

/// A call's parameters; secret values are kept apart so nothing prints them.
#[derive(Debug, Default)]
pub struct Params {
    plain: Vec<(String, String)>,
    secret: Vec<(String, SecretString)>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.plain.push((key.to_owned(), value.into()));
        self
    }

    pub fn secret(mut self, key: &str, value: &SecretString) -> Self {
        self.secret.push((key.to_owned(), value.clone()));
        self
    }

    fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.plain {
            s.append_pair(k, v);
        }
        for (k, v) in &self.secret {
            s.append_pair(k, v.expose_secret());
        }
        s.finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl GraphClient {
    pub fn new(config: GraphConfig, clock: Arc<dyn Clock>) -> Result<Self, MetaError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("graphwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(MetaError::from_reqwest)?;
        Ok(Self {
            http,
            config,
            clock,
            api_version: Arc::new(std::sync::Mutex::new(None)),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// The version that served the last call (`facebook-api-version`), which may differ from
    /// the one asked for when Meta upgrades a call.
    pub fn last_api_version(&self) -> Option<String> {
        self.api_version.lock().ok().and_then(|v| v.clone())
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.config.base_url.trim_end_matches('/'),
            self.config.version,
            path.trim_start_matches('/')
        )
    }

    /// Add the token and its proof (§5) to `params`.
    pub fn authorize(
        &self,
        params: Params,
        token: &SecretString,
        app_secret: Option<&SecretString>,
    ) -> Params {
        let params = params.secret("access_token", token);
        match app_secret {
            Some(secret) if self.config.timed_proof => {
                let now = self.clock.now().as_second();
                params
                    .set("appsecret_proof", proof::timed(secret, token, now))
                    .set("appsecret_time", now.to_string())
            }
            Some(secret) => params.set("appsecret_proof", proof::classic(secret, token)),
            None => params,
        }
    }

    /// One call, retried with backoff and jitter while it fails transiently.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<GraphResponse, MetaError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.config.retries)
            .with_jitter();
        (|| self.call_once(method, path, params))
            .retry(backoff)
            .when(MetaError::is_transient)
            .notify(|err, wait| {
                tracing::debug!(path, ?wait, error = %err, "Retrying a transient Graph failure.");
            })
            .await
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        params: &Params,
    ) -> Result<GraphResponse, MetaError> {
        let url = self.url(path);
        let encoded = params.encode();
        let request = match method {
            Method::Get => self.http.get(format!("{url}?{encoded}")),
            Method::Delete => self.http.delete(format!("{url}?{encoded}")),
            Method::Post => self
                .http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded),
        };
        let response = request.send().await.map_err(MetaError::from_reqwest)?;
        let http_status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let usage = Usage::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let api_version = headers
            .iter()
            .find(|(k, _)| k == "facebook-api-version")
            .map(|(_, v)| v.clone());
        let bytes = response.bytes().await.map_err(MetaError::from_reqwest)?;
        let body: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                let looks_html = bytes.iter().take(64).any(|b| *b == b'<');
                return Err(MetaError::BadResponse {
                    http_status,
                    detail: if looks_html {
                        "an HTML page".to_owned()
                    } else {
                        format!("not JSON: {e}")
                    },
                });
            }
        };
        if let Some(error) = parse::error_envelope(&body) {
            let class = classify(http_status, &error, &usage);
            return Err(MetaError::graph(http_status, error, class, usage));
        }
        if http_status >= 400 {
            return Err(MetaError::BadResponse {
                http_status,
                detail: "an error status without Meta's error envelope".to_owned(),
            });
        }
        if let Some(v) = &api_version {
            if v != &self.config.version {
                tracing::info!(asked = %self.config.version, served = %v, "Graph served another API version than the one asked for.");
            }
            if let Ok(mut last) = self.api_version.lock() {
                *last = Some(v.clone());
            }
        }
        Ok(GraphResponse {
            http_status,
            body,
            usage,
            api_version,
        })
    }
}
