//! Tolerant parsing of Graph payloads: ids as strings or numbers, every optional field optional,
//! `expires_at` 0 or absent meaning never, unknown fields ignored (`meta-graph-reference.md`
//! §2.2, §2.3, §15).

use serde::Serialize;
use serde_json::Value;

use crate::classify::GraphErrorInfo;

/// A string from a string or a number; `None` for anything else.
pub fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer from a number or a numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(id).collect(),
        // Some payloads give a comma-separated string.
        Value::String(s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

/// The error object of Meta's envelope (§7.1), if `body` is one.
pub fn error_envelope(body: &Value) -> Option<GraphErrorInfo> {
    let e = body.get("error")?;
    if !e.is_object() {
        return None;
    }
    Some(GraphErrorInfo {
        message: e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        kind: e.get("type").and_then(Value::as_str).map(str::to_owned),
        code: e.get("code").and_then(int).unwrap_or(0),
        subcode: e.get("error_subcode").and_then(int),
        is_transient: e.get("is_transient").and_then(boolean).unwrap_or(false),
        fbtrace_id: e.get("fbtrace_id").and_then(id),
    })
}

/// A permission granted on some targets only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GranularScope {
    pub scope: String,
    pub target_ids: Vec<String>,
}

/// The `error` inside `debug_token`'s `data` (note: `subcode`, not `error_subcode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DebugError {
    pub code: Option<i64>,
    pub message: String,
    pub subcode: Option<i64>,
}

/// `debug_token`'s `data` (§2.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DebugData {
    pub app_id: Option<String>,
    /// `USER`, `PAGE`, `APP`, or whatever Meta sends next.
    pub kind: Option<String>,
    pub application: Option<String>,
    /// Unix seconds; `None` when absent or 0 (never).
    pub expires_at: Option<i64>,
    pub data_access_expires_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub is_valid: bool,
    pub scopes: Vec<String>,
    pub granular_scopes: Vec<GranularScope>,
    pub user_id: Option<String>,
    pub profile_id: Option<String>,
    pub error: Option<DebugError>,
}

impl DebugData {
    /// Parse `{"data": {…}}` or the bare `data` object.
    pub fn parse(body: &Value) -> Option<Self> {
        let d = body.get("data").unwrap_or(body);
        if !d.is_object() {
            return None;
        }
        let positive = |v: &Value| int(v).filter(|t| *t > 0);
        let granular = match d.get("granular_scopes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|g| {
                    Some(GranularScope {
                        scope: g.get("scope").and_then(id)?,
                        target_ids: g.get("target_ids").map(strings).unwrap_or_default(),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let error = d
            .get("error")
            .filter(|e| e.is_object())
            .map(|e| DebugError {
                code: e.get("code").and_then(int),
                message: e
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                subcode: e
                    .get("subcode")
                    .or_else(|| e.get("error_subcode"))
                    .and_then(int),
            });
        Some(Self {
            app_id: d.get("app_id").and_then(id),
            kind: d
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_ascii_uppercase),
            application: d
                .get("application")
                .and_then(Value::as_str)
                .map(str::to_owned),
            expires_at: d.get("expires_at").and_then(positive),
            data_access_expires_at: d.get("data_access_expires_at").and_then(positive),
            issued_at: d.get("issued_at").and_then(positive),
            is_valid: d.get("is_valid").and_then(boolean).unwrap_or(false),
            scopes: d.get("scopes").map(strings).unwrap_or_default(),
            granular_scopes: granular,
            user_id: d.get("user_id").and_then(id),
            profile_id: d.get("profile_id").and_then(id),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reference_payloads() {
        let page = json!({"data":{"app_id":"257422819769992","type":"PAGE","application":"demo-app",
            "data_access_expires_at":1676858291,"expires_at":1669086000,"is_valid":true,
            "profile_id":"103455271248220","scopes":["pages_show_list","public_profile"],
            "granular_scopes":[{"scope":"pages_show_list","target_ids":["103455271248220"]}],"user_id":"123"}});
        let d = DebugData::parse(&page).unwrap();
        assert_eq!(d.kind.as_deref(), Some("PAGE"));
        assert_eq!(d.profile_id.as_deref(), Some("103455271248220"));
        assert_eq!(d.granular_scopes[0].target_ids, ["103455271248220"]);

        let never = json!({"data":{"app_id":202493264460000_i64,"type":"USER","expires_at":0,"is_valid":true,"scopes":["a"],
            "granular_scopes":[{"scope":"instagram_basic"},{"scope":"pages_show_list","target_ids":[109004958110000_i64]}],"user_id":104211345270000_i64}});
        let d = DebugData::parse(&never).unwrap();
        assert_eq!(
            d.app_id.as_deref(),
            Some("202493264460000"),
            "ids as numbers"
        );
        assert_eq!(d.expires_at, None, "0 = never");
        assert!(
            d.granular_scopes[0].target_ids.is_empty(),
            "omitted target_ids = everything"
        );
        assert_eq!(d.granular_scopes[1].target_ids, ["109004958110000"]);

        let expired = json!({"data":{"app_id":"1","type":"USER","error":{"code":190,"message":"Error validating access token: Session has expired on …","subcode":463},"expires_at":1668613551,"is_valid":false,"scopes":["email"],"user_id":"123"}});
        let d = DebugData::parse(&expired).unwrap();
        assert_eq!(d.error.unwrap().subcode, Some(463));

        let garbage = json!({"data":{"error":{"code":190,"message":"Invalid OAuth access token - Cannot parse access token"},"is_valid":false,"scopes":[]}});
        let d = DebugData::parse(&garbage).unwrap();
        assert!(d.app_id.is_none() && d.kind.is_none() && !d.is_valid);
        assert!(DebugData::parse(&json!("nope")).is_none());
    }

    #[test]
    fn envelope() {
        let e = error_envelope(&json!({"error":{"message":"m","type":"OAuthException","code":"190","error_subcode":460,"is_transient":"false","fbtrace_id":"A","extra":1}})).unwrap();
        assert_eq!((e.code, e.subcode, e.is_transient), (190, Some(460), false));
        assert!(error_envelope(&json!({"error":"flat string"})).is_none());
        assert!(error_envelope(&json!({"data":[]})).is_none());
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|n| json!(n)),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("data".to_owned()),
                        Just("app_id".to_owned()),
                        Just("type".to_owned()),
                        Just("expires_at".to_owned()),
                        Just("is_valid".to_owned()),
                        Just("scopes".to_owned()),
                        Just("granular_scopes".to_owned()),
                        Just("error".to_owned()),
                        Just("subcode".to_owned()),
                        Just("target_ids".to_owned()),
                        Just("scope".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_parses_or_is_refused_without_panic(v in arb_json()) {
            let _ = DebugData::parse(&v);
            let _ = error_envelope(&v);
        }
    }
}
