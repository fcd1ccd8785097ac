//! From a `debug_token` answer to a token's status, cause and dates: the token state machine of
//! design.md §2, as pure logic.

use graphwarden_core::TokenStatus;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::classify::{status_for_message, status_for_subcode};
use crate::parse::{DebugData, GranularScope};

/// What one inspection found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub status: TokenStatus,
    /// A sentence for people: why this status.
    pub cause: String,
    /// `None` = never expires (or Meta did not say).
    pub expires_at: Option<Timestamp>,
    pub data_access_expires_at: Option<Timestamp>,
    pub issued_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    pub granular_scopes: Vec<GranularScope>,
    pub app_id: Option<String>,
    /// The Meta user (or system user) id; for Page tokens, the admin's.
    pub user_id: Option<String>,
    /// For Page tokens: the Page id.
    pub profile_id: Option<String>,
    /// `USER`, `PAGE`, `APP` as Meta reports it.
    pub meta_kind: Option<String>,
    /// Whether the token needs attention soon without being dead (exit code 1).
    pub warning: Option<String>,
}

fn ts(secs: Option<i64>) -> Option<Timestamp> {
    secs.and_then(|s| Timestamp::from_second(s).ok())
}

/// Turn `debug_token`'s `data` into a status. `warn_within` is how early an expiry or a data
/// access lapse becomes a warning.
pub fn assess(data: &DebugData, now: Timestamp, warn_within: SignedDuration) -> Assessment {
    let expires_at = ts(data.expires_at);
    let data_access = ts(data.data_access_expires_at);
    let soon = now.checked_add(warn_within).unwrap_or(Timestamp::MAX);
    let (status, cause, warning) = if data.is_valid {
        match (expires_at, data_access) {
            (_, Some(d)) if d <= now => (
                TokenStatus::DataAccessExpired,
                format!("data access lapsed on {}", d.strftime("%Y-%m-%d")),
                None,
            ),
            (Some(e), _) if e <= soon => (
                TokenStatus::Expiring,
                format!("expires on {}", e.strftime("%Y-%m-%d %H:%M UTC")),
                Some(format!("expires on {}", e.strftime("%Y-%m-%d %H:%M UTC"))),
            ),
            (_, Some(d)) if d <= soon => (
                TokenStatus::Valid,
                "valid".to_owned(),
                Some(format!("data access lapses on {}", d.strftime("%Y-%m-%d"))),
            ),
            _ => (TokenStatus::Valid, "valid".to_owned(), None),
        }
    } else {
        let error = data.error.as_ref();
        let message = error.map(|e| e.message.clone()).unwrap_or_default();
        let status = error
            .and_then(|e| e.subcode)
            .and_then(status_for_subcode)
            .or_else(|| status_for_message(&message))
            .or_else(|| {
                expires_at
                    .filter(|e| *e <= now)
                    .map(|_| TokenStatus::Expired)
            })
            .unwrap_or(TokenStatus::Invalid);
        let cause = if message.is_empty() {
            "Meta reports the token as not valid".to_owned()
        } else {
            message
        };
        (status, cause, None)
    };
    Assessment {
        status,
        cause,
        expires_at,
        data_access_expires_at: data_access,
        issued_at: ts(data.issued_at),
        scopes: data.scopes.clone(),
        granular_scopes: data.granular_scopes.clone(),
        app_id: data.app_id.clone(),
        user_id: data.user_id.clone(),
        profile_id: data.profile_id.clone(),
        meta_kind: data.kind.clone(),
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: serde_json::Value) -> DebugData {
        DebugData::parse(&v).unwrap()
    }

    const NOW: i64 = 1_767_225_600;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn valid_expiring_and_data_access() {
        let week = SignedDuration::from_hours(24 * 7);
        let far = assess(
            &data(
                json!({"is_valid":true,"expires_at":NOW + 40*86400,"data_access_expires_at":NOW + 80*86400}),
            ),
            at(NOW),
            week,
        );
        assert_eq!(
            (far.status, far.warning.is_none()),
            (TokenStatus::Valid, true)
        );
        let soon = assess(
            &data(json!({"is_valid":true,"expires_at":NOW + 3*86400})),
            at(NOW),
            week,
        );
        assert_eq!(soon.status, TokenStatus::Expiring);
        assert!(soon.warning.is_some());
        let never = assess(
            &data(json!({"is_valid":true,"expires_at":0})),
            at(NOW),
            week,
        );
        assert_eq!((never.status, never.expires_at), (TokenStatus::Valid, None));
        let lapsing = assess(
            &data(json!({"is_valid":true,"expires_at":0,"data_access_expires_at":NOW + 86400})),
            at(NOW),
            week,
        );
        assert_eq!(lapsing.status, TokenStatus::Valid);
        assert!(lapsing.warning.unwrap().contains("data access"));
        let lapsed = assess(
            &data(json!({"is_valid":true,"expires_at":0,"data_access_expires_at":NOW - 1})),
            at(NOW),
            week,
        );
        assert_eq!(lapsed.status, TokenStatus::DataAccessExpired);
    }

    #[test]
    fn invalid_tokens_get_their_cause() {
        let week = SignedDuration::from_hours(24 * 7);
        let cases = [
            (
                json!({"is_valid":false,"error":{"code":190,"message":"x","subcode":460}}),
                TokenStatus::PasswordChanged,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"x","subcode":458}}),
                TokenStatus::Deauthorized,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"x","subcode":466}}),
                TokenStatus::Revoked,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"x","subcode":492}}),
                TokenStatus::RoleLost,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"x","subcode":459}}),
                TokenStatus::Checkpoint,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"Session has expired on …"}}),
                TokenStatus::Expired,
            ),
            (
                json!({"is_valid":false,"expires_at":NOW - 5}),
                TokenStatus::Expired,
            ),
            (
                json!({"is_valid":false,"error":{"code":190,"message":"Invalid OAuth access token - Cannot parse access token"},"scopes":[]}),
                TokenStatus::Invalid,
            ),
            (json!({"is_valid":false}), TokenStatus::Invalid),
        ];
        for (payload, status) in cases {
            assert_eq!(
                assess(&data(payload.clone()), at(NOW), week).status,
                status,
                "{payload}"
            );
        }
    }
}
