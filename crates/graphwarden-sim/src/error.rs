//! Graph API errors in Meta's envelope (`meta-graph-reference.md` §7.1): `message`, `type`,
//! `code`, optional `error_subcode`, `is_transient`, `fbtrace_id`, with Meta's HTTP statuses.

use serde_json::{Value, json};

/// One Graph API error, ready to be rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub kind: &'static str,
    pub message: String,
    pub is_transient: bool,
    /// Usage headers that must ride on the error response too (§8: "usage headers on the error
    /// response too").
    pub headers: Vec<(String, String)>,
}

impl GraphError {
    pub fn new(
        http_status: u16,
        code: i64,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            http_status,
            code,
            subcode: None,
            kind,
            message: message.into(),
            is_transient: false,
            headers: Vec::new(),
        }
    }

    pub fn with_subcode(mut self, subcode: i64) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub fn transient(mut self) -> Self {
        self.is_transient = true;
        self
    }

    /// The body, with a fresh `fbtrace_id`.
    pub fn body(&self, fbtrace_id: &str) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "is_transient": self.is_transient,
            "fbtrace_id": fbtrace_id,
        });
        if let (Some(subcode), Some(map)) = (self.subcode, error.as_object_mut()) {
            map.insert("error_subcode".into(), json!(subcode));
        }
        json!({ "error": error })
    }

    // ----- the errors the simulator produces, each as Meta words it (§5, §7) -----

    /// §7.2 code 100: invalid parameter.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            400,
            100,
            "OAuthException",
            format!("(#100) {}", message.into()),
        )
    }

    /// Code 104: no token on a call that needs one.
    pub fn token_required() -> Self {
        Self::new(
            400,
            104,
            "OAuthException",
            "An access token is required to request this resource.",
        )
    }

    /// §2.3: the garbage-token message.
    pub fn cannot_parse_token() -> Self {
        Self::new(
            400,
            190,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
        )
    }

    /// §5: missing proof when the app requires it.
    pub fn proof_required() -> Self {
        Self::new(
            400,
            100,
            "GraphMethodException",
            "API calls from the server require an appsecret_proof argument",
        )
    }

    /// §5: a proof that does not match.
    pub fn proof_invalid() -> Self {
        Self::new(
            400,
            100,
            "GraphMethodException",
            "Invalid appsecret_proof provided in the API argument",
        )
    }

    /// §7.2 subcode 33: unknown object or edge.
    pub fn unsupported_request(method: &str, path: &str) -> Self {
        Self::new(
            400,
            100,
            "GraphMethodException",
            format!(
                "Unsupported {} request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                method.to_ascii_lowercase(),
                path.trim_start_matches('/')
            ),
        )
        .with_subcode(33)
    }

    /// Code 2500: an unknown path component.
    pub fn unknown_path(component: &str) -> Self {
        Self::new(
            400,
            2500,
            "OAuthException",
            format!("Unknown path components: /{component}"),
        )
    }

    /// Code 10 / 200-range: a permission the token lacks.
    pub fn permission_missing(permission: &str) -> Self {
        Self::new(
            403,
            200,
            "OAuthException",
            format!("(#200) Requires {permission} permission to manage the object"),
        )
    }

    /// §2.1: a debug_token call whose inspector is not allowed.
    pub fn inspector_not_allowed() -> Self {
        Self::new(
            400,
            100,
            "OAuthException",
            "(#100) You must provide an app access token, or a user access token that is an owner or developer of the app",
        )
    }

    /// §7.2 code 2: temporary downtime (used by fault injection).
    pub fn service_unavailable(http_status: u16) -> Self {
        Self::new(
            http_status,
            2,
            "OAuthException",
            "(#2) Service temporarily unavailable",
        )
        .transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_meta_fields() {
        let body = GraphError::cannot_parse_token()
            .with_subcode(463)
            .body("AbC");
        let e = &body["error"];
        assert_eq!(e["code"], 190);
        assert_eq!(e["error_subcode"], 463);
        assert_eq!(e["type"], "OAuthException");
        assert_eq!(e["is_transient"], false);
        assert_eq!(e["fbtrace_id"], "AbC");
        assert!(
            GraphError::token_required().body("x")["error"]
                .get("error_subcode")
                .is_none()
        );
    }
}
