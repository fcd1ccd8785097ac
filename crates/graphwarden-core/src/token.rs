//! Token kinds and the token status model.
//!
//! Every token has exactly one [`TokenStatus`]; each status names the action a person should take.
//! The Meta error codes behind each status are in `meta-graph-reference.md` §7.3.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{InvalidInput, quote};

/// What kind of Meta access token this is (`meta-graph-reference.md` §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A user token, short- or long-lived.
    User,
    /// A Page token derived from a user token.
    Page,
    /// An app token (`client_credentials`, or `app_id|app_secret`).
    App,
    /// A Business Manager system-user token.
    SystemUser,
}

impl TokenKind {
    pub const ALL: [TokenKind; 4] = [Self::User, Self::Page, Self::App, Self::SystemUser];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Page => "page",
            Self::App => "app",
            Self::SystemUser => "system_user",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "{} is not a token kind; use one of `user`, `page`, `app`, `system_user`",
                    quote(text)
                ))
            })
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenKind {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Where a token stands. Each status comes with a cause recorded beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Checked and working.
    Valid,
    /// Working, but expires soon.
    Expiring,
    /// Past its expiry (subcode 463).
    Expired,
    /// The user changed their password (subcode 460).
    PasswordChanged,
    /// The user removed the app (subcode 458).
    Deauthorized,
    /// The token or session was revoked (subcode 466).
    Revoked,
    /// The user must pass a security checkpoint on facebook.com (subcode 459).
    Checkpoint,
    /// The user lost the Page role the token relied on (subcode 492).
    RoleLost,
    /// Meta rejects it for another reason (other 190/467, or garbage).
    Invalid,
    /// The app secret was reset, which invalidates tokens derived with it.
    AppSecretReset,
    /// The 90-day data-access window lapsed; the user must re-authorize.
    DataAccessExpired,
    /// Renewal is impossible without the user logging in again.
    NeedsRelogin,
    /// Renewal keeps failing for a reason a person must look at.
    NeedsAttention,
    /// Not checked yet, or could not be checked (network, Meta down).
    Unknown,
}

impl TokenStatus {
    pub const ALL: [TokenStatus; 14] = [
        Self::Valid,
        Self::Expiring,
        Self::Expired,
        Self::PasswordChanged,
        Self::Deauthorized,
        Self::Revoked,
        Self::Checkpoint,
        Self::RoleLost,
        Self::Invalid,
        Self::AppSecretReset,
        Self::DataAccessExpired,
        Self::NeedsRelogin,
        Self::NeedsAttention,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::PasswordChanged => "password_changed",
            Self::Deauthorized => "deauthorized",
            Self::Revoked => "revoked",
            Self::Checkpoint => "checkpoint",
            Self::RoleLost => "role_lost",
            Self::Invalid => "invalid",
            Self::AppSecretReset => "app_secret_reset",
            Self::DataAccessExpired => "data_access_expired",
            Self::NeedsRelogin => "needs_relogin",
            Self::NeedsAttention => "needs_attention",
            Self::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                InvalidInput::new(format!(
                    "{} is not a token status; use one of {}",
                    quote(text),
                    names.join(", ")
                ))
            })
    }

    /// Whether calls made with the token can still work.
    pub fn is_usable(self) -> bool {
        matches!(
            self,
            Self::Valid | Self::Expiring | Self::Unknown | Self::NeedsAttention
        )
    }

    /// What a person should do about a token in this status.
    pub fn action(self) -> &'static str {
        match self {
            Self::Valid => "Nothing to do.",
            Self::Expiring => "Renew it before it expires, or have its owner log in again.",
            Self::Expired => {
                "Have the owner log in again (`graphwarden login APP --alias ALIAS`); an expired token cannot be exchanged."
            }
            Self::PasswordChanged => {
                "The user changed their password: have them log in again (`graphwarden login APP --alias ALIAS`)."
            }
            Self::Deauthorized => {
                "The user removed the app: ask them to log in again and grant access (`graphwarden login APP --alias ALIAS`)."
            }
            Self::Revoked => "The token was revoked: issue a new one and replace it everywhere.",
            Self::Checkpoint => {
                "Ask the user to log in on facebook.com and pass the security checkpoint, then issue a new token."
            }
            Self::RoleLost => {
                "The user lost their role on the Page: restore the role or derive the Page token from another admin."
            }
            Self::Invalid => "Meta rejects this token: issue a new one and replace it.",
            Self::AppSecretReset => {
                "The app secret was reset: store the new secret with `graphwarden app add`, then issue new tokens."
            }
            Self::DataAccessExpired => {
                "Data access lapsed after 90 days: have the user re-authorize (login with `auth_type=reauthorize`)."
            }
            Self::NeedsRelogin => {
                "Renewal is impossible: have the owner log in again with `graphwarden login APP --alias ALIAS`."
            }
            Self::NeedsAttention => {
                "Renewal keeps failing: read `graphwarden token events ALIAS` for the reason, fix it, then run `graphwarden renew ALIAS`."
            }
            Self::Unknown => "Not checked yet or Meta could not be reached: run an inspection.",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenStatus {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Renewal attempts that may fail in a row before a token needs a person.
pub const MAX_RENEWAL_FAILURES: i64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for status in TokenStatus::ALL {
            assert_eq!(TokenStatus::parse(status.as_str()).unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
            assert!(!status.action().is_empty());
        }
        for kind in TokenKind::ALL {
            assert_eq!(TokenKind::parse(kind.as_str()).unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert!(TokenKind::parse("USER").is_err());
        assert!(TokenStatus::parse("").is_err());
    }

    #[test]
    fn usable_statuses() {
        assert!(TokenStatus::Valid.is_usable());
        assert!(!TokenStatus::Revoked.is_usable());
    }
}
