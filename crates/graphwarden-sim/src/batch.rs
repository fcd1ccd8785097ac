//! Batch requests (`meta-graph-reference.md` §9): `POST /` with `batch=[…]`, at most 50 items,
//! each answered with `code`, a `headers` list and a string `body`; each item is a call of its
//! own (usage, call log), sent through the same code as a direct call.

use serde_json::{Value, json};

use crate::error::GraphError;
use crate::sim::{Body, SimRequest, SimResponse};
use crate::{Simulator, server};

const MAX_ITEMS: usize = 50;

fn error(e: GraphError) -> SimResponse {
    SimResponse {
        status: e.http_status,
        body: Body::Json(e.body("batch")),
        headers: Vec::new(),
    }
}

pub fn handle(sim: &Simulator, req: &SimRequest) -> SimResponse {
    let Some(top_token) = req.access_token().map(str::to_owned) else {
        return error(GraphError::token_required());
    };
    // The outer call: its token must work, and a throttled app gets an error envelope instead
    // of items (§9). The outer call itself is not charged; its items are.
    {
        let now = graphwarden_core::Clock::now(sim.clock());
        let mut st = sim.state();
        match crate::sim::authenticate(&st, req, now.as_second()) {
            Err(e) => return error(e),
            Ok(caller) => {
                let dau = st
                    .world
                    .app(&caller.app_id)
                    .map_or(1, |a| a.daily_active_users);
                if let Some(e) = st
                    .usage
                    .app_throttled(&caller.app_id, dau, now.as_millisecond())
                {
                    let headers = e.headers.clone();
                    let mut r = error(e);
                    r.headers = headers;
                    return r;
                }
            }
        }
    }
    let Some(batch_text) = req.param("batch") else {
        return error(GraphError::invalid_parameter(
            "The parameter batch is required",
        ));
    };
    let items: Vec<Value> = match serde_json::from_str::<Value>(batch_text) {
        Ok(Value::Array(items)) => items,
        _ => {
            return error(GraphError::invalid_parameter(
                "The parameter batch must be a JSON array of requests",
            ));
        }
    };
    if items.len() > MAX_ITEMS {
        return error(GraphError::new(
            400,
            100,
            "GraphBatchException",
            "Too many requests in batch message. Maximum batch size is 50",
        ));
    }
    let include_headers = req.param("include_headers") != Some("false");
    let mut answers = Vec::with_capacity(items.len());
    for item in &items {
        let item_req = match item_request(item, req, &top_token) {
            Ok(r) => r,
            Err(e) => {
                answers.push(json!({
                    "code": e.http_status,
                    "headers": [],
                    "body": e.body("batch").to_string(),
                }));
                continue;
            }
        };
        let response = if item_req.method == "POST" && item_req.path.trim_matches('/').is_empty() {
            error(GraphError::invalid_parameter(
                "A batch cannot contain another batch",
            ))
        } else {
            sim.handle_one(item_req, true)
        };
        let mut headers =
            vec![json!({ "name": "Content-Type", "value": "text/javascript; charset=UTF-8" })];
        if include_headers {
            for (name, value) in &response.headers {
                headers.push(json!({ "name": name, "value": value }));
            }
        }
        answers.push(json!({
            "code": response.status,
            "headers": if include_headers { json!(headers) } else { json!([]) },
            "body": response.body_text(),
        }));
    }
    SimResponse::json(200, Value::Array(answers))
}

/// One item as a request: its own token and proof if it names a token, else the top level's.
fn item_request(
    item: &Value,
    outer: &SimRequest,
    top_token: &str,
) -> Result<SimRequest, GraphError> {
    let method = item
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    if !matches!(method.as_str(), "GET" | "POST" | "DELETE" | "PUT") {
        return Err(GraphError::invalid_parameter(format!(
            "Unsupported method in batch: {method}"
        )));
    }
    let relative = item
        .get("relative_url")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid_parameter("Each batch request needs a relative_url"))?;
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, q),
        None => (relative, ""),
    };
    let (version, path) = server::split_version(&format!("/{}", path.trim_start_matches('/')));
    let mut params = server::parse_form(query);
    if let Some(body) = item.get("body").and_then(Value::as_str) {
        params.extend(server::parse_form(body));
    }
    if !params.contains_key("access_token") {
        params.insert("access_token".into(), top_token.to_owned());
        for key in ["appsecret_proof", "appsecret_time"] {
            if let Some(v) = outer.param(key) {
                params.insert(key.into(), v.to_owned());
            }
        }
    }
    Ok(SimRequest {
        method,
        path,
        version: version.or_else(|| outer.version.clone()),
        params,
        bearer: None,
    })
}
