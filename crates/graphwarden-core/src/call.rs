//! What graphwarden records of one Graph call made through its proxy: the path as a template
//! (ids replaced, so calls group by endpoint), the object the call is about, and what kind of
//! change it makes — a read, a create, an update (a budget or a status change named as such)
//! or a delete. Pure: the proxy hands in the method, the path and the parameter names.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a call does to the object it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    Read,
    Create,
    Update,
    /// An update that sets a budget, a bid or a spend cap.
    BudgetChange,
    /// An update that pauses, activates, archives or deletes by status.
    StatusChange,
    Delete,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
            Self::BudgetChange => "budget_change",
            Self::StatusChange => "status_change",
            Self::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "read" => Self::Read,
            "create" => Self::Create,
            "update" => Self::Update,
            "budget_change" => Self::BudgetChange,
            "status_change" => Self::StatusChange,
            "delete" => Self::Delete,
            _ => return None,
        })
    }
}

/// Parameters whose presence makes an update a budget change.
const BUDGET_PARAMS: &[&str] = &[
    "daily_budget",
    "lifetime_budget",
    "bid_amount",
    "spend_cap",
    "daily_spend_cap",
    "lifetime_spend_cap",
    "spend_cap_action",
];
/// Parameters whose presence makes an update a status change.
const STATUS_PARAMS: &[&str] = &["status", "effective_status", "configured_status"];

/// The version segment `v26.0`.
fn is_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major = parts.next().unwrap_or("");
    let minor = parts.next().unwrap_or("");
    !major.is_empty()
        && !minor.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && minor.bytes().all(|b| b.is_ascii_digit())
}

/// A numeric id, or Meta's compound `123_456` (posts, some edges).
fn is_numeric_id(segment: &str) -> bool {
    !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && segment.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// What one path says, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The path with its version and ids replaced: `/{version}/act_{id}/campaigns`.
    /// Shared text (here and in the call records made from it), so a parse can be reused.
    pub template: Arc<str>,
    /// The object the call is about: the first id in the path (`act_123`, `23850…`, `me`).
    pub object_id: Option<Arc<str>>,
    /// The ad account the path names, without `act_` (the key Meta's usage headers use).
    pub ad_account: Option<Arc<str>>,
    /// The last segment is an edge (`campaigns`, `insights`) rather than an object.
    pub ends_in_edge: bool,
    /// The business use case the call most likely counts against (`ads_insights` for insights,
    /// `ads_management` for other ad-account calls, `custom_audience`…); `None` when the path
    /// does not say.
    pub use_case: Option<&'static str>,
}

/// Parse a Graph path (`/v26.0/act_123/insights`, with or without the version).
pub fn parse_path(path: &str) -> PathInfo {
    let mut template = String::with_capacity(path.len());
    let mut object_id = None;
    let mut ad_account = None;
    let mut ends_in_edge = false;
    let mut edges: Vec<&str> = Vec::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        template.push('/');
        if is_version(segment) {
            template.push_str("{version}");
            continue;
        }
        if let Some(id) = segment.strip_prefix("act_")
            && !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
        {
            template.push_str("act_{id}");
            if object_id.is_none() {
                object_id = Some(Arc::from(segment));
            }
            if ad_account.is_none() {
                ad_account = Some(Arc::from(id));
            }
            ends_in_edge = false;
        } else if is_numeric_id(segment) {
            template.push_str("{id}");
            if object_id.is_none() {
                object_id = Some(Arc::from(segment));
            }
            ends_in_edge = false;
        } else if segment == "me" && object_id.is_none() {
            template.push_str("me");
            object_id = Some(Arc::from("me"));
            ends_in_edge = false;
        } else {
            // Edge names are short ASCII words; anything else (a cursor, a hash, a name
            // with odd characters) is folded so templates stay few.
            if segment.len() <= 64
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            {
                template.push_str(segment);
                edges.push(segment);
            } else {
                template.push_str("{value}");
            }
            ends_in_edge = object_id.is_some();
        }
    }
    if template.is_empty() {
        template.push('/');
    }
    let use_case = if edges.contains(&"insights") {
        Some("ads_insights")
    } else if edges.contains(&"customaudiences") {
        Some("custom_audience")
    } else if ad_account.is_some() {
        Some("ads_management")
    } else {
        None
    };
    PathInfo {
        template: Arc::from(template),
        object_id,
        ad_account,
        ends_in_edge,
        use_case,
    }
}

/// What a call changes, from its method, its parsed path and the names of its parameters.
pub fn change_type<'a>(
    method: &str,
    path: &PathInfo,
    params: impl IntoIterator<Item = &'a str>,
) -> ChangeType {
    match method.to_ascii_uppercase().as_str() {
        "GET" | "HEAD" | "OPTIONS" => ChangeType::Read,
        "DELETE" => ChangeType::Delete,
        _ => {
            if path.ends_in_edge || path.object_id.is_none() {
                return ChangeType::Create;
            }
            let mut change = ChangeType::Update;
            for name in params {
                if BUDGET_PARAMS.contains(&name) {
                    return ChangeType::BudgetChange;
                }
                if STATUS_PARAMS.contains(&name) {
                    change = ChangeType::StatusChange;
                }
            }
            change
        }
    }
}

/// One call as recorded. Never holds a secret: the token is named by its alias and keyed
/// fingerprint only.
///
/// Text the proxy has already (the token's names, the parsed path, the answer's usage) is
/// shared, not copied, and the method and outcome are usually constants: making a record for
/// every call then copies no strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the call started, epoch milliseconds.
    pub at_ms: i64,
    /// The stored token's alias, when the token is in the inventory.
    pub token_alias: Option<Arc<str>>,
    /// The token's keyed fingerprint (HMAC), never the token.
    pub token_fingerprint: Option<Arc<str>>,
    pub app_id: Option<Arc<str>>,
    pub method: Cow<'static, str>,
    pub path: Arc<str>,
    pub object_id: Option<Arc<str>>,
    pub change: ChangeType,
    /// The HTTP status the caller saw (for a batch item, the item's own code).
    pub http_status: u16,
    pub error_code: Option<i64>,
    pub error_subcode: Option<i64>,
    /// `throttled`, `token_dead`, `transient`… (graphwarden's classes); `None` on success.
    pub error_class: Option<String>,
    /// From the start of the call to the end of the answer, in microseconds.
    pub duration_us: i64,
    /// The highest usage percentage the response's headers reported.
    pub usage_pct: Option<f64>,
    /// The raw usage values (JSON), when the response carried any.
    pub usage: Option<Arc<str>>,
    /// For an item of a batch: its index.
    pub batch_index: Option<i32>,
    /// `forwarded`, `delayed` (paced, then sent), `refused` (answered by graphwarden without
    /// reaching Meta), `failed` (Graph could not be reached), `aborted` (the caller left).
    pub outcome: Cow<'static, str>,
}

/// A method's name, without a copy for the usual ones.
pub fn method_name(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 7] = ["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "PATCH"];
    match KNOWN.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn templates_replace_versions_and_ids() {
        let p = parse_path("/v26.0/act_1234567/campaigns");
        assert_eq!(&*p.template, "/{version}/act_{id}/campaigns");
        assert_eq!(p.object_id.as_deref(), Some("act_1234567"));
        assert_eq!(p.ad_account.as_deref(), Some("1234567"));
        assert_eq!(p.use_case, Some("ads_management"));
        assert!(p.ends_in_edge);

        let p = parse_path("/v26.0/act_1/insights");
        assert_eq!(p.use_case, Some("ads_insights"));
        let p = parse_path("/23850000000000001");
        assert_eq!(&*p.template, "/{id}");
        assert!(!p.ends_in_edge);
        assert_eq!(
            &*parse_path("/v25.0/me/accounts").template,
            "/{version}/me/accounts"
        );
        assert_eq!(&*parse_path("/").template, "/");
        assert_eq!(&*parse_path("/v26.0/").template, "/{version}");
        assert_eq!(&*parse_path("/123_456/comments").template, "/{id}/comments");
        assert_eq!(
            &*parse_path("/debug_token").template,
            "/debug_token",
            "a top-level node stays"
        );
        assert_eq!(
            &*parse_path("/v26.0/%E2%9C%93weird").template,
            "/{version}/{value}"
        );
    }

    #[test]
    fn changes_are_named() {
        let object = parse_path("/v26.0/23850000000000001");
        let edge = parse_path("/v26.0/act_1/campaigns");
        assert_eq!(change_type("GET", &edge, []), ChangeType::Read);
        assert_eq!(change_type("POST", &edge, ["name"]), ChangeType::Create);
        assert_eq!(change_type("POST", &object, ["name"]), ChangeType::Update);
        assert_eq!(
            change_type("POST", &object, ["name", "daily_budget"]),
            ChangeType::BudgetChange
        );
        assert_eq!(
            change_type("post", &object, ["status"]),
            ChangeType::StatusChange
        );
        assert_eq!(change_type("DELETE", &object, []), ChangeType::Delete);
        for c in [
            ChangeType::Read,
            ChangeType::Create,
            ChangeType::Update,
            ChangeType::BudgetChange,
            ChangeType::StatusChange,
            ChangeType::Delete,
        ] {
            assert_eq!(ChangeType::parse(c.as_str()), Some(c));
        }
    }

    proptest! {
        #[test]
        fn any_path_parses(path in "\\PC{0,300}") {
            let p = parse_path(&path);
            prop_assert!(p.template.starts_with('/'));
            prop_assert!(p.template.len() <= path.len() * 8 + 1);
        }
    }
}
