//! The Graph calls graphwarden makes, each with the reference section its shapes come from.

use graphwarden_core::usage::Usage;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::classify::classify;
use crate::client::{AppCredentials, GraphClient, Method, Params};
use crate::error::MetaError;
use crate::parse::{self, DebugData};

/// Most items one batch may hold (§9).
pub const MAX_BATCH: usize = 50;

/// A new token from an exchange (§3.1, §4 refresh) or a login code (§3.2).
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: SecretString,
    /// Seconds; `None` when Meta leaves it out (never expires, or unknown).
    pub expires_in: Option<i64>,
}

/// One Page from `/{user}/accounts` (§3.4).
#[derive(Debug, Clone)]
pub struct PageAccount {
    pub id: String,
    pub name: String,
    pub access_token: SecretString,
    pub tasks: Vec<String>,
}

fn issued(body: &Value) -> Result<IssuedToken, MetaError> {
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| MetaError::BadResponse {
            http_status: 200,
            detail: "no access_token in the answer".into(),
        })?;
    Ok(IssuedToken {
        token: SecretString::from(token.to_owned()),
        expires_in: body
            .get("expires_in")
            .and_then(parse::int)
            .filter(|s| *s > 0),
    })
}

/// One event's Event Match Quality from the Dataset Quality API (§11).
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuality {
    pub event_name: String,
    /// `event_match_quality.composite_score`, out of 10.
    pub composite_score: f64,
}

/// The `web` entries of a Dataset Quality answer: `{"web":[…]}` or `{"data":[{"web":[…]}]}`
/// (§11 says parsers have met both). Entries without a name or a score are skipped.
pub fn parse_dataset_quality(body: &Value) -> Vec<EventQuality> {
    let web: Vec<&Value> = match body.get("web") {
        Some(Value::Array(list)) => list.iter().collect(),
        _ => body
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("web").and_then(Value::as_array))
            .flatten()
            .collect(),
    };
    web.into_iter()
        .filter_map(|e| {
            let name = e.get("event_name").and_then(Value::as_str)?;
            let score = e
                .get("event_match_quality")
                .and_then(|q| q.get("composite_score"))
                .and_then(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                })?;
            Some(EventQuality {
                event_name: name.to_owned(),
                composite_score: score,
            })
        })
        .collect()
}

impl GraphClient {
    /// `GET /dataset_quality?dataset_id=…` (§11): the Event Match Quality of each web event of a
    /// Conversions API dataset (pixel), optionally only for events sent by `agent_name`.
    pub async fn dataset_quality(
        &self,
        token: &SecretString,
        app_secret: Option<&SecretString>,
        dataset_id: &str,
        agent_name: Option<&str>,
    ) -> Result<Vec<EventQuality>, MetaError> {
        let mut params = Params::new().set("dataset_id", dataset_id).set(
            "fields",
            "web{event_name,event_match_quality{composite_score}}",
        );
        if let Some(agent) = agent_name {
            params = params.set("agent_name", agent);
        }
        let params = self.authorize(params, token, app_secret);
        let response = self.call(Method::Get, "dataset_quality", &params).await?;
        Ok(parse_dataset_quality(&response.body))
    }

    /// `GET /debug_token` with the app token (§2).
    pub async fn debug_token(
        &self,
        input: &SecretString,
        app: &AppCredentials,
    ) -> Result<(DebugData, Usage), MetaError> {
        let app_token = app.app_token();
        let params = self.authorize(
            Params::new().secret("input_token", input),
            &app_token,
            Some(&app.secret),
        );
        let response = self
            .call(Method::Get, "debug_token", &params)
            .await
            .map_err(MetaError::into_inspector_error)?;
        let data = DebugData::parse(&response.body).ok_or_else(|| MetaError::BadResponse {
            http_status: response.http_status,
            detail: "debug_token answered without `data`".into(),
        })?;
        Ok((data, response.usage))
    }

    /// `debug_token` for up to 50 tokens in one batch (§2.4, §9). The outer error is the batch's
    /// own; each item has its own result. Usage is the highest any item reported.
    pub async fn debug_tokens(
        &self,
        inputs: &[&SecretString],
        app: &AppCredentials,
    ) -> Result<(Vec<Result<DebugData, MetaError>>, Usage), MetaError> {
        if inputs.len() > MAX_BATCH {
            return Err(MetaError::Config {
                detail: format!("a batch holds at most {MAX_BATCH} requests"),
            });
        }
        let items: Vec<Value> = inputs
            .iter()
            .map(|t| {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("input_token", t.expose_secret())
                    .finish();
                json!({ "method": "GET", "relative_url": format!("debug_token?{query}") })
            })
            .collect();
        let batch = SecretString::from(Value::Array(items).to_string());
        let app_token = app.app_token();
        let params = self.authorize(
            Params::new()
                .secret("batch", &batch)
                .set("include_headers", "true"),
            &app_token,
            Some(&app.secret),
        );
        let response = self
            .call(Method::Post, "", &params)
            .await
            .map_err(MetaError::into_inspector_error)?;
        let answers = response
            .body
            .as_array()
            .ok_or_else(|| MetaError::BadResponse {
                http_status: response.http_status,
                detail: "a batch answered without an array".into(),
            })?;
        let mut usage = response.usage.clone();
        let mut results = Vec::with_capacity(inputs.len());
        for i in 0..inputs.len() {
            let item = answers.get(i).unwrap_or(&Value::Null);
            results.push(batch_item(item, &mut usage));
        }
        Ok((results, usage))
    }

    /// Exchange a user token for a long-lived one, or refresh a system-user token for 60 days
    /// (§3.1, §4). Always a new string.
    pub async fn exchange(
        &self,
        token: &SecretString,
        app: &AppCredentials,
        sixty_days: bool,
    ) -> Result<IssuedToken, MetaError> {
        let mut params = Params::new()
            .set("grant_type", "fb_exchange_token")
            .set("client_id", app.app_id.clone())
            .secret("client_secret", &app.secret)
            .secret("fb_exchange_token", token);
        if sixty_days {
            params = params.set("set_token_expires_in_60_days", "true");
        }
        let response = self
            .call(Method::Get, "oauth/access_token", &params)
            .await?;
        issued(&response.body)
    }

    /// Exchange a login code (§3.2); `redirect_uri` must be the dialog's, byte for byte.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
        app: &AppCredentials,
    ) -> Result<IssuedToken, MetaError> {
        let params = Params::new()
            .set("client_id", app.app_id.clone())
            .secret("client_secret", &app.secret)
            .set("redirect_uri", redirect_uri)
            .secret("code", code);
        let response = self
            .call(Method::Get, "oauth/access_token", &params)
            .await?;
        issued(&response.body)
    }

    /// Every Page the user has a role on, with its Page token (§3.4), following paging.
    pub async fn accounts(
        &self,
        user_token: &SecretString,
        app: &AppCredentials,
    ) -> Result<Vec<PageAccount>, MetaError> {
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..100 {
            let mut params = Params::new()
                .set("fields", "id,name,access_token,tasks")
                .set("limit", "100");
            if let Some(a) = &after {
                params = params.set("after", a.clone());
            }
            let params = self.authorize(params, user_token, Some(&app.secret));
            let response = self.call(Method::Get, "me/accounts", &params).await?;
            for p in response
                .body
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(id), Some(token)) = (
                    p.get("id").and_then(parse::id),
                    p.get("access_token").and_then(Value::as_str),
                ) else {
                    continue;
                };
                pages.push(PageAccount {
                    id,
                    name: p
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    access_token: SecretString::from(token.to_owned()),
                    tasks: p
                        .get("tasks")
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            // The only end-of-list signal is a missing `next` (§10).
            let paging = response.body.get("paging");
            match (
                paging.and_then(|p| p.get("next")),
                paging.and_then(|p| p["cursors"]["after"].as_str()),
            ) {
                (Some(_), Some(cursor)) => after = Some(cursor.to_owned()),
                _ => break,
            }
        }
        Ok(pages)
    }

    /// Generate a system-user token (§4); the proof is always sent.
    pub async fn mint_system_user_token(
        &self,
        system_user_id: &str,
        caller: &SecretString,
        app: &AppCredentials,
        scopes: &[String],
        expiring: bool,
    ) -> Result<IssuedToken, MetaError> {
        let mut params = Params::new()
            .set("business_app", app.app_id.clone())
            .set("scope", scopes.join(","));
        if expiring {
            params = params.set("set_token_expires_in_60_days", "true");
        }
        let params = self.authorize(params, caller, Some(&app.secret));
        let response = self
            .call(
                Method::Post,
                &format!("{system_user_id}/access_tokens"),
                &params,
            )
            .await?;
        issued(&response.body)
    }

    /// Revoke a token (§4); `success` comes as a bool or the string `"true"`.
    pub async fn revoke(
        &self,
        target: &SecretString,
        caller: &SecretString,
        app: &AppCredentials,
    ) -> Result<bool, MetaError> {
        let params = Params::new()
            .set("client_id", app.app_id.clone())
            .secret("client_secret", &app.secret)
            .secret("revoke_token", target);
        let params = self.authorize(params, caller, Some(&app.secret));
        let response = self.call(Method::Get, "oauth/revoke", &params).await?;
        Ok(response
            .body
            .get("success")
            .and_then(parse::boolean)
            .unwrap_or(false))
    }
}

/// One batch answer: `{code, headers:[{name,value}], body:"<json>"}` or `null` (§9).
fn batch_item(item: &Value, usage: &mut Usage) -> Result<DebugData, MetaError> {
    if item.is_null() {
        return Err(MetaError::BadResponse {
            http_status: 200,
            detail: "the batch did not answer this item in time".into(),
        });
    }
    let code = item.get("code").and_then(parse::int).unwrap_or(0);
    let http_status = u16::try_from(code).unwrap_or(0);
    let headers: Vec<(String, String)> = item
        .get("headers")
        .and_then(Value::as_array)
        .map(|hs| {
            hs.iter()
                .filter_map(|h| {
                    Some((
                        h.get("name")?.as_str()?.to_owned(),
                        h.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let item_usage = Usage::from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if item_usage.max_pct() >= usage.max_pct() && !item_usage.is_empty() {
        *usage = item_usage.clone();
    }
    let body: Value = item
        .get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| MetaError::BadResponse {
            http_status,
            detail: "a batch item without a JSON body".into(),
        })?;
    if let Some(error) = parse::error_envelope(&body) {
        let class = classify(http_status, &error, &item_usage);
        return Err(MetaError::graph(http_status, error, class, item_usage));
    }
    DebugData::parse(&body).ok_or_else(|| MetaError::BadResponse {
        http_status,
        detail: "debug_token answered without `data`".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_quality_in_both_shapes_and_with_odd_entries() {
        let flat = json!({"web":[
            {"event_name":"Purchase","event_match_quality":{"composite_score":8.3}},
            {"event_name":"AddToCart","event_match_quality":{"composite_score":"6.1"}},
            {"event_name":"NoScore"},
            {"event_match_quality":{"composite_score":1}}
        ]});
        let nested = json!({"data":[{"web":[
            {"event_name":"Purchase","event_match_quality":{"composite_score":8.3}}
        ]}]});
        let got = parse_dataset_quality(&flat);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].composite_score, 6.1);
        assert_eq!(parse_dataset_quality(&nested)[0].event_name, "Purchase");
        assert!(parse_dataset_quality(&json!({"error":{}})).is_empty());
        assert!(parse_dataset_quality(&json!([1, 2])).is_empty());
    }
}
