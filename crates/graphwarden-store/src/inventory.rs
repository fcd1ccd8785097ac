//! The inventory as the rest of graphwarden uses it: apps and tokens in, plaintext sealed on the
//! way down and opened on the way up, every change written with its event.

mod access;
mod callback;
pub mod events;
mod users;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use graphwarden_core::secret::{check_app_secret, check_token_text, display_hint};
use graphwarden_core::{AppId, Clock, TokenAlias, TokenStatus, free_text};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::crypto::{
    MasterKey, SecretKey, data_key_label, fingerprint_key_label, random_id, secret_aad,
};
use crate::error::{Result, StoreError};
use crate::model::{
    App, AppRecord, DataKeyRecord, Event, Expiry, Inspection, InstanceRecord, KeyState, KeyUsage,
    NewApp, NewEvent, NewToken, Sealed, SealedRef, SecretTable, Token, TokenFilter, TokenQuery,
    TokenRecord,
};
use crate::postgres::{PostgresOptions, PostgresStore};
use crate::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;

/// A status before and after an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InspectionOutcome {
    pub previous: TokenStatus,
    pub current: TokenStatus,
}

/// How to reach the database and open its keys.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    pub master_key: MasterKey,
    pub clock: Arc<dyn Clock>,
    pub sqlite: SqliteOptions,
    pub postgres: PostgresOptions,
}

/// Connect to the store a URL names, without touching its keys.
pub async fn connect(
    url: &str,
    sqlite: &SqliteOptions,
    postgres: &PostgresOptions,
) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open_url(url, sqlite).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open_url(url, postgres).await?))
    } else {
        Err(StoreError::BadUrl {
            url: crate::redact_url(url),
        })
    }
}

/// The unwrapped keys of one installation, cached in memory.
struct Keyring {
    fingerprint: SecretKey,
    data: BTreeMap<i64, SecretKey>,
    active: i64,
}

/// Settings for [`Inventory::rotate_data_key`].
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// Secrets re-sealed per round trip.
    pub batch_size: i64,
    /// Stop after this many secrets, as if interrupted (tests and careful operators).
    pub stop_after: Option<usize>,
}

impl Default for RotateOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            stop_after: None,
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    /// The key version every secret is now (or will be) sealed with.
    pub version: i64,
    /// Whether this run continued an earlier, unfinished rotation instead of starting one.
    pub resumed: bool,
    pub resealed: usize,
    /// Whether every secret is on `version` now; `false` after `stop_after`.
    pub complete: bool,
    /// Retired key versions deleted because nothing uses them any more.
    pub deleted_keys: Vec<i64>,
}

pub struct Inventory {
    store: Arc<dyn Store>,
    master: RwLock<MasterKey>,
    keys: RwLock<Keyring>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inventory")
            .field("store", &self.store)
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Inventory {
    /// Set up a new inventory: schema, installation row, fingerprint key and first data key.
    /// Refuses a database that already holds one.
    pub async fn initialize(options: OpenOptions) -> Result<Self> {
        let sqlite = SqliteOptions {
            create: true,
            ..options.sqlite.clone()
        };
        let store = connect(&options.url, &sqlite, &options.postgres).await?;
        if store.instance().await?.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        store.migrate().await?;
        let now = options.clock.now_ms();
        let instance_id = random_id("gw");
        let fingerprint = SecretKey::generate();
        let data_key = SecretKey::generate();
        let instance = InstanceRecord {
            fingerprint_key: fingerprint
                .wrap(&options.master_key, &fingerprint_key_label(&instance_id)),
            instance_id,
            created_at: now,
        };
        let first_key = DataKeyRecord {
            version: 1,
            state: KeyState::Active,
            wrapped: data_key.wrap(&options.master_key, &data_key_label(1)),
            created_at: now,
        };
        store.initialize(&instance, &first_key).await?;
        store.set_event_key(events::chain_key(&fingerprint));
        Self::from_store(store, options.master_key, options.clock).await
    }

    /// Open an existing inventory. The master key is checked before anything is written, so a
    /// wrong key changes nothing; then pending migrations run.
    pub async fn open(options: OpenOptions) -> Result<Self> {
        let store = connect(&options.url, &options.sqlite, &options.postgres).await?;
        Self::from_store(store, options.master_key, options.clock).await
    }

    async fn from_store(
        store: Arc<dyn Store>,
        master: MasterKey,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let instance = store.instance().await?.ok_or(StoreError::NotInitialized)?;
        let fingerprint = SecretKey::unwrap_from(
            &master,
            &fingerprint_key_label(&instance.instance_id),
            &instance.fingerprint_key,
        )
        .ok_or(StoreError::WrongMasterKey)?;
        store.migrate().await?;
        store.set_event_key(events::chain_key(&fingerprint));
        let keyring = load_keyring(store.as_ref(), &master, fingerprint).await?;
        Ok(Self {
            store,
            master: RwLock::new(master),
            keys: RwLock::new(keyring),
            clock,
        })
    }

    /// The backend underneath, for callers that need raw access (tests, health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn master(&self) -> Result<MasterKey> {
        Ok(self.master.read().map_err(|_| poisoned())?.clone())
    }

    fn event(&self, actor: &str, action: &'static str) -> NewEvent {
        NewEvent {
            at: self.clock.now_ms(),
            actor: actor.to_owned(),
            action,
            token_id: None,
            token_alias: None,
            app_id: None,
            detail: json!({}),
        }
    }

    /// Record that `token` was revoked at Meta by `actor`, with the tokens derived from it
    /// (their own status changes follow from the inspection that comes next).
    pub async fn record_revocation(
        &self,
        token: &Token,
        actor: &str,
        derived: &[TokenAlias],
    ) -> Result<()> {
        let mut e = self.event(actor, "token.revoked");
        e.token_id = Some(token.id.clone());
        e.token_alias = Some(token.alias.to_string());
        e.app_id = Some(token.app_id.to_string());
        e.detail = json!({
            "kind": token.kind.as_str(),
            "derived": derived.iter().map(TokenAlias::as_str).collect::<Vec<_>>(),
        });
        self.store.append_event(&e).await
    }

    /// The keyed fingerprint (HMAC) of a token, as the inventory finds tokens by: what call
    /// records and the event log name a token by, never the token itself.
    pub fn token_fingerprint(&self, secret: &str) -> Result<String> {
        self.fingerprint(secret)
    }

    fn fingerprint(&self, secret: &str) -> Result<String> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        Ok(keys.fingerprint.fingerprint(secret.as_bytes()))
    }

    fn seal(&self, table: SecretTable, row_id: &str, plaintext: &str) -> Result<Sealed> {
        let keys = self.keys.read().map_err(|_| poisoned())?;
        let version = keys.active;
        let key = keys.data.get(&version).ok_or_else(|| StoreError::Decrypt {
            what: format!("data key {version}"),
        })?;
        let aad = secret_aad(table.as_str(), row_id, table.column(), version);
        Ok(Sealed {
            key_version: version,
            blob: key.seal(&aad, plaintext.as_bytes()),
        })
    }

    /// Open a sealed secret, reloading the keyring once if another process added a key.
    async fn open_sealed(
        &self,
        table: SecretTable,
        row_id: &str,
        sealed: &Sealed,
        what: &str,
    ) -> Result<SecretString> {
        let known = {
            let keys = self.keys.read().map_err(|_| poisoned())?;
            keys.data.contains_key(&sealed.key_version)
        };
        if !known {
            self.reload_keys().await?;
        }
        let keys = self.keys.read().map_err(|_| poisoned())?;
        let decrypt_error = || StoreError::Decrypt {
            what: what.to_owned(),
        };
        let key = keys
            .data
            .get(&sealed.key_version)
            .ok_or_else(decrypt_error)?;
        let aad = secret_aad(table.as_str(), row_id, table.column(), sealed.key_version);
        let plain = key.open(&aad, &sealed.blob).ok_or_else(decrypt_error)?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| decrypt_error())?;
        Ok(SecretString::from(text))
    }

    /// Run a write that seals a secret with the active key. Another process may have rotated
    /// keys since this one loaded them: look first, and if the key was retired and deleted
    /// between the look and the write, reload and try once more.
    async fn with_current_key<F, Fut>(&self, write: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let newest = self
            .store
            .data_keys()
            .await?
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .map(|k| k.version)
            .max();
        if newest != Some(self.keys.read().map_err(|_| poisoned())?.active) {
            self.reload_keys().await?;
        }
        match write().await {
            Err(StoreError::MissingReference { .. }) => {
                self.reload_keys().await?;
                write().await
            }
            other => other,
        }
    }

    async fn reload_keys(&self) -> Result<()> {
        let fingerprint = {
            let keys = self.keys.read().map_err(|_| poisoned())?;
            keys.fingerprint.clone()
        };
        let master = self.master()?;
        let fresh = load_keyring(self.store.as_ref(), &master, fingerprint).await?;
        *self.keys.write().map_err(|_| poisoned())? = fresh;
        Ok(())
    }

    // ----- apps -----

    pub async fn add_app(&self, new: NewApp, actor: &str) -> Result<App> {
        let secret = check_app_secret(new.secret.expose_secret())?;
        let name = free_text("app name", &new.name, 200, false)?;
        if name.is_empty() {
            return Err(graphwarden_core::InvalidInput::new(
                "the app name is empty; give it a name people recognise, such as `Acme Ads`",
            )
            .into());
        }
        let notes = free_text("notes", &new.notes, 4000, true)?;
        let now = self.clock.now();
        let app = App {
            app_id: new.app_id,
            name,
            approved: new.approved,
            notes,
            token_count: 0,
            created_at: now,
            updated_at: now,
        };
        let mut event = self.event(actor, "app.added");
        event.app_id = Some(app.app_id.to_string());
        event.detail = json!({ "name": app.name, "approved": app.approved });
        self.with_current_key(|| async {
            let record = AppRecord {
                app: app.clone(),
                secret: self.seal(SecretTable::Apps, app.app_id.as_str(), secret)?,
            };
            self.store.insert_app(&record, &event).await
        })
        .await?;
        Ok(app)
    }

    pub async fn apps(&self) -> Result<Vec<App>> {
        Ok(self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|r| r.app)
            .collect())
    }

    pub async fn app(&self, app_id: &AppId) -> Result<App> {
        self.store
            .app(app_id)
            .await?
            .map(|r| r.app)
            .ok_or_else(|| StoreError::app_not_found(app_id.as_str()))
    }

    /// The app secret, for signing calls (`appsecret_proof`) and exchanges.
    pub async fn app_secret(&self, app_id: &AppId) -> Result<SecretString> {
        let record = self
            .store
            .app(app_id)
            .await?
            .ok_or_else(|| StoreError::app_not_found(app_id.as_str()))?;
        self.open_sealed(
            SecretTable::Apps,
            app_id.as_str(),
            &record.secret,
            &format!("app `{app_id}`"),
        )
        .await
    }

    pub async fn remove_app(&self, app_id: &AppId, actor: &str) -> Result<App> {
        let app = self.app(app_id).await?;
        if app.token_count > 0 {
            return Err(StoreError::AppInUse {
                app_id: app_id.to_string(),
                tokens: app.token_count,
            });
        }
        let mut event = self.event(actor, "app.removed");
        event.app_id = Some(app_id.to_string());
        event.detail = json!({ "name": app.name });
        if !self.store.delete_app(app_id, &event).await? {
            return Err(StoreError::app_not_found(app_id.as_str()));
        }
        Ok(app)
    }

    // ----- tokens -----

    pub async fn add_token(&self, new: NewToken, actor: &str) -> Result<Token> {
        let secret = check_token_text(new.secret.expose_secret())?;
        let owner = free_text("owner", &new.owner, 200, false)?;
        let requested_by = free_text("requested-by", &new.requested_by, 200, false)?;
        let purpose = free_text("purpose", &new.purpose, 1000, false)?;
        if self.store.app(&new.app_id).await?.is_none() {
            return Err(StoreError::app_not_found(new.app_id.as_str()));
        }
        let fingerprint = self.fingerprint(secret)?;
        if let Some(alias) = self.store.token_alias_by_fingerprint(&fingerprint).await? {
            return Err(StoreError::DuplicateToken {
                alias: alias.to_string(),
            });
        }
        if self.store.token(&new.alias).await?.is_some() {
            return Err(StoreError::AliasTaken {
                alias: new.alias.to_string(),
            });
        }
        let parent = match &new.parent {
            Some(parent) => Some(
                self.store
                    .token(parent)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: "parent token",
                        name: parent.to_string(),
                        hint: "add the token it was derived from first",
                    })?
                    .token,
            ),
            None => None,
        };
        let now = self.clock.now();
        let mut tags = new.tags;
        tags.sort();
        tags.dedup();
        let token = Token {
            id: random_id("tok"),
            alias: new.alias,
            kind: new.kind,
            app_id: new.app_id,
            hint: display_hint(secret),
            meta_user_id: new.meta_user_id,
            page_id: new.page_id,
            business_id: new.business_id,
            parent_id: parent.as_ref().map(|p| p.id.clone()),
            parent_alias: parent.as_ref().map(|p| p.alias.clone()),
            owner,
            requested_by,
            purpose,
            scopes_needed: new.scopes_needed,
            tags,
            created_at: now,
            updated_at: now,
            status: TokenStatus::Unknown,
            status_cause: "not inspected yet".to_owned(),
            expires: Expiry::Unknown,
            data_access_expires_at: None,
            issued_at: None,
            scopes: None,
            granular_scopes: None,
            last_checked_at: None,
            last_used_at: None,
            flags: Vec::new(),
            meta_kind: None,
            pending_since: None,
            renewal_failures: 0,
            lease_until: None,
            renewal_policy: None,
        };
        let mut event = self.event(actor, "token.added");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({
            "kind": token.kind,
            "hint": token.hint,
            "fingerprint": fingerprint,
            "parent": token.parent_alias,
            "owner": token.owner,
            "requested_by": token.requested_by,
            "purpose": token.purpose,
            "scopes_needed": token.scopes_needed,
            "tags": token.tags,
        });
        self.with_current_key(|| async {
            let record = TokenRecord {
                token: token.clone(),
                secret: self.seal(SecretTable::Tokens, &token.id, secret)?,
                fingerprint: fingerprint.clone(),
                pending: None,
                lease_owner: None,
            };
            self.store.insert_token(&record, &event).await
        })
        .await?;
        Ok(token)
    }

    pub async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>> {
        self.store.token_list(&self.token_query(filter)).await
    }

    /// How many tokens the filter selects.
    pub async fn token_count(&self, filter: &TokenFilter) -> Result<u64> {
        let n = self.store.token_count(&self.token_query(filter)).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One keyset page of the tokens the filter selects, ordered by `(app_id, alias)`, each with
    /// its opened secret, for graphwarden's own calls to Meta: pass the last token's app and
    /// alias as `after` for the next page. A secret that cannot be opened is that token's error,
    /// not the page's. Like [`Inventory::open_token_secret`], never hand these to a person.
    pub async fn token_page_with_secrets(
        &self,
        filter: &TokenFilter,
        after: Option<(&AppId, &TokenAlias)>,
        limit: usize,
    ) -> Result<Vec<(Token, Result<SecretString>)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let records = self
            .store
            .token_page(&self.token_query(filter), after, limit)
            .await?;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let secret = self
                .open_sealed(
                    SecretTable::Tokens,
                    &record.token.id,
                    &record.secret,
                    &format!("token `{}`", record.token.alias),
                )
                .await;
            out.push((record.token, secret));
        }
        Ok(out)
    }

    /// A token with its opened secret, for graphwarden's own calls to Meta.
    pub async fn token_with_secret(
        &self,
        alias: &TokenAlias,
    ) -> Result<(Token, Result<SecretString>)> {
        let record = self.token_record(alias).await?;
        let secret = self
            .open_sealed(
                SecretTable::Tokens,
                &record.token.id,
                &record.secret,
                &format!("token `{alias}`"),
            )
            .await;
        Ok((record.token, secret))
    }

    fn token_query(&self, filter: &TokenFilter) -> TokenQuery {
        TokenQuery {
            status: filter.status,
            kind: filter.kind,
            app_id: filter.app_id.clone(),
            expires_before: filter.expiring_within.map(|d| {
                self.clock
                    .now_ms()
                    .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }),
            tag: filter.tag.clone(),
            parent_id: None,
        }
    }

    async fn token_record(&self, alias: &TokenAlias) -> Result<TokenRecord> {
        self.store
            .token(alias)
            .await?
            .ok_or_else(|| StoreError::token_not_found(alias.as_str()))
    }

    pub async fn token(&self, alias: &TokenAlias) -> Result<Token> {
        Ok(self.token_record(alias).await?.token)
    }

    pub async fn remove_token(&self, alias: &TokenAlias, actor: &str) -> Result<Token> {
        let token = self.token(alias).await?;
        let mut event = self.event(actor, "token.removed");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({ "kind": token.kind, "hint": token.hint });
        if !self.store.delete_token(&token.id, &event).await? {
            return Err(StoreError::token_not_found(alias.as_str()));
        }
        Ok(token)
    }

    /// Hand a person the plaintext token. The event is written first: no record, no secret.
    pub async fn reveal_token(
        &self,
        alias: &TokenAlias,
        actor: &str,
        reason: &str,
    ) -> Result<SecretString> {
        let record = self.token_record(alias).await?;
        let reason = free_text("reason", reason, 500, false)?;
        let secret = self
            .open_sealed(
                SecretTable::Tokens,
                &record.token.id,
                &record.secret,
                &format!("token `{alias}`"),
            )
            .await?;
        let mut event = self.event(actor, "token.revealed");
        event.token_id = Some(record.token.id.clone());
        event.token_alias = Some(record.token.alias.to_string());
        event.app_id = Some(record.token.app_id.to_string());
        event.detail = json!({ "reason": reason });
        self.store.append_event(&event).await?;
        Ok(secret)
    }

    /// The plaintext token, for graphwarden's own calls to Meta (inspection, renewal, the
    /// proxy). Never hand this to a person: that is [`Inventory::reveal_token`], which records
    /// who asked.
    pub async fn open_token_secret(&self, alias: &TokenAlias) -> Result<SecretString> {
        self.token_with_secret(alias).await?.1
    }

    /// Record what an inspection found, with an event for each change (status, scopes, flags).
    ///
    /// A round that could not ask Meta (`details: None`) never buries a known death: a token
    /// already dead keeps its status and cause; a living one becomes `unknown`.
    pub async fn record_inspection(
        &self,
        token: &Token,
        inspection: Inspection,
        actor: &str,
    ) -> Result<InspectionOutcome> {
        let outcomes = self
            .record_inspections(vec![(token, inspection)], actor)
            .await?;
        outcomes
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::token_not_found(token.alias.as_str()))
    }

    /// [`Inventory::record_inspection`] for many tokens, written in one transaction.
    pub async fn record_inspections(
        &self,
        batch: Vec<(&Token, Inspection)>,
        actor: &str,
    ) -> Result<Vec<InspectionOutcome>> {
        let mut writes = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for (token, inspection) in batch {
            let previous = token.status;
            if inspection.details.is_none() && !previous.is_usable() {
                outcomes.push(InspectionOutcome {
                    previous,
                    current: previous,
                });
                continue;
            }
            let mut events = Vec::new();
            let base = |action: &'static str| {
                let mut e = self.event(actor, action);
                e.token_id = Some(token.id.clone());
                e.token_alias = Some(token.alias.to_string());
                e.app_id = Some(token.app_id.to_string());
                e
            };
            if inspection.status != previous {
                let mut e = base("token.status_changed");
                e.detail =
                    json!({ "from": previous, "to": inspection.status, "cause": inspection.cause });
                events.push(e);
            }
            if let (Some(details), Some(before)) = (&inspection.details, &token.scopes) {
                let added: Vec<&String> = details
                    .scopes
                    .iter()
                    .filter(|s| !before.contains(s))
                    .collect();
                let removed: Vec<&String> = before
                    .iter()
                    .filter(|s| !details.scopes.contains(s))
                    .collect();
                if !added.is_empty() || !removed.is_empty() {
                    let mut e = base("token.scopes_changed");
                    e.detail = json!({ "added": added, "removed": removed });
                    events.push(e);
                }
            }
            let new_flags: Vec<&String> = inspection
                .flags
                .iter()
                .filter(|f| !token.flags.contains(f))
                .collect();
            if !new_flags.is_empty() {
                let mut e = base("token.flagged");
                e.detail = json!({ "flags": new_flags });
                events.push(e);
            }
            outcomes.push(InspectionOutcome {
                previous,
                current: inspection.status,
            });
            writes.push(crate::model::InspectionWrite {
                token_id: token.id.clone(),
                inspection,
                events,
            });
        }
        if !writes.is_empty() {
            let written = self.store.record_inspections(&writes).await?;
            if written.iter().any(|w| !w) {
                return Err(StoreError::ConcurrentChange {
                    detail: "a token was removed while it was being inspected".into(),
                });
            }
        }
        Ok(outcomes)
    }

    // ----- renewal (design.md §2: write ahead, verify, promote) -----

    /// Take the renewal lease of `token` for `ttl`; `false` when another renewal holds it.
    pub async fn acquire_renewal_lease(
        &self,
        token: &Token,
        owner: &str,
        ttl: jiff::SignedDuration,
    ) -> Result<bool> {
        let now = self.clock.now_ms();
        let until = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self.store.acquire_lease(&token.id, owner, until, now).await
    }

    pub async fn release_renewal_lease(&self, token: &Token, owner: &str) -> Result<()> {
        self.store.release_lease(&token.id, owner).await
    }

    /// Persist a renewed secret as pending, before anything else is done with it. Needs the
    /// lease. Refuses a secret that is already stored under another alias.
    pub async fn stage_renewal(
        &self,
        token: &Token,
        owner: &str,
        new_secret: &SecretString,
        how: &str,
        actor: &str,
    ) -> Result<()> {
        let secret = check_token_text(new_secret.expose_secret())?;
        let fingerprint = self.fingerprint(secret)?;
        if let Some(alias) = self.store.token_alias_by_fingerprint(&fingerprint).await?
            && alias != token.alias
        {
            return Err(StoreError::DuplicateToken {
                alias: alias.to_string(),
            });
        }
        let mut event = self.event(actor, "token.renewal_staged");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail =
            json!({ "how": how, "hint": display_hint(secret), "fingerprint": fingerprint });
        let pending = crate::model::PendingSecret {
            secret: self.seal(SecretTable::TokensPending, &token.id, secret)?,
            fingerprint,
            hint: display_hint(secret),
        };
        if !self
            .store
            .stage_pending(&token.id, owner, &pending, self.clock.now_ms(), &event)
            .await?
        {
            return Err(StoreError::ConcurrentChange {
                detail: format!("the renewal lease of `{}` was lost", token.alias),
            });
        }
        Ok(())
    }

    /// Whether `secret` is the one stored for `token` (by fingerprint).
    pub async fn holds_secret(&self, token: &Token, secret: &SecretString) -> Result<bool> {
        let record = self.token_record(&token.alias).await?;
        let text = check_token_text(secret.expose_secret())?;
        Ok(self.fingerprint(text)? == record.fingerprint)
    }

    /// The pending secret of `token`, if one waits.
    pub async fn pending_secret(&self, token: &Token) -> Result<Option<SecretString>> {
        let record = self.token_record(&token.alias).await?;
        match &record.pending {
            Some(p) => Ok(Some(
                self.open_sealed(
                    SecretTable::TokensPending,
                    &token.id,
                    &p.secret,
                    &format!("pending secret of `{}`", token.alias),
                )
                .await?,
            )),
            None => Ok(None),
        }
    }

    /// Make the proven pending secret the token's secret; the old one is gone from then on.
    pub async fn promote_renewal(
        &self,
        token: &Token,
        detail: serde_json::Value,
        actor: &str,
    ) -> Result<()> {
        let record = self.token_record(&token.alias).await?;
        let Some(pending) = record.pending else {
            return Err(StoreError::ConcurrentChange {
                detail: format!("the pending secret of `{}` is gone", token.alias),
            });
        };
        let plain = self
            .open_sealed(
                SecretTable::TokensPending,
                &token.id,
                &pending.secret,
                &format!("pending secret of `{}`", token.alias),
            )
            .await?;
        let mut event = self.event(actor, "token.renewed");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({
            "old_hint": record.token.hint,
            "new_hint": pending.hint,
            "fingerprint": pending.fingerprint,
            "detail": detail,
        });
        let sealed = self.seal(SecretTable::Tokens, &token.id, plain.expose_secret())?;
        let promoted = self
            .store
            .promote_pending(
                &token.id,
                &pending.secret,
                &sealed,
                &pending.fingerprint,
                &pending.hint,
                self.clock.now_ms(),
                &event,
            )
            .await?;
        if !promoted {
            return Err(StoreError::ConcurrentChange {
                detail: format!("the pending secret of `{}` changed", token.alias),
            });
        }
        Ok(())
    }

    /// Throw away a pending secret that did not prove itself.
    pub async fn discard_renewal(&self, token: &Token, reason: &str, actor: &str) -> Result<()> {
        let mut event = self.event(actor, "token.renewal_discarded");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({ "reason": reason });
        self.store.discard_pending(&token.id, &event).await
    }

    /// Set or clear a token's own renewal settings.
    pub async fn set_renewal_policy(
        &self,
        token: &Token,
        policy: Option<crate::model::RenewalOverride>,
        actor: &str,
    ) -> Result<()> {
        if let Some(p) = &policy {
            if p.system_user_fraction
                .is_some_and(|f| !(0.1..=0.99).contains(&f))
            {
                return Err(graphwarden_core::InvalidInput::new(
                    "the refresh fraction must be between 0.1 and 0.99",
                )
                .into());
            }
            if p.user_window_secs.is_some_and(|w| w <= 0) {
                return Err(graphwarden_core::InvalidInput::new(
                    "the renewal window must be positive",
                )
                .into());
            }
        }
        let mut event = self.event(actor, "token.renewal_policy_changed");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({ "from": token.renewal_policy, "to": policy });
        self.store
            .set_renewal_policy(&token.id, policy.as_ref(), &event)
            .await
    }

    /// Count a failed renewal; returns the new count.
    pub async fn renewal_failed(&self, token: &Token, reason: &str, actor: &str) -> Result<i64> {
        let failures = token.renewal_failures + 1;
        self.store.set_renewal_failures(&token.id, failures).await?;
        let mut event = self.event(actor, "token.renewal_failed");
        event.token_id = Some(token.id.clone());
        event.token_alias = Some(token.alias.to_string());
        event.app_id = Some(token.app_id.to_string());
        event.detail = json!({ "reason": reason, "failures": failures });
        self.store.append_event(&event).await?;
        Ok(failures)
    }

    /// Tokens derived from `token`.
    pub async fn children(&self, token: &Token) -> Result<Vec<Token>> {
        self.children_of(&token.id).await
    }

    /// Tokens derived from the token with this id.
    pub async fn children_of(&self, token_id: &str) -> Result<Vec<Token>> {
        let query = TokenQuery {
            parent_id: Some(token_id.to_owned()),
            ..TokenQuery::default()
        };
        Ok(self
            .store
            .tokens(&query)
            .await?
            .into_iter()
            .map(|r| r.token)
            .collect())
    }

    pub async fn token_events(&self, alias: &TokenAlias) -> Result<Vec<Event>> {
        let token = self.token(alias).await?;
        self.store.token_events(&token.id).await
    }

    pub async fn recent_events(&self, limit: i64) -> Result<Vec<Event>> {
        self.store.recent_events(limit.clamp(1, 10_000)).await
    }

    // ----- keys -----

    /// Each data key with its state and how many secrets it seals.
    pub async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        let keys = self.store.data_keys().await?;
        let counts: BTreeMap<i64, i64> = self.store.secrets_per_key().await?.into_iter().collect();
        keys.into_iter()
            .map(|k| {
                Ok(KeyUsage {
                    version: k.version,
                    state: k.state,
                    created_at: crate::sql::ts(k.created_at)?,
                    secrets: counts.get(&k.version).copied().unwrap_or(0),
                })
            })
            .collect()
    }

    /// Re-seal every secret under a new data key.
    ///
    /// Safe to interrupt and to run again: each secret is re-sealed in its own conditional
    /// update, retired keys keep opening what they sealed, and a rerun that finds secrets still
    /// on older keys finishes that rotation instead of starting another. Readers and writers
    /// carry on meanwhile; a secret written under the old key during the run is picked up by
    /// the next pass.
    pub async fn rotate_data_key(
        &self,
        options: &RotateOptions,
        actor: &str,
    ) -> Result<RotationReport> {
        self.rotate_data_key_with_progress(options, actor, &|_, _| {})
            .await
    }

    /// [`Inventory::rotate_data_key`], calling `progress(done, total)` after each secret.
    pub async fn rotate_data_key_with_progress(
        &self,
        options: &RotateOptions,
        actor: &str,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<RotationReport> {
        self.reload_keys().await?;
        let active = self.keys.read().map_err(|_| poisoned())?.active;
        let pending = self.store.secrets_not_sealed_with(active, 1).await?;
        let all_keys = self.store.data_keys().await?;
        let resumed = !pending.is_empty() && all_keys.len() > 1;
        let version = if resumed {
            active
        } else {
            let version = all_keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
            let key = SecretKey::generate();
            let record = DataKeyRecord {
                version,
                state: KeyState::Active,
                wrapped: key.wrap(&self.master()?, &data_key_label(version)),
                created_at: self.clock.now_ms(),
            };
            let mut event = self.event(actor, "key.rotated");
            event.detail = json!({ "version": version, "previous": active });
            self.store.add_data_key(&record, &event).await?;
            self.reload_keys().await?;
            version
        };

        let total: usize = self
            .store
            .secrets_per_key()
            .await?
            .iter()
            .filter(|(v, _)| *v != version)
            .map(|(_, n)| usize::try_from(*n).unwrap_or(0))
            .sum();
        let mut resealed = 0usize;
        let mut stopped = false;
        'passes: loop {
            let batch = self
                .store
                .secrets_not_sealed_with(version, options.batch_size.max(1))
                .await?;
            if batch.is_empty() {
                break;
            }
            for item in &batch {
                if options.stop_after.is_some_and(|n| resealed >= n) {
                    stopped = true;
                    break 'passes;
                }
                if self.reseal_one(item, version).await? {
                    resealed += 1;
                    progress(resealed, total.max(resealed));
                }
            }
        }
        let deleted_keys = if stopped {
            Vec::new()
        } else {
            self.store.delete_unused_retired_keys().await?
        };
        if !deleted_keys.is_empty() {
            self.reload_keys().await?;
        }
        Ok(RotationReport {
            version,
            resumed,
            resealed,
            complete: !stopped,
            deleted_keys,
        })
    }

    /// Re-wrap the keyring under `new_master`: the fingerprint key and every data key, in one
    /// transaction. Secrets are untouched (they are sealed with the data keys), so this is quick
    /// whatever the size of the inventory. After it commits, only `new_master` opens the store:
    /// the caller must have saved it first.
    pub async fn rewrap_master_key(&self, new_master: &MasterKey, actor: &str) -> Result<usize> {
        let instance = self
            .store
            .instance()
            .await?
            .ok_or(StoreError::NotInitialized)?;
        let label = fingerprint_key_label(&instance.instance_id);
        let master = self.master()?;
        let fingerprint = SecretKey::unwrap_from(&master, &label, &instance.fingerprint_key)
            .ok_or(StoreError::WrongMasterKey)?;
        let mut wrapped = Vec::new();
        for record in self.store.data_keys().await? {
            let key_label = data_key_label(record.version);
            let key = SecretKey::unwrap_from(&master, &key_label, &record.wrapped)
                .ok_or(StoreError::WrongMasterKey)?;
            wrapped.push((record.version, key.wrap(new_master, &key_label)));
        }
        let mut event = self.event(actor, "master_key.rotated");
        event.detail = json!({ "data_keys": wrapped.len() });
        self.store
            .rewrap_keys(&fingerprint.wrap(new_master, &label), &wrapped, &event)
            .await?;
        *self.master.write().map_err(|_| poisoned())? = new_master.clone();
        Ok(wrapped.len())
    }

    async fn reseal_one(&self, item: &SealedRef, version: i64) -> Result<bool> {
        let what = format!("{} row `{}`", item.table.as_str(), item.row_id);
        let plain = self
            .open_sealed(item.table, &item.row_id, &item.secret, &what)
            .await?;
        let sealed = {
            let keys = self.keys.read().map_err(|_| poisoned())?;
            let key = keys.data.get(&version).ok_or_else(|| StoreError::Decrypt {
                what: format!("data key {version}"),
            })?;
            let aad = secret_aad(
                item.table.as_str(),
                &item.row_id,
                item.table.column(),
                version,
            );
            Sealed {
                key_version: version,
                blob: key.seal(&aad, plain.expose_secret().as_bytes()),
            }
        };
        self.store.reseal(item, &sealed).await
    }
}

async fn load_keyring(
    store: &dyn Store,
    master: &MasterKey,
    fingerprint: SecretKey,
) -> Result<Keyring> {
    let mut data = BTreeMap::new();
    let mut active = None;
    for record in store.data_keys().await? {
        let key = SecretKey::unwrap_from(master, &data_key_label(record.version), &record.wrapped)
            .ok_or(StoreError::WrongMasterKey)?;
        if record.state == KeyState::Active {
            active = Some(active.map_or(record.version, |a: i64| a.max(record.version)));
        }
        data.insert(record.version, key);
    }
    let active = active.ok_or_else(|| StoreError::corrupt("no active data key"))?;
    Ok(Keyring {
        fingerprint,
        data,
        active,
    })
}

fn poisoned() -> StoreError {
    StoreError::Database {
        detail: "the in-memory keyring is unusable after an earlier crash of a task; restart graphwarden".to_owned(),
    }
}
