//! Cursor pagination (`meta-graph-reference.md` §10): `data`, `paging.cursors.{before,after}`,
//! and absolute `next`/`previous` URLs that embed the access token, as Meta's do. The only
//! end-of-list signal is a missing `next`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::sim::SimRequest;

const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 500;

fn encode(index: usize) -> String {
    STANDARD.encode(format!("gwsim:{index}"))
}

fn decode(cursor: &str) -> Option<usize> {
    let bytes = STANDARD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("gwsim:")?.parse().ok()
}

fn url_with(
    base_url: &str,
    req: &SimRequest,
    version: &str,
    key: &str,
    cursor: &str,
    limit: usize,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &req.params {
        if !matches!(k.as_str(), "after" | "before" | "limit") {
            query.append_pair(k, v);
        }
    }
    if req.param("access_token").is_none()
        && let Some(token) = &req.bearer
    {
        query.append_pair("access_token", token);
    }
    query.append_pair("limit", &limit.to_string());
    query.append_pair(key, cursor);
    format!("{base_url}/{version}{}?{}", req.path, query.finish())
}

/// One page of `items`, per the request's `limit`, `after` and `before`.
pub fn page(
    items: Vec<Value>,
    req: &SimRequest,
    base_url: &str,
    version: &str,
) -> Result<Value, GraphError> {
    let limit = match req.param("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| {
                GraphError::invalid_parameter("Param limit must be a non-negative integer")
            })?
            .clamp(1, MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    let start = match (req.param("after"), req.param("before")) {
        (Some(after), _) => decode(after).map(|i| i + 1).ok_or_else(|| {
            GraphError::invalid_parameter("The After Cursor specified is invalid")
        })?,
        (None, Some(before)) => {
            let end = decode(before).ok_or_else(|| {
                GraphError::invalid_parameter("The Before Cursor specified is invalid")
            })?;
            end.saturating_sub(limit)
        }
        (None, None) => 0,
    };
    if start > items.len() {
        return Err(GraphError::invalid_parameter(
            "The After Cursor specified exceeds the max limit supported by this endpoint",
        ));
    }
    let end = (start + limit).min(items.len());
    let data: Vec<Value> = items[start..end].to_vec();
    if data.is_empty() {
        return Ok(json!({ "data": [] }));
    }
    let before = encode(start);
    let after = encode(end - 1);
    let mut paging = json!({ "cursors": { "before": before, "after": after } });
    if end < items.len() {
        paging["next"] = json!(url_with(base_url, req, version, "after", &after, limit));
    }
    if start > 0 {
        paging["previous"] = json!(url_with(base_url, req, version, "before", &before, limit));
    }
    Ok(json!({ "data": data, "paging": paging }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(params: &[(&str, &str)]) -> SimRequest {
        SimRequest {
            method: "GET".into(),
            path: "/act_1/campaigns".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..SimRequest::default()
        }
    }

    #[test]
    fn walks_all_items_and_ends_without_next() {
        let items: Vec<Value> = (0..7).map(|i| json!({ "id": i })).collect();
        let mut seen = Vec::new();
        let mut params = vec![
            ("limit".to_owned(), "3".to_owned()),
            ("access_token".to_owned(), "T".to_owned()),
        ];
        loop {
            let r = req(&params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>());
            let page = page(items.clone(), &r, "http://sim", "v26.0").unwrap();
            for item in page["data"].as_array().unwrap() {
                seen.push(item["id"].as_i64().unwrap());
            }
            match page["paging"].get("next") {
                Some(next) => {
                    assert!(next.as_str().unwrap().contains("access_token=T"));
                    let after = page["paging"]["cursors"]["after"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    params.retain(|(k, _)| k != "after");
                    params.push(("after".into(), after));
                }
                None => break,
            }
        }
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn bad_cursors_are_errors_not_panics() {
        let items: Vec<Value> = (0..3).map(|i| json!({ "id": i })).collect();
        assert!(page(items.clone(), &req(&[("after", "%%%")]), "", "v1").is_err());
        assert!(page(items.clone(), &req(&[("limit", "x")]), "", "v1").is_err());
        let far = encode(99);
        assert!(page(items, &req(&[("after", &far)]), "", "v1").is_err());
    }
}
