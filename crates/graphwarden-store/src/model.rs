//! What the inventory holds, as callers see it: apps, tokens and events without their secrets,
//! plus the sealed forms the backends persist.

use graphwarden_core::{AppId, MetaId, Scope, Tag, TokenAlias, TokenKind, TokenStatus};
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// When a token expires, as far as graphwarden knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "at", rename_all = "snake_case")]
pub enum Expiry {
    /// Not inspected yet.
    Unknown,
    /// Meta reports `expires_at: 0`: no time-based expiry.
    Never,
    /// Expires at this instant.
    At(Timestamp),
}

impl Expiry {
    /// The stored form: `None` unknown, `Some(0)` never, else epoch milliseconds.
    pub(crate) fn from_column(ms: Option<i64>) -> Self {
        match ms {
            None => Self::Unknown,
            Some(0) => Self::Never,
            Some(ms) => Timestamp::from_millisecond(ms).map_or(Self::Unknown, Self::At),
        }
    }

    pub(crate) fn to_column(self) -> Option<i64> {
        match self {
            Self::Unknown => None,
            Self::Never => Some(0),
            Self::At(t) => Some(t.as_millisecond()),
        }
    }

    /// Time left from `now`; negative once expired. `None` when unknown or never.
    pub fn remaining(self, now: Timestamp) -> Option<SignedDuration> {
        match self {
            Self::At(t) => Some(now.duration_until(t)),
            Self::Unknown | Self::Never => None,
        }
    }
}

/// A Meta app registered in graphwarden. The secret is never part of this value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct App {
    pub app_id: AppId,
    pub name: String,
    /// Whether the app passed the organisation's own approval (used by audits).
    pub approved: bool,
    pub notes: String,
    pub token_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What `app add` needs.
#[derive(Debug)]
pub struct NewApp {
    pub app_id: AppId,
    pub name: String,
    pub secret: SecretString,
    pub approved: bool,
    pub notes: String,
}

/// A permission granted only on some targets (pages, ad accounts, businesses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GranularScope {
    pub scope: String,
    #[serde(default)]
    pub target_ids: Vec<String>,
}

/// A token in the inventory, without its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Token {
    pub id: String,
    pub alias: TokenAlias,
    pub kind: TokenKind,
    pub app_id: AppId,
    /// A recognisable, non-secret hint such as `EAAB…x7Qz`.
    pub hint: String,
    pub meta_user_id: Option<MetaId>,
    pub page_id: Option<MetaId>,
    pub business_id: Option<MetaId>,
    pub parent_id: Option<String>,
    pub parent_alias: Option<TokenAlias>,
    pub owner: String,
    pub requested_by: String,
    pub purpose: String,
    pub scopes_needed: Vec<Scope>,
    pub tags: Vec<Tag>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub status: TokenStatus,
    pub status_cause: String,
    pub expires: Expiry,
    pub data_access_expires_at: Option<Timestamp>,
    pub issued_at: Option<Timestamp>,
    pub scopes: Option<Vec<String>>,
    pub granular_scopes: Option<Vec<GranularScope>>,
    pub last_checked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// Discrepancies inspection found: the app, user or kind Meta reports differs from the
    /// recorded one.
    pub flags: Vec<String>,
    /// The type `debug_token` reported (`USER`, `PAGE`, `APP`).
    pub meta_kind: Option<String>,
    /// Since when a renewed secret waits to be proven, if one does.
    pub pending_since: Option<Timestamp>,
    /// Renewal attempts that failed in a row.
    pub renewal_failures: i64,
    /// Until when a renewal holds the token's lease.
    pub lease_until: Option<Timestamp>,
    /// This token's own renewal settings, if any.
    pub renewal_policy: Option<RenewalOverride>,
}

/// Renewal settings that override the app's and the global ones; unset fields inherit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenewalOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_window_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_user_fraction: Option<f64>,
}

/// A renewed secret, sealed, waiting to replace the current one.
#[derive(Debug, Clone)]
pub struct PendingSecret {
    pub secret: Sealed,
    pub fingerprint: String,
    pub hint: String,
}

impl Inspection {
    /// A status learned without Meta's details (a failed call, a parent's death): dates and
    /// scopes stay as they were.
    pub fn status_only(
        status: TokenStatus,
        cause: impl Into<String>,
        checked_at: Timestamp,
        flags: Vec<String>,
    ) -> Self {
        Self {
            status,
            cause: cause.into(),
            checked_at,
            details: None,
            flags,
        }
    }
}

/// One inspection to write, with its events.
#[derive(Debug, Clone)]
pub struct InspectionWrite {
    pub token_id: String,
    pub inspection: Inspection,
    pub events: Vec<NewEvent>,
}

impl Token {
    /// The token as it reads after `inspection` is written (mirrors the store's update).
    pub fn apply(&mut self, inspection: &Inspection) {
        if self.status != inspection.status {
            self.updated_at = inspection.checked_at;
        }
        self.status = inspection.status;
        self.status_cause = inspection.cause.clone();
        self.last_checked_at = Some(inspection.checked_at);
        self.flags = inspection.flags.clone();
        if let Some(d) = &inspection.details {
            self.expires = d.expires;
            self.data_access_expires_at = d.data_access_expires_at;
            self.issued_at = d.issued_at;
            self.scopes = Some(d.scopes.clone());
            self.granular_scopes = Some(d.granular_scopes.clone());
            self.meta_kind = d.meta_kind.clone();
            if self.meta_user_id.is_none() {
                self.meta_user_id = d.meta_user_id.clone();
            }
            if self.page_id.is_none() {
                self.page_id = d.page_id.clone();
            }
        }
    }
}

/// What one inspection learned about a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub status: TokenStatus,
    pub cause: String,
    pub checked_at: Timestamp,
    /// `None` when Meta could not be asked: dates and scopes stay as they were.
    pub details: Option<InspectionDetails>,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InspectionDetails {
    pub expires: Expiry,
    pub data_access_expires_at: Option<Timestamp>,
    pub issued_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    pub granular_scopes: Vec<GranularScope>,
    pub meta_kind: Option<String>,
    /// Filled in when the token had none recorded.
    pub meta_user_id: Option<MetaId>,
    pub page_id: Option<MetaId>,
}

/// What `token add` needs.
#[derive(Debug)]
pub struct NewToken {
    pub alias: TokenAlias,
    pub kind: TokenKind,
    pub app_id: AppId,
    pub secret: SecretString,
    pub meta_user_id: Option<MetaId>,
    pub page_id: Option<MetaId>,
    pub business_id: Option<MetaId>,
    pub parent: Option<TokenAlias>,
    pub owner: String,
    pub requested_by: String,
    pub purpose: String,
    pub scopes_needed: Vec<Scope>,
    pub tags: Vec<Tag>,
}

/// Filters for `token list`; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub status: Option<TokenStatus>,
    pub kind: Option<TokenKind>,
    pub app_id: Option<AppId>,
    /// Only tokens with a known expiry no later than now plus this.
    pub expiring_within: Option<SignedDuration>,
    pub tag: Option<Tag>,
}

/// One entry of the append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub token_id: Option<String>,
    pub token_alias: Option<String>,
    pub app_id: Option<String>,
    pub detail: serde_json::Value,
}

impl Event {
    /// The detail as `key=value` pairs for people, leaving out empty values and fingerprints
    /// (long, and meaningless to a reader; they are in the JSON).
    pub fn detail_text(&self) -> String {
        match &self.detail {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(k, v)| {
                    *k != "fingerprint" && !v.is_null() && *v != "" && *v != &serde_json::json!([])
                })
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        }
    }
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: i64,
    pub actor: String,
    pub action: &'static str,
    pub token_id: Option<String>,
    pub token_alias: Option<String>,
    pub app_id: Option<String>,
    pub detail: serde_json::Value,
}

/// A secret as stored: the key version that sealed it and `nonce || ciphertext`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_version: i64,
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Sealed {{ key_version: {}, {} bytes }}",
            self.key_version,
            self.blob.len()
        )
    }
}

/// Which table a sealed secret lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretTable {
    Apps,
    Tokens,
    /// A renewed token waiting to be proven (`tokens.pending_secret`).
    TokensPending,
}

impl SecretTable {
    /// The table, as bound into the associated data.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apps => "apps",
            Self::Tokens | Self::TokensPending => "tokens",
        }
    }

    /// The column, as bound into the associated data.
    pub fn column(self) -> &'static str {
        match self {
            Self::Apps | Self::Tokens => "secret",
            Self::TokensPending => "pending_secret",
        }
    }
}

/// A sealed secret and the row it belongs to, as key rotation walks them.
#[derive(Debug, Clone)]
pub struct SealedRef {
    pub table: SecretTable,
    pub row_id: String,
    pub secret: Sealed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }
}

/// A data key as stored: wrapped by the master key.
#[derive(Debug, Clone)]
pub struct DataKeyRecord {
    pub version: i64,
    pub state: KeyState,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

/// The installation row: its id and its wrapped fingerprint key.
#[derive(Debug, Clone)]
pub struct InstanceRecord {
    pub instance_id: String,
    pub fingerprint_key: Vec<u8>,
    pub created_at: i64,
}

/// A token row as the backends return it.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub token: Token,
    pub secret: Sealed,
    pub fingerprint: String,
    pub pending: Option<PendingSecret>,
    pub lease_owner: Option<String>,
}

/// An app row as the backends return it.
#[derive(Debug, Clone)]
pub struct AppRecord {
    pub app: App,
    pub secret: Sealed,
}

/// `token list` filters as the backends see them.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    pub status: Option<TokenStatus>,
    pub kind: Option<TokenKind>,
    pub app_id: Option<AppId>,
    /// Epoch ms: only tokens with a known, finite expiry at or before this.
    pub expires_before: Option<i64>,
    /// Only tokens derived from this token id.
    pub parent_id: Option<String>,
    pub tag: Option<Tag>,
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How many secrets each data key version seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    pub version: i64,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub secrets: i64,
}
