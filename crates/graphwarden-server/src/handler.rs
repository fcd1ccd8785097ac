//! The HTTP handlers, one file per resource, and the wire shapes they answer with.
//!
//! Handlers are thin: they check the caller's role, call the inventory, the lifecycle workers or
//! the scheduler, and turn the result into one of the views below. Times are RFC 3339 strings.

pub mod alerts;
pub mod apps;
pub mod checks;
pub mod health;
pub mod jobs;
pub mod meta;
pub mod oauth;
pub mod renewals;
pub mod silences;
pub mod tokens;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Paging of event lists.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Limit {
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

impl Limit {
    pub fn get(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

/// One entry of the event log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Who did it: a person (`--actor`), `apikey:NAME`, or `scheduler`.
    pub actor: String,
    /// What happened, such as `token.status_changed` or `token.revealed`.
    pub action: String,
    pub token: Option<String>,
    pub app_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<graphwarden_store::Event> for EventView {
    fn from(e: graphwarden_store::Event) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            token: e.token_alias,
            app_id: e.app_id,
            detail: e.detail,
        }
    }
}
