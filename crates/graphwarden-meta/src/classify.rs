//! What a Graph error means for a token monitor (`meta-graph-reference.md` §7.2–§7.4): a typed
//! class, a plain-language explanation, and the action to take.

use std::time::Duration;

use graphwarden_core::TokenStatus;
use graphwarden_core::usage::Usage;
use serde::Serialize;

/// The error body inside Meta's envelope (§7.1), parsed tolerantly.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GraphErrorInfo {
    pub message: String,
    pub kind: Option<String>,
    pub code: i64,
    pub subcode: Option<i64>,
    pub is_transient: bool,
    pub fbtrace_id: Option<String>,
}

/// The kind of failure, as graphwarden acts on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Classification {
    /// The token will never work again; `status` says why (§7.3).
    TokenDead { status: TokenStatus },
    /// The person must do something on facebook.com first (459, 464).
    NeedsUserAction { status: TokenStatus },
    /// The token lacks a permission (10, 200–299, 294).
    PermissionMissing,
    /// Rate limited; wait before calling again (4, 17, 32, 341, 613, 80000–80014).
    Throttled {
        #[serde(skip)]
        wait: Option<Duration>,
    },
    /// Try again later (1, 2, `is_transient`, HTTP 5xx, network).
    Transient,
    /// The app is set up wrongly: the app secret or proof, the app id, the API version.
    AppConfiguration,
    /// The request itself is wrong.
    BadRequest,
}

impl Classification {
    pub fn explanation(&self) -> &'static str {
        match self {
            Self::TokenDead { .. } => "Meta no longer accepts this token.",
            Self::NeedsUserAction { .. } => {
                "Meta wants the person behind the token to act on facebook.com first."
            }
            Self::PermissionMissing => "The token lacks a permission this call needs.",
            Self::Throttled { .. } => "Meta is rate-limiting these calls.",
            Self::Transient => "Meta or the network failed for a moment.",
            Self::AppConfiguration => {
                "The app's configuration in graphwarden does not match Meta's: usually the app secret."
            }
            Self::BadRequest => "Meta refused the request as malformed.",
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            Self::TokenDead { status } | Self::NeedsUserAction { status } => status.action(),
            Self::PermissionMissing => {
                "Have the owner grant the missing permission (log in again with it requested)."
            }
            Self::Throttled { .. } => {
                "Wait until the usage headers say access is regained; do not retry sooner."
            }
            Self::Transient => "Retry later; graphwarden retries transient failures with backoff.",
            Self::AppConfiguration => {
                "Check the app secret stored with `graphwarden app add` and the app's settings in the App Dashboard."
            }
            Self::BadRequest => "Report it: graphwarden sent something Meta did not accept.",
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient)
    }
}

/// The status a Meta OAuth subcode means (§7.3).
pub fn status_for_subcode(subcode: i64) -> Option<TokenStatus> {
    Some(match subcode {
        458 => TokenStatus::Deauthorized,
        459 => TokenStatus::Checkpoint,
        460 => TokenStatus::PasswordChanged,
        463 => TokenStatus::Expired,
        464 => TokenStatus::NeedsRelogin,
        466 => TokenStatus::Revoked,
        492 => TokenStatus::RoleLost,
        456 | 457 | 461 | 462 | 465 | 467 | 468 => TokenStatus::Invalid,
        _ => return None,
    })
}

/// The status a 190 message means when the subcode is missing (§7.3 table).
pub fn status_for_message(message: &str) -> Option<TokenStatus> {
    let m = message.to_ascii_lowercase();
    if m.contains("session has expired") {
        Some(TokenStatus::Expired)
    } else if m.contains("changed their password")
        || m.contains("changed the session for security reasons")
    {
        Some(TokenStatus::PasswordChanged)
    } else if m.contains("has not authorized application") {
        Some(TokenStatus::Deauthorized)
    } else if m.contains("invalidated explicitly") || m.contains("user logged out") {
        Some(TokenStatus::Revoked)
    } else if m.contains("appropriate role on the page") {
        Some(TokenStatus::RoleLost)
    } else if m.contains("log in to www.facebook.com") || m.contains("checkpoint") {
        Some(TokenStatus::Checkpoint)
    } else if m.contains("malformed")
        || m.contains("could not be decrypted")
        || m.contains("cannot parse access token")
        || m.contains("invalid oauth access token")
    {
        Some(TokenStatus::Invalid)
    } else {
        None
    }
}

/// Classify an error response. `usage` supplies the wait for throttles.
pub fn classify(http_status: u16, error: &GraphErrorInfo, usage: &Usage) -> Classification {
    let message = error.message.to_ascii_lowercase();
    // §5: the two proof errors are code 100 but configuration, never a bad token.
    if message.contains("appsecret_proof") || error.code == 2635 || error.code == 101 {
        return Classification::AppConfiguration;
    }
    if error.code == 1 && message.contains("client secret") {
        return Classification::AppConfiguration;
    }
    if message.contains("must be granted before impersonating")
        || message.contains("missing permissions")
    {
        return Classification::PermissionMissing;
    }
    if error.code == 190 || error.code == 102 {
        if message.contains("error validating application") {
            return Classification::AppConfiguration;
        }
        let status = error
            .subcode
            .and_then(status_for_subcode)
            .or_else(|| status_for_message(&error.message))
            .unwrap_or(TokenStatus::Invalid);
        return match status {
            TokenStatus::Checkpoint | TokenStatus::NeedsRelogin if error.subcode.is_some() => {
                Classification::NeedsUserAction { status }
            }
            status => Classification::TokenDead { status },
        };
    }
    if matches!(error.code, 4 | 17 | 32 | 341 | 613) || (80_000..=80_014).contains(&error.code) {
        let wait = usage.regain_wait().or(Some(match error.code {
            // Without a regain time: the app window is an hour; the score block is minutes.
            4 => Duration::from_secs(15 * 60),
            17 => Duration::from_secs(5 * 60),
            _ => Duration::from_secs(60),
        }));
        return Classification::Throttled { wait };
    }
    if error.code == 10 || (200..=299).contains(&error.code) || error.code == 294 {
        return Classification::PermissionMissing;
    }
    if error.is_transient
        || matches!(error.code, 1 | 2 | 104)
        || (error.code == 960 && http_status == 400)
        || http_status >= 500
    {
        return Classification::Transient;
    }
    Classification::BadRequest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i64, subcode: Option<i64>, message: &str) -> GraphErrorInfo {
        GraphErrorInfo {
            message: message.into(),
            code,
            subcode,
            ..GraphErrorInfo::default()
        }
    }

    fn class(code: i64, subcode: Option<i64>, message: &str) -> Classification {
        classify(400, &err(code, subcode, message), &Usage::default())
    }

    #[test]
    fn token_causes_by_subcode_and_by_message() {
        for (sub, status) in [
            (458, TokenStatus::Deauthorized),
            (460, TokenStatus::PasswordChanged),
            (463, TokenStatus::Expired),
            (466, TokenStatus::Revoked),
            (492, TokenStatus::RoleLost),
            (467, TokenStatus::Invalid),
        ] {
            assert_eq!(
                class(190, Some(sub), "x"),
                Classification::TokenDead { status }
            );
        }
        assert_eq!(
            class(190, Some(459), "x"),
            Classification::NeedsUserAction {
                status: TokenStatus::Checkpoint
            }
        );
        assert_eq!(
            class(
                190,
                None,
                "Error validating access token: Session has expired on Wednesday, 16-Nov-22 07:45:51 PST."
            ),
            Classification::TokenDead {
                status: TokenStatus::Expired
            }
        );
        assert_eq!(
            class(
                190,
                None,
                "Error validating access token: The session has been invalidated because the user changed their password or Facebook has changed the session for security reasons."
            ),
            Classification::TokenDead {
                status: TokenStatus::PasswordChanged
            }
        );
        assert_eq!(
            class(102, None, "Session key invalid"),
            Classification::TokenDead {
                status: TokenStatus::Invalid
            }
        );
        assert_eq!(
            class(
                190,
                None,
                "Any of the pages_read_engagement permission(s) must be granted before impersonating a user's page."
            ),
            Classification::PermissionMissing
        );
    }

    #[test]
    fn proof_errors_are_configuration_not_dead_tokens() {
        assert_eq!(
            class(
                100,
                None,
                "Invalid appsecret_proof provided in the API argument"
            ),
            Classification::AppConfiguration
        );
        assert_eq!(
            class(
                100,
                None,
                "API calls from the server require an appsecret_proof argument"
            ),
            Classification::AppConfiguration
        );
        assert_eq!(
            class(1, None, "Error validating client secret."),
            Classification::AppConfiguration
        );
        assert_eq!(
            class(100, Some(33), "Unsupported get request."),
            Classification::BadRequest
        );
    }

    #[test]
    fn throttles_carry_the_wait_from_the_headers() {
        let usage = Usage::from_headers([(
            "x-business-use-case-usage",
            r#"{"1":[{"type":"ads_management","call_count":120,"estimated_time_to_regain_access":12}]}"#,
        )]);
        let c = classify(400, &err(80_004, Some(2_446_079), "x"), &usage);
        assert_eq!(
            c,
            Classification::Throttled {
                wait: Some(Duration::from_secs(720))
            }
        );
        assert!(matches!(
            class(4, None, "x"),
            Classification::Throttled { wait: Some(_) }
        ));
        assert!(matches!(
            class(613, Some(1_487_742), "x"),
            Classification::Throttled { .. }
        ));
    }

    #[test]
    fn transient_and_permission() {
        assert_eq!(
            class(2, None, "(#2) Service temporarily unavailable"),
            Classification::Transient
        );
        assert_eq!(
            classify(500, &err(0, None, ""), &Usage::default()),
            Classification::Transient
        );
        let mut e = err(100, None, "x");
        e.is_transient = true;
        assert_eq!(
            classify(400, &e, &Usage::default()),
            Classification::Transient
        );
        assert_eq!(
            class(200, None, "(#200) Requires business_management permission"),
            Classification::PermissionMissing
        );
        assert_eq!(class(10, None, "x"), Classification::PermissionMissing);
        for c in [
            Classification::Transient,
            Classification::BadRequest,
            Classification::PermissionMissing,
        ] {
            assert!(!c.explanation().is_empty() && !c.action().is_empty());
        }
    }
}
