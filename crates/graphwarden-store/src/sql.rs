//! The SQL both backends share.
//!
//! SQLite and PostgreSQL accept the same statements for everything the inventory does (both take
//! `$N` placeholders, `RETURNING` and `ON DELETE` rules), so the statements and row decoding are
//! written once, in [`impl_sql_store!`], and expanded in each backend module against its own
//! driver types. What differs — connection set-up, migrations, catalogue queries — stays in
//! `sqlite.rs` and `postgres.rs`.

use graphwarden_core::{AppId, MetaId, Scope, Tag, TokenAlias, TokenKind, TokenStatus};
use jiff::Timestamp;

use crate::error::{Result, StoreError};
use crate::model::{GranularScope, KeyState, TokenQuery};

pub(crate) const TOKEN_SELECT: &str = "SELECT t.id, t.alias, t.kind, t.app_id, t.secret, \
    t.secret_key_version, t.fingerprint, t.hint, t.meta_user_id, t.page_id, t.business_id, \
    t.parent_id, p.alias AS parent_alias, t.owner, t.requested_by, t.purpose, t.scopes_needed, \
    t.created_at, t.updated_at, t.status, t.status_cause, t.expires_at, t.data_access_expires_at, \
    t.issued_at, t.scopes, t.granular_scopes, t.last_checked_at, t.last_used_at, t.flags, t.meta_kind, \
    t.pending_secret, t.pending_key_version, t.pending_fingerprint, t.pending_hint, t.pending_since, \
    t.lease_owner, t.lease_until, t.renewal_failures, t.renewal_policy \
    FROM tokens t LEFT JOIN tokens p ON p.id = t.parent_id";

/// [`TOKEN_SELECT`] without the secret columns.
pub(crate) const TOKEN_LIST_SELECT: &str = "SELECT t.id, t.alias, t.kind, t.app_id, t.hint, \
    t.meta_user_id, t.page_id, t.business_id, \
    t.parent_id, p.alias AS parent_alias, t.owner, t.requested_by, t.purpose, t.scopes_needed, \
    t.created_at, t.updated_at, t.status, t.status_cause, t.expires_at, t.data_access_expires_at, \
    t.issued_at, t.scopes, t.granular_scopes, t.last_checked_at, t.last_used_at, t.flags, t.meta_kind, \
    t.pending_since, t.lease_until, t.renewal_failures, t.renewal_policy \
    FROM tokens t LEFT JOIN tokens p ON p.id = t.parent_id";

pub(crate) const APP_SELECT: &str = "SELECT a.app_id, a.name, a.secret, a.secret_key_version, \
    a.approved, a.notes, a.created_at, a.updated_at, \
    (SELECT COUNT(*) FROM tokens t WHERE t.app_id = a.app_id) AS token_count FROM apps a";

pub(crate) const EVENT_SELECT: &str =
    "SELECT id, at, actor, action, token_id, token_alias, app_id, detail FROM events";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events \
    (at, actor, action, token_id, token_alias, app_id, detail, prev_hash, hash) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

/// A value bound into a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The `WHERE` clause (on alias `t`) and its bindings for a token query.
pub(crate) fn token_where(query: &TokenQuery) -> (String, Vec<Bind>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let mut push = |clause: &str, bind: Bind| {
        binds.push(bind);
        clauses.push(clause.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(status) = query.status {
        push("t.status = $?", Bind::Text(status.as_str().to_owned()));
    }
    if let Some(kind) = query.kind {
        push("t.kind = $?", Bind::Text(kind.as_str().to_owned()));
    }
    if let Some(app) = &query.app_id {
        push("t.app_id = $?", Bind::Text(app.to_string()));
    }
    if let Some(before) = query.expires_before {
        push(
            "(t.expires_at > 0 AND t.expires_at <= $?)",
            Bind::Int(before),
        );
    }
    if let Some(parent) = &query.parent_id {
        push("t.parent_id = $?", Bind::Text(parent.clone()));
    }
    if let Some(tag) = &query.tag {
        push(
            "EXISTS (SELECT 1 FROM token_tags f WHERE f.token_id = t.id AND f.tag = $?)",
            Bind::Text(tag.to_string()),
        );
    }
    if clauses.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), binds)
    }
}

pub(crate) fn ts(ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms)
        .map_err(|_| StoreError::corrupt(format!("`{ms}` is not a valid time")))
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(ts).transpose()
}

pub(crate) fn alias(text: &str) -> Result<TokenAlias> {
    TokenAlias::parse(text).map_err(|e| StoreError::corrupt(format!("stored alias: {e}")))
}

pub(crate) fn app_id(text: &str) -> Result<AppId> {
    AppId::parse(text).map_err(|e| StoreError::corrupt(format!("stored app id: {e}")))
}

pub(crate) fn meta_id(text: Option<String>) -> Result<Option<MetaId>> {
    text.map(|t| MetaId::parse(&t).map_err(|e| StoreError::corrupt(format!("stored id: {e}"))))
        .transpose()
}

pub(crate) fn kind(text: &str) -> Result<TokenKind> {
    TokenKind::parse(text).map_err(|e| StoreError::corrupt(format!("stored kind: {e}")))
}

pub(crate) fn status(text: &str) -> Result<TokenStatus> {
    TokenStatus::parse(text).map_err(|e| StoreError::corrupt(format!("stored status: {e}")))
}

pub(crate) fn key_state(text: &str) -> Result<KeyState> {
    match text {
        "active" => Ok(KeyState::Active),
        "retired" => Ok(KeyState::Retired),
        other => Err(StoreError::corrupt(format!("stored key state `{other}`"))),
    }
}

pub(crate) fn scopes_needed(json: &str) -> Result<Vec<Scope>> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(format!("stored scopes: {e}")))
}

pub(crate) fn string_list(json: Option<String>) -> Result<Option<Vec<String>>> {
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| StoreError::corrupt(format!("stored scopes: {e}")))
    })
    .transpose()
}

pub(crate) fn granular(json: Option<String>) -> Result<Option<Vec<GranularScope>>> {
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| StoreError::corrupt(format!("stored granular scopes: {e}")))
    })
    .transpose()
}

pub(crate) fn tag(text: &str) -> Result<Tag> {
    Tag::parse(text).map_err(|e| StoreError::corrupt(format!("stored tag: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising our own plain data types to JSON cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// Expands to the row decoders and the `Store` implementation for one backend.
///
/// `$store` must have inherent `reader()` and `writer()` returning `&sqlx::Pool<$db>`, plus
/// `has_instance_table()`, `run_migrations()` and `BACKEND`.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use std::collections::HashMap;

        use async_trait::async_trait;
        use graphwarden_core::{AppId, Tag, TokenAlias};
        use sqlx::Row as _;

        use $crate::error::{Result, StoreError};
        use $crate::model::{
            App, AppRecord, Backend, DataKeyRecord, Event, Expiry, InstanceRecord, NewEvent,
            SecretTable, Sealed, SealedRef, Token, TokenQuery, TokenRecord,
        };
        use $crate::sql;
        use $crate::store::Store;

        type DbRow = <$db as sqlx::Database>::Row;
        type DbConn = <$db as sqlx::Database>::Connection;

        fn token_from_row(row: &DbRow, tags: Vec<Tag>) -> Result<TokenRecord> {
            let token = token_fields(row, tags)?;
            let pending = match (
                row.try_get::<Option<Vec<u8>>, _>("pending_secret")?,
                row.try_get::<Option<i64>, _>("pending_key_version")?,
            ) {
                (Some(blob), Some(key_version)) => Some($crate::model::PendingSecret {
                    secret: Sealed { key_version, blob },
                    fingerprint: row.try_get::<Option<String>, _>("pending_fingerprint")?.unwrap_or_default(),
                    hint: row.try_get::<Option<String>, _>("pending_hint")?.unwrap_or_default(),
                }),
                _ => None,
            };
            Ok(TokenRecord {
                token,
                secret: Sealed {
                    key_version: row.try_get("secret_key_version")?,
                    blob: row.try_get("secret")?,
                },
                fingerprint: row.try_get("fingerprint")?,
                pending,
                lease_owner: row.try_get("lease_owner")?,
            })
        }

        /// The token without its secrets: what listings need.
        fn token_fields(row: &DbRow, tags: Vec<Tag>) -> Result<Token> {
            Ok(Token {
                id: row.try_get("id")?,
                alias: sql::alias(row.try_get("alias")?)?,
                kind: sql::kind(row.try_get("kind")?)?,
                app_id: sql::app_id(row.try_get("app_id")?)?,
                hint: row.try_get("hint")?,
                meta_user_id: sql::meta_id(row.try_get("meta_user_id")?)?,
                page_id: sql::meta_id(row.try_get("page_id")?)?,
                business_id: sql::meta_id(row.try_get("business_id")?)?,
                parent_id: row.try_get("parent_id")?,
                parent_alias: row
                    .try_get::<Option<String>, _>("parent_alias")?
                    .map(|a| sql::alias(&a))
                    .transpose()?,
                owner: row.try_get("owner")?,
                requested_by: row.try_get("requested_by")?,
                purpose: row.try_get("purpose")?,
                scopes_needed: sql::scopes_needed(row.try_get("scopes_needed")?)?,
                tags,
                created_at: sql::ts(row.try_get("created_at")?)?,
                updated_at: sql::ts(row.try_get("updated_at")?)?,
                status: sql::status(row.try_get("status")?)?,
                status_cause: row.try_get("status_cause")?,
                expires: Expiry::from_column(row.try_get("expires_at")?),
                data_access_expires_at: sql::opt_ts(row.try_get("data_access_expires_at")?)?,
                issued_at: sql::opt_ts(row.try_get("issued_at")?)?,
                scopes: sql::string_list(row.try_get("scopes")?)?,
                granular_scopes: sql::granular(row.try_get("granular_scopes")?)?,
                last_checked_at: sql::opt_ts(row.try_get("last_checked_at")?)?,
                last_used_at: sql::opt_ts(row.try_get("last_used_at")?)?,
                flags: sql::string_list(Some(row.try_get("flags")?))?.unwrap_or_default(),
                meta_kind: row.try_get("meta_kind")?,
                pending_since: sql::opt_ts(row.try_get("pending_since")?)?,
                renewal_failures: row.try_get("renewal_failures")?,
                lease_until: sql::opt_ts(row.try_get("lease_until")?)?,
                renewal_policy: row
                    .try_get::<Option<String>, _>("renewal_policy")?
                    .map(|j| {
                        serde_json::from_str(&j)
                            .map_err(|e| StoreError::corrupt(format!("stored renewal policy: {e}")))
                    })
                    .transpose()?,
            })
        }

        fn app_from_row(row: &DbRow) -> Result<AppRecord> {
            Ok(AppRecord {
                app: App {
                    app_id: sql::app_id(row.try_get("app_id")?)?,
                    name: row.try_get("name")?,
                    approved: row.try_get("approved")?,
                    notes: row.try_get("notes")?,
                    token_count: row.try_get("token_count")?,
                    created_at: sql::ts(row.try_get("created_at")?)?,
                    updated_at: sql::ts(row.try_get("updated_at")?)?,
                },
                secret: Sealed {
                    key_version: row.try_get("secret_key_version")?,
                    blob: row.try_get("secret")?,
                },
            })
        }

        fn event_from_row(row: &DbRow) -> Result<Event> {
            let detail: String = row.try_get("detail")?;
            Ok(Event {
                id: row.try_get("id")?,
                at: sql::ts(row.try_get("at")?)?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                token_id: row.try_get("token_id")?,
                token_alias: row.try_get("token_alias")?,
                app_id: row.try_get("app_id")?,
                detail: serde_json::from_str(&detail)
                    .map_err(|e| StoreError::corrupt(format!("stored event detail: {e}")))?,
            })
        }

        fn key_from_row(row: &DbRow) -> Result<DataKeyRecord> {
            Ok(DataKeyRecord {
                version: row.try_get("version")?,
                state: sql::key_state(row.try_get("state")?)?,
                wrapped: row.try_get("wrapped")?,
                created_at: row.try_get("created_at")?,
            })
        }

        /// Append one event to the chain (see `chain.rs`). The head is updated first: that takes
        /// the write lock (SQLite) or the head row's lock (PostgreSQL), so concurrent appenders
        /// queue up and each sees the hash its predecessor committed.
        async fn insert_event(
            conn: &mut DbConn,
            chain: &$crate::chain::ChainSlot,
            event: &NewEvent,
        ) -> Result<()> {
            let key = chain.key()?;
            let head = sqlx::query(
                "UPDATE event_chain SET count = count + 1 WHERE id = 1 \
                 RETURNING legacy_through, legacy_count, hash, count",
            )
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::EventLog {
                detail: "its head record is missing".into(),
            })?;
            let prev: String = head.try_get("hash")?;
            let count: i64 = head.try_get("count")?;
            let detail = sql::to_json(&event.detail);
            let hash = key.event_hash(
                &prev,
                &$crate::chain::EventFields {
                    at: event.at,
                    actor: &event.actor,
                    action: event.action,
                    token_id: event.token_id.as_deref(),
                    token_alias: event.token_alias.as_deref(),
                    app_id: event.app_id.as_deref(),
                    detail: &detail,
                },
            );
            let id: i64 = sqlx::query_scalar(sql::INSERT_EVENT)
                .bind(event.at)
                .bind(&event.actor)
                .bind(event.action)
                .bind(&event.token_id)
                .bind(&event.token_alias)
                .bind(&event.app_id)
                .bind(&detail)
                .bind(&prev)
                .bind(&hash)
                .fetch_one(&mut *conn)
                .await?;
            let mac = key.head_mac(&$crate::chain::HeadFields {
                legacy_through: head.try_get("legacy_through")?,
                legacy_count: head.try_get("legacy_count")?,
                event_id: id,
                count,
                hash: &hash,
            });
            sqlx::query("UPDATE event_chain SET event_id = $1, hash = $2, mac = $3 WHERE id = 1")
                .bind(id)
                .bind(&hash)
                .bind(&mac)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        fn bind_all<'q>(
            mut query: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            binds: &'q [sql::Bind],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            for bind in binds {
                query = match bind {
                    sql::Bind::Text(text) => query.bind(text.as_str()),
                    sql::Bind::Int(n) => query.bind(*n),
                };
            }
            query
        }

        impl $store {
            async fn tags_where(
                &self,
                where_sql: &str,
                binds: &[sql::Bind],
            ) -> Result<HashMap<String, Vec<Tag>>> {
                let statement = format!(
                    "SELECT tt.token_id, tt.tag FROM token_tags tt JOIN tokens t ON t.id = tt.token_id{where_sql} ORDER BY tt.tag"
                );
                let rows = bind_all(sqlx::query(&statement), binds).fetch_all(self.reader()).await?;
                let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
                for row in &rows {
                    let token_id: String = row.try_get("token_id")?;
                    tags.entry(token_id).or_default().push(sql::tag(row.try_get("tag")?)?);
                }
                Ok(tags)
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                Self::BACKEND
            }

            async fn instance(&self) -> Result<Option<InstanceRecord>> {
                if !self.has_instance_table().await? {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "SELECT instance_id, fingerprint_key, created_at FROM instance WHERE id = 1",
                )
                .fetch_optional(self.reader())
                .await?;
                row.map(|row| {
                    Ok(InstanceRecord {
                        instance_id: row.try_get("instance_id")?,
                        fingerprint_key: row.try_get("fingerprint_key")?,
                        created_at: row.try_get("created_at")?,
                    })
                })
                .transpose()
            }

            async fn migrate(&self) -> Result<()> {
                self.run_migrations().await
            }

            async fn initialize(
                &self,
                instance: &InstanceRecord,
                first_key: &DataKeyRecord,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO instance (id, instance_id, fingerprint_key, created_at) VALUES (1, $1, $2, $3)",
                )
                .bind(&instance.instance_id)
                .bind(&instance.fingerprint_key)
                .bind(instance.created_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if sql::is_unique_violation(&e) => {
                        return Err(StoreError::AlreadyInitialized);
                    }
                    other => {
                        other?;
                    }
                }
                sqlx::query(
                    "INSERT INTO data_keys (version, state, wrapped, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(first_key.version)
                .bind(first_key.state.as_str())
                .bind(&first_key.wrapped)
                .bind(first_key.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn data_keys(&self) -> Result<Vec<DataKeyRecord>> {
                let rows = sqlx::query(
                    "SELECT version, state, wrapped, created_at FROM data_keys ORDER BY version",
                )
                .fetch_all(self.reader())
                .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn add_data_key(&self, key: &DataKeyRecord, event: &NewEvent) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                // Every change to the keyring locks the installation row first, so adding a
                // data key and re-wrapping the keyring under a new master key never interleave.
                sqlx::query("UPDATE instance SET id = id WHERE id = 1")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE data_keys SET state = 'retired' WHERE state = 'active'")
                    .execute(&mut *tx)
                    .await?;
                let inserted = sqlx::query(
                    "INSERT INTO data_keys (version, state, wrapped, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(key.version)
                .bind(key.state.as_str())
                .bind(&key.wrapped)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if sql::is_unique_violation(&e) => {
                        return Err(StoreError::ConcurrentChange {
                            detail: "another key rotation added a data key at the same time".to_owned(),
                        });
                    }
                    other => {
                        other?;
                    }
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn rewrap_keys(
                &self,
                fingerprint_key: &[u8],
                data_keys: &[(i64, Vec<u8>)],
                event: &NewEvent,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE instance SET fingerprint_key = $1 WHERE id = 1")
                    .bind(fingerprint_key)
                    .execute(&mut *tx)
                    .await?;
                let stored: Vec<(i64,)> = sqlx::query_as("SELECT version FROM data_keys ORDER BY version")
                    .fetch_all(&mut *tx)
                    .await?;
                let mut given: Vec<i64> = data_keys.iter().map(|(v, _)| *v).collect();
                given.sort_unstable();
                if stored.iter().map(|(v,)| *v).collect::<Vec<_>>() != given {
                    return Err(StoreError::ConcurrentChange {
                        detail: "the data keys changed while they were being re-wrapped".to_owned(),
                    });
                }
                for (version, wrapped) in data_keys {
                    sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE version = $2")
                        .bind(wrapped)
                        .bind(*version)
                        .execute(&mut *tx)
                        .await?;
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn delete_unused_retired_keys(&self) -> Result<Vec<i64>> {
                let rows = sqlx::query(
                    "DELETE FROM data_keys WHERE state = 'retired' \
                     AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.secret_key_version = data_keys.version) \
                     AND NOT EXISTS (SELECT 1 FROM apps a WHERE a.secret_key_version = data_keys.version) \
                     AND NOT EXISTS (SELECT 1 FROM tokens p WHERE p.pending_key_version = data_keys.version) \
                     RETURNING version",
                )
                .fetch_all(self.writer())
                .await;
                match rows {
                    // A secret sealed with a retired key was written concurrently: keep the key.
                    Err(e) if sql::is_foreign_key_violation(&e) => Ok(Vec::new()),
                    Err(e) => Err(e.into()),
                    Ok(rows) => rows.iter().map(|r| Ok(r.try_get("version")?)).collect(),
                }
            }

            async fn secrets_per_key(&self) -> Result<Vec<(i64, i64)>> {
                let rows = sqlx::query(
                    "SELECT k.version, \
                     (SELECT COUNT(*) FROM tokens t WHERE t.secret_key_version = k.version) \
                     + (SELECT COUNT(*) FROM tokens p WHERE p.pending_key_version = k.version) \
                     + (SELECT COUNT(*) FROM apps a WHERE a.secret_key_version = k.version) AS n \
                     FROM data_keys k ORDER BY k.version",
                )
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("version")?, r.try_get("n")?)))
                    .collect()
            }

            async fn insert_app(&self, record: &AppRecord, event: &NewEvent) -> Result<()> {
                let app = &record.app;
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO apps (app_id, name, secret, secret_key_version, approved, notes, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(app.app_id.as_str())
                .bind(&app.name)
                .bind(&record.secret.blob)
                .bind(record.secret.key_version)
                .bind(app.approved)
                .bind(&app.notes)
                .bind(app.created_at.as_millisecond())
                .bind(app.updated_at.as_millisecond())
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if sql::is_unique_violation(&e) => {
                        return Err(StoreError::AppExists {
                            app_id: app.app_id.to_string(),
                        });
                    }
                    Err(e) if sql::is_foreign_key_violation(&e) => {
                        return Err(StoreError::MissingReference {
                            detail: "data key".to_owned(),
                        });
                    }
                    other => {
                        other?;
                    }
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn app(&self, app_id: &AppId) -> Result<Option<AppRecord>> {
                let statement = format!("{} WHERE a.app_id = $1", sql::APP_SELECT);
                let row = sqlx::query(&statement)
                    .bind(app_id.as_str())
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(app_from_row).transpose()
            }

            async fn apps(&self) -> Result<Vec<AppRecord>> {
                let statement = format!("{} ORDER BY a.name, a.app_id", sql::APP_SELECT);
                let rows = sqlx::query(&statement).fetch_all(self.reader()).await?;
                rows.iter().map(app_from_row).collect()
            }

            async fn delete_app(&self, app_id: &AppId, event: &NewEvent) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let deleted = sqlx::query("DELETE FROM apps WHERE app_id = $1")
                    .bind(app_id.as_str())
                    .execute(&mut *tx)
                    .await;
                let deleted = match deleted {
                    Err(e) if sql::is_foreign_key_violation(&e) => {
                        drop(tx);
                        let tokens = self.app(app_id).await?.map_or(1, |a| a.app.token_count);
                        return Err(StoreError::AppInUse {
                            app_id: app_id.to_string(),
                            tokens,
                        });
                    }
                    other => other?,
                };
                if deleted.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_token(&self, record: &TokenRecord, event: &NewEvent) -> Result<()> {
                let t = &record.token;
                let mut tx = self.writer().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO tokens (id, alias, kind, app_id, secret, secret_key_version, fingerprint, hint, \
                     meta_user_id, page_id, business_id, parent_id, owner, requested_by, purpose, scopes_needed, \
                     created_at, updated_at, status, status_cause, expires_at, data_access_expires_at, issued_at, \
                     scopes, granular_scopes, last_checked_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                     $19, $20, $21, $22, $23, $24, $25, $26, $27)",
                )
                .bind(&t.id)
                .bind(t.alias.as_str())
                .bind(t.kind.as_str())
                .bind(t.app_id.as_str())
                .bind(&record.secret.blob)
                .bind(record.secret.key_version)
                .bind(&record.fingerprint)
                .bind(&t.hint)
                .bind(t.meta_user_id.as_ref().map(|i| i.as_str()))
                .bind(t.page_id.as_ref().map(|i| i.as_str()))
                .bind(t.business_id.as_ref().map(|i| i.as_str()))
                .bind(&t.parent_id)
                .bind(&t.owner)
                .bind(&t.requested_by)
                .bind(&t.purpose)
                .bind(sql::to_json(&t.scopes_needed))
                .bind(t.created_at.as_millisecond())
                .bind(t.updated_at.as_millisecond())
                .bind(t.status.as_str())
                .bind(&t.status_cause)
                .bind(t.expires.to_column())
                .bind(t.data_access_expires_at.map(|x| x.as_millisecond()))
                .bind(t.issued_at.map(|x| x.as_millisecond()))
                .bind(t.scopes.as_ref().map(sql::to_json))
                .bind(t.granular_scopes.as_ref().map(sql::to_json))
                .bind(t.last_checked_at.map(|x| x.as_millisecond()))
                .bind(t.last_used_at.map(|x| x.as_millisecond()))
                .execute(&mut *tx)
                .await;
                match inserted {
                    Err(e) if sql::is_unique_violation(&e) => {
                        drop(tx);
                        return Err(match self.token_alias_by_fingerprint(&record.fingerprint).await? {
                            Some(alias) => StoreError::DuplicateToken {
                                alias: alias.to_string(),
                            },
                            None => StoreError::AliasTaken {
                                alias: t.alias.to_string(),
                            },
                        });
                    }
                    Err(e) if sql::is_foreign_key_violation(&e) => {
                        return Err(StoreError::MissingReference {
                            detail: format!("app `{}`, parent or data key", t.app_id),
                        });
                    }
                    other => {
                        other?;
                    }
                }
                for tag in &t.tags {
                    sqlx::query("INSERT INTO token_tags (token_id, tag) VALUES ($1, $2)")
                        .bind(&t.id)
                        .bind(tag.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn token(&self, alias: &TokenAlias) -> Result<Option<TokenRecord>> {
                let statement = format!("{} WHERE t.alias = $1", sql::TOKEN_SELECT);
                let Some(row) = sqlx::query(&statement)
                    .bind(alias.as_str())
                    .fetch_optional(self.reader())
                    .await?
                else {
                    return Ok(None);
                };
                let binds = [sql::Bind::Text(alias.to_string())];
                let mut tags = self.tags_where(" WHERE t.alias = $1", &binds).await?;
                let id: String = row.try_get("id")?;
                token_from_row(&row, tags.remove(&id).unwrap_or_default()).map(Some)
            }

            async fn token_alias_by_fingerprint(
                &self,
                fingerprint: &str,
            ) -> Result<Option<TokenAlias>> {
                let row = sqlx::query("SELECT alias FROM tokens WHERE fingerprint = $1")
                    .bind(fingerprint)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(|r| sql::alias(r.try_get("alias")?)).transpose()
            }

            async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRecord>> {
                use futures_util::TryStreamExt as _;
                let (where_sql, binds) = sql::token_where(query);
                let mut tags = self.tags_where(&where_sql, &binds).await?;
                let statement = format!("{}{where_sql} ORDER BY t.alias", sql::TOKEN_SELECT);
                let mut rows = bind_all(sqlx::query(&statement), &binds).fetch(self.reader());
                let mut out = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    let id: String = row.try_get("id")?;
                    out.push(token_from_row(&row, tags.remove(&id).unwrap_or_default())?);
                }
                Ok(out)
            }

            async fn token_list(&self, query: &TokenQuery) -> Result<Vec<Token>> {
                use futures_util::TryStreamExt as _;
                let (where_sql, binds) = sql::token_where(query);
                let mut tags = self.tags_where(&where_sql, &binds).await?;
                let statement = format!("{}{where_sql} ORDER BY t.alias", sql::TOKEN_LIST_SELECT);
                // Rows are decoded as they stream in, without their secrets: holding every
                // driver row at once costs several times the memory of the decoded tokens.
                let mut rows = bind_all(sqlx::query(&statement), &binds).fetch(self.reader());
                let mut out = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    let id: String = row.try_get("id")?;
                    out.push(token_fields(&row, tags.remove(&id).unwrap_or_default())?);
                }
                Ok(out)
            }

            async fn token_count(&self, query: &TokenQuery) -> Result<i64> {
                let (where_sql, binds) = sql::token_where(query);
                let statement = format!("SELECT COUNT(*) AS n FROM tokens t{where_sql}");
                let row = bind_all(sqlx::query(&statement), &binds).fetch_one(self.reader()).await?;
                Ok(row.try_get("n")?)
            }

            async fn token_page(
                &self,
                query: &TokenQuery,
                after: Option<(&AppId, &TokenAlias)>,
                limit: i64,
            ) -> Result<Vec<TokenRecord>> {
                use futures_util::TryStreamExt as _;
                let (mut where_sql, mut binds) = sql::token_where(query);
                if let Some((app, alias)) = after {
                    binds.push(sql::Bind::Text(app.to_string()));
                    binds.push(sql::Bind::Text(alias.to_string()));
                    // A row-value comparison: both backends walk `tokens_app_alias` with it.
                    let keyset =
                        format!("(t.app_id, t.alias) > (${}, ${})", binds.len() - 1, binds.len());
                    where_sql = if where_sql.is_empty() {
                        format!(" WHERE {keyset}")
                    } else {
                        format!("{where_sql} AND {keyset}")
                    };
                }
                binds.push(sql::Bind::Int(limit.max(1)));
                let page = format!("{where_sql} ORDER BY t.app_id, t.alias LIMIT ${}", binds.len());
                let statement = format!("{}{page}", sql::TOKEN_SELECT);
                let mut out = Vec::new();
                {
                    let mut rows = bind_all(sqlx::query(&statement), &binds).fetch(self.reader());
                    while let Some(row) = rows.try_next().await? {
                        out.push(row);
                    }
                }
                // Tags of this page only: the same selection, as a sub-query.
                let tag_sql = format!(
                    " WHERE t.id IN (SELECT t.id FROM tokens t{page})"
                );
                let mut tags = self.tags_where(&tag_sql, &binds).await?;
                out.iter()
                    .map(|row| {
                        let id: String = row.try_get("id")?;
                        token_from_row(row, tags.remove(&id).unwrap_or_default())
                    })
                    .collect()
            }

            async fn delete_token(&self, token_id: &str, event: &NewEvent) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let deleted = sqlx::query("DELETE FROM tokens WHERE id = $1")
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await?;
                if deleted.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn record_inspections(
                &self,
                batch: &[$crate::model::InspectionWrite],
            ) -> Result<Vec<bool>> {
                // One transaction for the whole batch: inspection of a large inventory writes
                // thousands of rows, and one commit (one fsync) per row would dominate.
                let mut tx = self.writer().begin().await?;
                let mut written = Vec::with_capacity(batch.len());
                for write in batch {
                    let inspection = &write.inspection;
                    let token_id = write.token_id.as_str();
                    let checked = inspection.checked_at.as_millisecond();
                    let done = sqlx::query(
                        "UPDATE tokens SET status = $1, status_cause = $2, last_checked_at = $3, flags = $4, \
                         updated_at = CASE WHEN status <> $1 THEN $3 ELSE updated_at END WHERE id = $5",
                    )
                    .bind(inspection.status.as_str())
                    .bind(&inspection.cause)
                    .bind(checked)
                    .bind(sql::to_json(&inspection.flags))
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        written.push(false);
                        continue;
                    }
                    if let Some(d) = &inspection.details {
                        sqlx::query(
                            "UPDATE tokens SET expires_at = $1, data_access_expires_at = $2, issued_at = $3, \
                             scopes = $4, granular_scopes = $5, meta_kind = $6, \
                             meta_user_id = COALESCE(meta_user_id, $7), page_id = COALESCE(page_id, $8) WHERE id = $9",
                        )
                        .bind(d.expires.to_column())
                        .bind(d.data_access_expires_at.map(|t| t.as_millisecond()))
                        .bind(d.issued_at.map(|t| t.as_millisecond()))
                        .bind(sql::to_json(&d.scopes))
                        .bind(sql::to_json(&d.granular_scopes))
                        .bind(&d.meta_kind)
                        .bind(d.meta_user_id.as_ref().map(|i| i.as_str()))
                        .bind(d.page_id.as_ref().map(|i| i.as_str()))
                        .bind(token_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    for event in &write.events {
                        insert_event(&mut tx, self.chain(), event).await?;
                    }
                    written.push(true);
                }
                tx.commit().await?;
                Ok(written)
            }

            async fn acquire_lease(&self, token_id: &str, owner: &str, until_ms: i64, now_ms: i64) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE tokens SET lease_owner = $1, lease_until = $2 \
                     WHERE id = $3 AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until IS NULL OR lease_until < $4)",
                )
                .bind(owner)
                .bind(until_ms)
                .bind(token_id)
                .bind(now_ms)
                .execute(self.writer())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_lease(&self, token_id: &str, owner: &str) -> Result<()> {
                sqlx::query("UPDATE tokens SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                    .bind(token_id)
                    .bind(owner)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn stage_pending(
                &self,
                token_id: &str,
                owner: &str,
                pending: &$crate::model::PendingSecret,
                now_ms: i64,
                event: &NewEvent,
            ) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "UPDATE tokens SET pending_secret = $1, pending_key_version = $2, pending_fingerprint = $3, \
                     pending_hint = $4, pending_since = $5 WHERE id = $6 AND lease_owner = $7",
                )
                .bind(&pending.secret.blob)
                .bind(pending.secret.key_version)
                .bind(&pending.fingerprint)
                .bind(&pending.hint)
                .bind(now_ms)
                .bind(token_id)
                .bind(owner)
                .execute(&mut *tx)
                .await;
                let done = match done {
                    Err(e) if sql::is_foreign_key_violation(&e) => {
                        return Err(StoreError::MissingReference { detail: "data key".into() });
                    }
                    other => other?,
                };
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn promote_pending(
                &self,
                token_id: &str,
                expected: &Sealed,
                secret: &Sealed,
                fingerprint: &str,
                hint: &str,
                now_ms: i64,
                event: &NewEvent,
            ) -> Result<bool> {
                let mut tx = self.writer().begin().await?;
                let done = sqlx::query(
                    "UPDATE tokens SET secret = $1, secret_key_version = $2, fingerprint = $3, hint = $4, \
                     pending_secret = NULL, pending_key_version = NULL, pending_fingerprint = NULL, \
                     pending_hint = NULL, pending_since = NULL, renewal_failures = 0, updated_at = $5, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE id = $6 AND pending_secret = $7 AND pending_key_version = $8",
                )
                .bind(&secret.blob)
                .bind(secret.key_version)
                .bind(fingerprint)
                .bind(hint)
                .bind(now_ms)
                .bind(token_id)
                .bind(&expected.blob)
                .bind(expected.key_version)
                .execute(&mut *tx)
                .await;
                let done = match done {
                    Err(e) if sql::is_unique_violation(&e) => {
                        drop(tx);
                        let alias = self.token_alias_by_fingerprint(fingerprint).await?;
                        return Err(StoreError::DuplicateToken { alias: alias.map(|a| a.to_string()).unwrap_or_default() });
                    }
                    other => other?,
                };
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn discard_pending(&self, token_id: &str, event: &NewEvent) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "UPDATE tokens SET pending_secret = NULL, pending_key_version = NULL, pending_fingerprint = NULL, \
                     pending_hint = NULL, pending_since = NULL WHERE id = $1",
                )
                .bind(token_id)
                .execute(&mut *tx)
                .await?;
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_renewal_policy(
                &self,
                token_id: &str,
                policy: Option<&$crate::model::RenewalOverride>,
                event: &NewEvent,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE tokens SET renewal_policy = $1 WHERE id = $2")
                    .bind(policy.map(sql::to_json))
                    .bind(token_id)
                    .execute(&mut *tx)
                    .await?;
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_renewal_failures(&self, token_id: &str, failures: i64) -> Result<()> {
                sqlx::query("UPDATE tokens SET renewal_failures = $1 WHERE id = $2")
                    .bind(failures)
                    .bind(token_id)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn append_event(&self, event: &NewEvent) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                insert_event(&mut tx, self.chain(), event).await?;
                tx.commit().await?;
                Ok(())
            }

            fn set_event_key(&self, key: $crate::chain::ChainKey) {
                self.chain().set(key);
            }

            async fn event_chain_head(&self) -> Result<Option<$crate::chain::ChainHead>> {
                let row = sqlx::query(
                    "SELECT legacy_through, legacy_count, event_id, count, hash, mac \
                     FROM event_chain WHERE id = 1",
                )
                .fetch_optional(self.reader())
                .await?;
                row.map(|row| {
                    Ok($crate::chain::ChainHead {
                        legacy_through: row.try_get("legacy_through")?,
                        legacy_count: row.try_get("legacy_count")?,
                        event_id: row.try_get("event_id")?,
                        count: row.try_get("count")?,
                        hash: row.try_get("hash")?,
                        mac: row.try_get("mac")?,
                    })
                })
                .transpose()
            }

            async fn event_chain_rows(
                &self,
                after_id: i64,
                limit: i64,
            ) -> Result<Vec<$crate::chain::ChainRow>> {
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, token_id, token_alias, app_id, detail, \
                     prev_hash, hash FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after_id)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok($crate::chain::ChainRow {
                            id: row.try_get("id")?,
                            at: row.try_get("at")?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            token_id: row.try_get("token_id")?,
                            token_alias: row.try_get("token_alias")?,
                            app_id: row.try_get("app_id")?,
                            detail: row.try_get("detail")?,
                            prev_hash: row.try_get("prev_hash")?,
                            hash: row.try_get("hash")?,
                        })
                    })
                    .collect()
            }

            async fn events_mentioning(&self, needle: &str, limit: i64) -> Result<Vec<Event>> {
                // Callers pass hex fingerprints, which hold no LIKE wildcards.
                let statement = format!(
                    "{} WHERE detail LIKE $1 ORDER BY id LIMIT $2",
                    sql::EVENT_SELECT
                );
                let rows = sqlx::query(&statement)
                    .bind(format!("%{needle}%"))
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn token_events(&self, token_id: &str) -> Result<Vec<Event>> {
                let statement = format!("{} WHERE token_id = $1 ORDER BY id", sql::EVENT_SELECT);
                let rows = sqlx::query(&statement)
                    .bind(token_id)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn recent_events(&self, limit: i64) -> Result<Vec<Event>> {
                let statement = format!("{} ORDER BY id DESC LIMIT $1", sql::EVENT_SELECT);
                let rows = sqlx::query(&statement)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(event_from_row).collect()
            }

            async fn secrets_not_sealed_with(
                &self,
                version: i64,
                limit: i64,
            ) -> Result<Vec<SealedRef>> {
                let rows = sqlx::query(
                    "SELECT 'apps' AS tbl, app_id AS row_id, secret, secret_key_version FROM apps \
                     WHERE secret_key_version <> $1 \
                     UNION ALL \
                     SELECT 'tokens' AS tbl, id AS row_id, secret, secret_key_version FROM tokens \
                     WHERE secret_key_version <> $1 \
                     UNION ALL \
                     SELECT 'tokens_pending' AS tbl, id AS row_id, pending_secret AS secret, pending_key_version AS secret_key_version \
                     FROM tokens WHERE pending_secret IS NOT NULL AND pending_key_version <> $1 \
                     LIMIT $2",
                )
                .bind(version)
                .bind(limit)
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|row| {
                        let table: String = row.try_get("tbl")?;
                        Ok(SealedRef {
                            table: match table.as_str() {
                                "apps" => SecretTable::Apps,
                                "tokens_pending" => SecretTable::TokensPending,
                                _ => SecretTable::Tokens,
                            },
                            row_id: row.try_get("row_id")?,
                            secret: Sealed {
                                key_version: row.try_get("secret_key_version")?,
                                blob: row.try_get("secret")?,
                            },
                        })
                    })
                    .collect()
            }

            async fn reseal(&self, old: &SealedRef, new: &Sealed) -> Result<bool> {
                let statement = match old.table {
                    SecretTable::Apps => {
                        "UPDATE apps SET secret = $1, secret_key_version = $2 \
                         WHERE app_id = $3 AND secret_key_version = $4 AND secret = $5"
                    }
                    SecretTable::Tokens => {
                        "UPDATE tokens SET secret = $1, secret_key_version = $2 \
                         WHERE id = $3 AND secret_key_version = $4 AND secret = $5"
                    }
                    SecretTable::TokensPending => {
                        "UPDATE tokens SET pending_secret = $1, pending_key_version = $2 \
                         WHERE id = $3 AND pending_key_version = $4 AND pending_secret = $5"
                    }
                };
                let done = sqlx::query(statement)
                    .bind(&new.blob)
                    .bind(new.key_version)
                    .bind(&old.row_id)
                    .bind(old.secret.key_version)
                    .bind(&old.secret.blob)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_sql_store;
