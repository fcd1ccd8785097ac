//! The `Store` trait: persistence of sealed rows, implemented once per backend.
//!
//! Backends never see plaintext secrets; [`crate::Inventory`] seals and opens them. Every
//! mutation that the event log must know about takes its [`NewEvent`] and writes both in one
//! transaction, so there is never a change without its event or an event without its change.

use async_trait::async_trait;
use graphwarden_core::{AppId, TokenAlias};

use crate::error::Result;
use crate::model::{
    AppRecord, Backend, DataKeyRecord, Event, InstanceRecord, NewEvent, Sealed, SealedRef,
    TokenQuery, TokenRecord,
};

#[async_trait]
pub trait Store:
    crate::service::ServiceStore + crate::call::CallStore + Send + Sync + std::fmt::Debug
{
    fn backend(&self) -> Backend;

    /// The installation row; `None` when the schema or the row does not exist yet.
    async fn instance(&self) -> Result<Option<InstanceRecord>>;

    /// Bring the schema up to date (forward-only, embedded migrations).
    async fn migrate(&self) -> Result<()>;

    /// Write the installation row and the first data key. Fails with
    /// [`crate::StoreError::AlreadyInitialized`] when an installation row exists.
    async fn initialize(&self, instance: &InstanceRecord, first_key: &DataKeyRecord) -> Result<()>;

    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>>;

    /// Add a new active data key and retire all others, in one transaction.
    async fn add_data_key(&self, key: &DataKeyRecord, event: &NewEvent) -> Result<()>;

    /// Replace the wrapped fingerprint key and every wrapped data key (re-wrapped under a new
    /// master key) in one transaction. Fails with [`crate::StoreError::ConcurrentChange`] when
    /// `data_keys` does not name exactly the stored versions.
    async fn rewrap_keys(
        &self,
        fingerprint_key: &[u8],
        data_keys: &[(i64, Vec<u8>)],
        event: &NewEvent,
    ) -> Result<()>;

    /// Delete retired keys that no secret uses any more; returns their versions.
    async fn delete_unused_retired_keys(&self) -> Result<Vec<i64>>;

    /// How many secrets each key version seals: `(version, count)`.
    async fn secrets_per_key(&self) -> Result<Vec<(i64, i64)>>;

    async fn insert_app(&self, app: &AppRecord, event: &NewEvent) -> Result<()>;
    async fn app(&self, app_id: &AppId) -> Result<Option<AppRecord>>;
    async fn apps(&self) -> Result<Vec<AppRecord>>;
    /// Delete an app that has no tokens; `false` when it did not exist.
    async fn delete_app(&self, app_id: &AppId, event: &NewEvent) -> Result<bool>;

    async fn insert_token(&self, token: &TokenRecord, event: &NewEvent) -> Result<()>;
    async fn token(&self, alias: &TokenAlias) -> Result<Option<TokenRecord>>;
    async fn token_alias_by_fingerprint(&self, fingerprint: &str) -> Result<Option<TokenAlias>>;
    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRecord>>;
    /// Tokens without their secrets, for listings.
    async fn token_list(&self, query: &TokenQuery) -> Result<Vec<crate::model::Token>>;
    /// How many tokens match.
    async fn token_count(&self, query: &TokenQuery) -> Result<i64>;
    /// Up to `limit` matching tokens with their sealed secrets, ordered by `(app_id, alias)`
    /// and starting after `after`: a keyset page, so a whole inventory can be walked in
    /// bounded memory.
    async fn token_page(
        &self,
        query: &TokenQuery,
        after: Option<(&AppId, &TokenAlias)>,
        limit: i64,
    ) -> Result<Vec<TokenRecord>>;
    /// Delete a token (its children lose their parent link); `false` when it did not exist.
    async fn delete_token(&self, token_id: &str, event: &NewEvent) -> Result<bool>;

    /// Write what inspections learned, with their events, in one transaction; per write
    /// `false` when the token is gone.
    async fn record_inspections(
        &self,
        batch: &[crate::model::InspectionWrite],
    ) -> Result<Vec<bool>>;

    /// Take the renewal lease of a token until `until_ms`, if free, expired, or already ours.
    async fn acquire_lease(
        &self,
        token_id: &str,
        owner: &str,
        until_ms: i64,
        now_ms: i64,
    ) -> Result<bool>;
    async fn release_lease(&self, token_id: &str, owner: &str) -> Result<()>;
    /// Write a renewed secret as pending (only while holding the lease), with its event.
    async fn stage_pending(
        &self,
        token_id: &str,
        owner: &str,
        pending: &crate::model::PendingSecret,
        now_ms: i64,
        event: &NewEvent,
    ) -> Result<bool>;
    /// Replace the secret with the proven pending one (re-sealed for its column), clear the
    /// pending secret, the lease and the failure count; `false` when the pending secret is no
    /// longer `expected`.
    #[allow(clippy::too_many_arguments)]
    async fn promote_pending(
        &self,
        token_id: &str,
        expected: &Sealed,
        secret: &Sealed,
        fingerprint: &str,
        hint: &str,
        now_ms: i64,
        event: &NewEvent,
    ) -> Result<bool>;
    async fn discard_pending(&self, token_id: &str, event: &NewEvent) -> Result<()>;
    async fn set_renewal_failures(&self, token_id: &str, failures: i64) -> Result<()>;
    /// Set (or with `None` clear) a token's own renewal settings, with its event.
    async fn set_renewal_policy(
        &self,
        token_id: &str,
        policy: Option<&crate::model::RenewalOverride>,
        event: &NewEvent,
    ) -> Result<()>;

    async fn append_event(&self, event: &NewEvent) -> Result<()>;
    /// Give the backend the key the event chain is computed under; until then no event can
    /// be written. [`crate::Inventory`] does this when it opens.
    fn set_event_key(&self, key: crate::chain::ChainKey);
    /// The chain's head record; `None` when it is missing.
    async fn event_chain_head(&self) -> Result<Option<crate::chain::ChainHead>>;
    /// Up to `limit` event rows with ids above `after_id`, in id order, as stored.
    async fn event_chain_rows(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<crate::chain::ChainRow>>;
    /// Events whose detail contains `needle` (a fingerprint), oldest first.
    async fn events_mentioning(&self, needle: &str, limit: i64) -> Result<Vec<Event>>;
    /// Events about one token, oldest first.
    async fn token_events(&self, token_id: &str) -> Result<Vec<Event>>;
    /// The most recent events, newest first.
    async fn recent_events(&self, limit: i64) -> Result<Vec<Event>>;

    /// Up to `limit` sealed secrets whose key version is not `version`.
    async fn secrets_not_sealed_with(&self, version: i64, limit: i64) -> Result<Vec<SealedRef>>;

    /// Replace one sealed secret if it is still exactly `old.secret`; `false` when the row
    /// changed or vanished in the meantime (the caller simply looks again).
    async fn reseal(&self, old: &SealedRef, new: &Sealed) -> Result<bool>;
}
