//! The SQL of [`crate::call::CallStore`], shared by both backends like `sql.rs`.

/// Expands to the `CallStore` implementation for one backend (same requirements as
/// `impl_sql_store!`).
macro_rules! impl_call_store {
    ($store:ident, $db:ty) => {
        mod call_sql {
            use async_trait::async_trait;
            use graphwarden_core::call::{CallRecord, ChangeType};
            use graphwarden_core::pacing::{HoldCause, PaceKey, SharedKey};
            use sqlx::Row as _;

            use $crate::call::{CallStore, QualityScore, QualityTrend, Rollup};
            use $crate::error::{Result, StoreError};

            type DbRow = <$db as sqlx::Database>::Row;

            /// Rows per statement, largest first: a batch is written in statements of these
            /// sizes only, so each backend prepares at most these five statements once per
            /// connection and reuses them (a statement of any other size would be parsed afresh:
            /// thousands of placeholders, every batch). 12 binds a row keeps 256 rows far below
            /// either backend's limit.
            const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

            /// `INSERT INTO call_rows … VALUES (…), (…)` for `CHUNKS[i]` rows, built once, with the
            /// backend's own placeholders (`?` on SQLite, which numbered ones would make look
            /// each parameter up by name; `$n` on PostgreSQL).
            fn insert_sql(i: usize) -> &'static str {
                static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
                let all = SQL.get_or_init(|| {
                    let columns = ROW_COLUMNS.split(',').count();
                    debug_assert_eq!(columns, ROW_BINDS, "`add_row` binds every column");
                    CHUNKS
                        .iter()
                        .map(|&rows| {
                            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                                "INSERT INTO call_rows ({ROW_COLUMNS}) "
                            ));
                            q.push_values(0..rows, |mut b, _| {
                                for _ in 0..columns {
                                    b.push_bind(0_i64);
                                }
                            });
                            q.into_sql()
                        })
                        .collect()
                });
                all.get(i).map_or("", String::as_str)
            }

            /// Binds per row of `call_rows` (the columns of `ROW_COLUMNS`).
            const ROW_BINDS: usize = 12;

            /// One record's row, bound in `ROW_COLUMNS`' order.
            fn add_row<'q>(
                args: &mut <$db as sqlx::Database>::Arguments<'q>,
                c: &'q CallRecord,
                caller: i64,
                kind: i64,
                usage: Option<i64>,
            ) -> std::result::Result<(), sqlx::error::BoxDynError> {
                use sqlx::Arguments as _;
                args.add(c.at_ms)?;
                args.add(caller)?;
                args.add(kind)?;
                args.add(c.object_id.as_deref())?;
                args.add(i64::from(c.http_status))?;
                args.add(c.error_code)?;
                args.add(c.error_subcode)?;
                args.add(c.error_class.as_deref())?;
                args.add(c.duration_us)?;
                args.add(c.usage_pct)?;
                args.add(usage)?;
                args.add(c.batch_index.map(i64::from))
            }

            fn call_from_row(row: &DbRow) -> Result<CallRecord> {
                let change: String = row.try_get("change")?;
                let status: i64 = row.try_get("http_status")?;
                let text = |column: &str| -> Result<Option<std::sync::Arc<str>>> {
                    Ok(row.try_get::<Option<String>, _>(column)?.map(Into::into))
                };
                Ok(CallRecord {
                    at_ms: row.try_get("at")?,
                    token_alias: text("token_alias")?,
                    token_fingerprint: text("token_fingerprint")?,
                    app_id: text("app_id")?,
                    method: row.try_get::<String, _>("method")?.into(),
                    path: row.try_get::<String, _>("path")?.into(),
                    object_id: text("object_id")?,
                    change: ChangeType::parse(&change)
                        .ok_or_else(|| StoreError::corrupt(format!("stored change `{change}`")))?,
                    http_status: u16::try_from(status).unwrap_or(0),
                    error_code: row.try_get("error_code")?,
                    error_subcode: row.try_get("error_subcode")?,
                    error_class: row.try_get("error_class")?,
                    duration_us: row.try_get("duration_us")?,
                    usage_pct: row.try_get("usage_pct")?,
                    usage: text("usage")?,
                    batch_index: row
                        .try_get::<Option<i64>, _>("batch_index")?
                        .and_then(|i| i32::try_from(i).ok()),
                    outcome: row.try_get::<String, _>("outcome")?.into(),
                })
            }

            fn rollup_from_row(row: &DbRow) -> Result<Rollup> {
                Ok(Rollup {
                    minute_ms: row.try_get("minute")?,
                    token_alias: row.try_get("token_alias")?,
                    app_id: row.try_get("app_id")?,
                    account: row.try_get("account")?,
                    path: row.try_get("path")?,
                    error_class: row.try_get("error_class")?,
                    error_code: row.try_get("error_code")?,
                    calls: row.try_get("calls")?,
                    refused: row.try_get("refused")?,
                    duration_us: row.try_get("duration_us")?,
                    max_usage_pct: row.try_get("max_usage_pct")?,
                })
            }

            /// The columns of `call_rows` a record is written to (migration 0015: what many
            /// rows share is in `call_callers`, `call_kinds` and `call_usages`, by id).
            const ROW_COLUMNS: &str = "at, caller, kind, object_id, http_status, error_code, \
                error_subcode, error_class, duration_us, usage_pct, usage, batch_index";

            /// The `calls` view's columns, from `call_rows` joined to what it refers to.
            const JOINED: &str = "SELECT r.id, r.at, NULLIF(cc.token_alias, '') AS token_alias, \
                NULLIF(cc.token_fingerprint, '') AS token_fingerprint, \
                NULLIF(cc.app_id, '') AS app_id, ck.method, ck.path, r.object_id, ck.change, \
                r.http_status, r.error_code, r.error_subcode, r.error_class, r.duration_us, \
                r.usage_pct, cu.usage, r.batch_index, ck.outcome \
                FROM call_rows r JOIN call_callers cc ON cc.id = r.caller \
                JOIN call_kinds ck ON ck.id = r.kind LEFT JOIN call_usages cu ON cu.id = r.usage";

            /// Where a text is: records share their text (`Arc<str>`), so the same place
            /// means the same text, found without hashing (or comparing) its bytes.
            fn place(s: &str) -> (usize, usize) {
                (s.as_ptr() as usize, s.len())
            }

            fn caller_of(c: &CallRecord) -> (&str, &str, &str) {
                (
                    c.token_alias.as_deref().unwrap_or(""),
                    c.token_fingerprint.as_deref().unwrap_or(""),
                    c.app_id.as_deref().unwrap_or(""),
                )
            }

            fn kind_of(c: &CallRecord) -> (&str, &str, &str, &str) {
                (c.method.as_ref(), c.path.as_ref(), c.change.as_str(), c.outcome.as_ref())
            }

            fn caller_place(c: &CallRecord) -> [(usize, usize); 3] {
                let (a, f, p) = caller_of(c);
                [place(a), place(f), place(p)]
            }

            fn kind_place(c: &CallRecord) -> [(usize, usize); 4] {
                let (m, p, ch, o) = kind_of(c);
                [place(m), place(p), place(ch), place(o)]
            }

            /// A batch's distinct values of one shared table: each with the latest `at` of the
            /// records that hold it, then with its id. Found by the places of their text
            /// (`A`), the previous record's first; by the text itself (`K`) only when a place
            /// is new.
            struct Shared<A, K> {
                entries: Vec<(K, i64, i64)>,
                by_place: std::collections::HashMap<A, usize>,
                by_key: std::collections::HashMap<K, usize>,
                last: Option<(A, usize)>,
            }

            impl<A: std::hash::Hash + Eq + Copy, K: std::hash::Hash + Eq + Copy> Shared<A, K> {
                fn new() -> Self {
                    Self {
                        entries: Vec::new(),
                        by_place: std::collections::HashMap::new(),
                        by_key: std::collections::HashMap::new(),
                        last: None,
                    }
                }

                fn index(&mut self, place: A, key: impl FnOnce() -> K, at: i64) -> usize {
                    if let Some((p, i)) = self.last
                        && p == place
                    {
                        return i;
                    }
                    let i = match self.by_place.get(&place) {
                        Some(&i) => i,
                        None => {
                            let key = key();
                            let i = match self.by_key.get(&key) {
                                Some(&i) => i,
                                None => {
                                    self.entries.push((key, at, 0));
                                    self.by_key.insert(key, self.entries.len() - 1);
                                    self.entries.len() - 1
                                }
                            };
                            self.by_place.insert(place, i);
                            i
                        }
                    };
                    self.last = Some((place, i));
                    i
                }

                fn note(&mut self, place: A, key: impl FnOnce() -> K, at: i64) {
                    let i = self.index(place, key, at);
                    let e = &mut self.entries[i];
                    e.1 = e.1.max(at);
                }

                fn id(&mut self, place: A, key: impl FnOnce() -> K) -> i64 {
                    let i = self.index(place, key, 0);
                    self.entries[i].2
                }
            }

            #[async_trait]
            impl CallStore for super::$store {
                async fn insert_calls(&self, calls: &[CallRecord], rollups: &[Rollup]) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    // What the batch's rows share, stored (or found) first, in the same
                    // transaction: a failed batch leaves no ids behind in a cache, and a
                    // concurrent prune cannot delete a shared row this batch refers to (it
                    // waits for the update of `used_at` here, then sees it recent).
                    type Place = (usize, usize);
                    type Caller<'a> = (&'a str, &'a str, &'a str);
                    type Kind<'a> = (&'a str, &'a str, &'a str, &'a str);
                    let mut callers: Shared<[Place; 3], Caller<'_>> = Shared::new();
                    let mut kinds: Shared<[Place; 4], Kind<'_>> = Shared::new();
                    let mut usages: Shared<Place, &str> = Shared::new();
                    for c in calls {
                        callers.note(caller_place(c), || caller_of(c), c.at_ms);
                        kinds.note(kind_place(c), || kind_of(c), c.at_ms);
                        if let Some(u) = c.usage.as_deref() {
                            usages.note(place(u), || u, c.at_ms);
                        }
                    }
                    for ((alias, fingerprint, app), at, id) in callers.entries.iter_mut() {
                        *id = sqlx::query_scalar(
                            "INSERT INTO call_callers (token_alias, token_fingerprint, app_id, used_at) \
                             VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (token_alias, token_fingerprint, app_id) DO UPDATE SET used_at = \
                             CASE WHEN excluded.used_at > call_callers.used_at THEN excluded.used_at \
                             ELSE call_callers.used_at END RETURNING id",
                        )
                        .bind(*alias)
                        .bind(*fingerprint)
                        .bind(*app)
                        .bind(*at)
                        .fetch_one(&mut *tx)
                        .await?;
                    }
                    for ((method, path, change, outcome), at, id) in kinds.entries.iter_mut() {
                        *id = sqlx::query_scalar(
                            "INSERT INTO call_kinds (method, path, change, outcome, used_at) \
                             VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (method, path, change, outcome) DO UPDATE SET used_at = \
                             CASE WHEN excluded.used_at > call_kinds.used_at THEN excluded.used_at \
                             ELSE call_kinds.used_at END RETURNING id",
                        )
                        .bind(*method)
                        .bind(*path)
                        .bind(*change)
                        .bind(*outcome)
                        .bind(*at)
                        .fetch_one(&mut *tx)
                        .await?;
                    }
                    for (usage, at, id) in usages.entries.iter_mut() {
                        *id = sqlx::query_scalar(
                            "INSERT INTO call_usages (usage, used_at) VALUES ($1, $2) \
                             ON CONFLICT (usage) DO UPDATE SET used_at = \
                             CASE WHEN excluded.used_at > call_usages.used_at THEN excluded.used_at \
                             ELSE call_usages.used_at END RETURNING id",
                        )
                        .bind(*usage)
                        .bind(*at)
                        .fetch_one(&mut *tx)
                        .await?;
                    }
                    let mut rest = calls;
                    while !rest.is_empty() {
                        let Some(i) = CHUNKS.iter().position(|&n| n <= rest.len()) else {
                            break;
                        };
                        let (chunk, after) = rest.split_at(CHUNKS[i]);
                        rest = after;
                        // Borrowed binds: the batch's strings are not copied again here. The
                        // arguments are sized once (bound one by one, their list would grow
                        // and be copied a dozen times per statement).
                        let mut args = <$db as sqlx::Database>::Arguments::<'_>::default();
                        sqlx::Arguments::reserve(&mut args, chunk.len() * ROW_BINDS, chunk.len() * 64);
                        for c in chunk {
                            let usage = c.usage.as_deref().map(|u| usages.id(place(u), || u));
                            add_row(
                                &mut args,
                                c,
                                callers.id(caller_place(c), || caller_of(c)),
                                kinds.id(kind_place(c), || kind_of(c)),
                                usage,
                            )
                            .map_err(|e| StoreError::Database { detail: format!("a call record could not be bound: {e}") })?;
                        }
                        sqlx::query_with(insert_sql(i), args).execute(&mut *tx).await?;
                    }
                    for r in rollups {
                        sqlx::query(
                            "INSERT INTO call_rollups (minute, token_alias, app_id, account, path, \
                             error_class, error_code, calls, refused, duration_us, max_usage_pct) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                             ON CONFLICT (minute, token_alias, app_id, account, path, error_class, error_code) \
                             DO UPDATE SET calls = call_rollups.calls + excluded.calls, \
                             refused = call_rollups.refused + excluded.refused, \
                             duration_us = call_rollups.duration_us + excluded.duration_us, \
                             max_usage_pct = CASE WHEN excluded.max_usage_pct > call_rollups.max_usage_pct \
                                 THEN excluded.max_usage_pct ELSE call_rollups.max_usage_pct END",
                        )
                        .bind(r.minute_ms)
                        .bind(&r.token_alias)
                        .bind(&r.app_id)
                        .bind(&r.account)
                        .bind(&r.path)
                        .bind(&r.error_class)
                        .bind(r.error_code)
                        .bind(r.calls)
                        .bind(r.refused)
                        .bind(r.duration_us)
                        .bind(r.max_usage_pct)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn recent_calls(&self, token_alias: Option<&str>, limit: i64) -> Result<Vec<CallRecord>> {
                    let Some(alias) = token_alias else {
                        let rows = sqlx::query(&format!(
                            "{JOINED} ORDER BY r.at DESC, r.id DESC LIMIT $1"
                        ))
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                        return rows.iter().map(call_from_row).collect();
                    };
                    // A token has a caller row per fingerprint and app (a renewed token gets
                    // another): the latest of each, read in index order, then merged.
                    let callers: Vec<i64> =
                        sqlx::query_scalar("SELECT id FROM call_callers WHERE token_alias = $1")
                            .bind(alias)
                            .fetch_all(self.reader())
                            .await?;
                    let mut found: Vec<(i64, i64, CallRecord)> = Vec::new();
                    for caller in callers {
                        let rows = sqlx::query(&format!(
                            "{JOINED} WHERE r.caller = $1 ORDER BY r.at DESC, r.id DESC LIMIT $2"
                        ))
                        .bind(caller)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                        for row in &rows {
                            let id: i64 = row.try_get("id")?;
                            let record = call_from_row(row)?;
                            found.push((record.at_ms, id, record));
                        }
                    }
                    found.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
                    found.truncate(usize::try_from(limit).unwrap_or(0));
                    Ok(found.into_iter().map(|(_, _, r)| r).collect())
                }

                async fn call_count(&self) -> Result<i64> {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM call_rows")
                        .fetch_one(self.reader())
                        .await?;
                    Ok(row.try_get("n")?)
                }

                async fn rollups_since(&self, since_ms: i64) -> Result<Vec<Rollup>> {
                    let rows = sqlx::query(
                        "SELECT minute, token_alias, app_id, account, path, error_class, error_code, \
                         calls, refused, duration_us, max_usage_pct FROM call_rollups \
                         WHERE minute >= $1 ORDER BY minute",
                    )
                    .bind(since_ms)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(rollup_from_row).collect()
                }

                async fn insert_quality(&self, scores: &[QualityScore]) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    for q in scores {
                        sqlx::query(
                            "INSERT INTO dataset_quality (dataset_id, event_name, score, checked_at) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&q.dataset_id)
                        .bind(&q.event_name)
                        .bind(q.score)
                        .bind(q.checked_at_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn quality_trends(&self) -> Result<Vec<QualityTrend>> {
                    let rows = sqlx::query(
                        "SELECT dataset_id, event_name, score, checked_at, n FROM ( \
                           SELECT dataset_id, event_name, score, checked_at, ROW_NUMBER() OVER ( \
                             PARTITION BY dataset_id, event_name ORDER BY checked_at DESC, id DESC) AS n \
                           FROM dataset_quality) ranked \
                         WHERE n <= 2 ORDER BY dataset_id, event_name, n",
                    )
                    .fetch_all(self.reader())
                    .await?;
                    let mut out: Vec<QualityTrend> = Vec::new();
                    for row in &rows {
                        let n: i64 = row.try_get("n")?;
                        let score = QualityScore {
                            dataset_id: row.try_get("dataset_id")?,
                            event_name: row.try_get("event_name")?,
                            score: row.try_get("score")?,
                            checked_at_ms: row.try_get("checked_at")?,
                        };
                        if n == 1 {
                            out.push(QualityTrend { latest: score, previous: None });
                        } else if let Some(last) = out.last_mut()
                            && last.latest.dataset_id == score.dataset_id
                            && last.latest.event_name == score.event_name
                        {
                            last.previous = Some(score.score);
                        }
                    }
                    Ok(out)
                }

                async fn prune_calls(&self, calls_before_ms: i64, rollups_before_ms: i64) -> Result<(u64, u64)> {
                    let mut tx = self.writer().begin().await?;
                    let calls = sqlx::query("DELETE FROM call_rows WHERE at < $1")
                        .bind(calls_before_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    // What only rows before the cutoff referred to (`used_at` is the latest
                    // `at` of the rows that refer to a shared row).
                    for table in ["call_callers", "call_kinds", "call_usages"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE used_at < $1"))
                            .bind(calls_before_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let rollups = sqlx::query("DELETE FROM call_rollups WHERE minute < $1")
                        .bind(rollups_before_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok((calls, rollups))
                }

                async fn share_pacing(
                    &self,
                    instance: &str,
                    keys: &[SharedKey],
                    now_ms: i64,
                    forget_before_ms: i64,
                ) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    for k in keys {
                        sqlx::query(
                            "INSERT INTO pacing_keys (key, instance, percent, observed_at, held_until, \
                               hold, meta_code, meta_subcode, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                             ON CONFLICT (key, instance) DO UPDATE SET percent = excluded.percent, \
                               observed_at = excluded.observed_at, held_until = excluded.held_until, \
                               hold = excluded.hold, meta_code = excluded.meta_code, \
                               meta_subcode = excluded.meta_subcode, updated_at = excluded.updated_at",
                        )
                        .bind(k.key.id())
                        .bind(instance)
                        .bind(k.percent)
                        .bind(k.observed_ms)
                        .bind(k.held_until_ms)
                        .bind(k.hold.map(|h| match h {
                            HoldCause::Usage => "usage",
                            HoldCause::Meta => "meta",
                        }))
                        .bind(k.meta_code.map(|(c, _)| c))
                        .bind(k.meta_code.and_then(|(_, s)| s))
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query("DELETE FROM pacing_keys WHERE updated_at < $1")
                        .bind(forget_before_ms)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn shared_pacing(&self, instance: &str, since_ms: i64) -> Result<Vec<SharedKey>> {
                    let rows = sqlx::query(
                        "SELECT key, percent, observed_at, held_until, hold, meta_code, meta_subcode \
                         FROM pacing_keys WHERE instance <> $1 AND updated_at >= $2",
                    )
                    .bind(instance)
                    .bind(since_ms)
                    .fetch_all(self.reader())
                    .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let id: String = row.try_get("key")?;
                        // A key this version cannot read (a newer instance's) is skipped.
                        let Some(key) = PaceKey::parse(&id) else { continue };
                        let hold: Option<String> = row.try_get("hold")?;
                        let code: Option<i64> = row.try_get("meta_code")?;
                        let subcode: Option<i64> = row.try_get("meta_subcode")?;
                        out.push(SharedKey {
                            key,
                            percent: row.try_get("percent")?,
                            observed_ms: row.try_get("observed_at")?,
                            held_until_ms: row.try_get("held_until")?,
                            hold: match hold.as_deref() {
                                Some("usage") => Some(HoldCause::Usage),
                                Some("meta") => Some(HoldCause::Meta),
                                _ => None,
                            },
                            meta_code: code.map(|c| (c, subcode)),
                        });
                    }
                    Ok(out)
                }
            }
        }
    };
}

pub(crate) use impl_call_store;

/// What the tests of migration 0015 on both backends share: call rows in the layout before it,
/// and what must read back after it.
#[cfg(test)]
pub(crate) mod compact_migration {

    use crate::store::Store;

    /// Four calls in the 0009 layout: three of one token (under two fingerprints, as after a
    /// renewal), one of a token not in the inventory.
    pub const OLD_ROWS: &str = "INSERT INTO calls (id, at, token_alias, token_fingerprint, \
        app_id, method, path, object_id, change, http_status, error_code, error_subcode, \
        error_class, duration_us, usage_pct, usage, batch_index, outcome) VALUES \
        (1, 1000, 'ana', 'fp1', '111', 'GET', '/{version}/me', 'me', 'read', 200, NULL, NULL, \
         NULL, 180, 10.0, '{\"app\":1}', NULL, 'forwarded'), \
        (2, 2000, NULL, 'fp9', NULL, 'POST', '/{version}/{id}', '42', 'budget_change', 400, \
         100, 33, 'bad_request', 90, NULL, NULL, 0, 'refused'), \
        (3, 3000, 'ana', 'fp1', '111', 'GET', '/{version}/me', 'me', 'read', 200, NULL, NULL, \
         NULL, 170, 10.0, '{\"app\":1}', NULL, 'forwarded'), \
        (4, 2500, 'ana', 'fp2', '111', 'GET', '/{version}/me', 'me', 'read', 200, NULL, NULL, \
         NULL, 160, 10.0, '{\"app\":1}', NULL, 'forwarded')";

    /// Copies of the backend's migrations before 0015, in a directory under `scratch`, as an
    /// older graphwarden ran them.
    pub fn older_migrations(backend: &str, scratch: &std::path::Path) -> std::path::PathBuf {
        let older = scratch.join(format!("older-{backend}"));
        std::fs::create_dir_all(&older).unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        for e in std::fs::read_dir(&source).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.as_str() < "0015" {
                std::fs::copy(e.path(), older.join(&name)).unwrap();
            }
        }
        older
    }

    /// After the migration: the three calls as they were, shared values stored once, and a
    /// new call written after them.
    pub async fn read_back(store: &impl Store) {
        let all = store.recent_calls(None, 10).await.unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].at_ms, 2500);
        assert_eq!(all[1].token_fingerprint.as_deref(), Some("fp2"));
        let after: Vec<_> = all.into_iter().filter(|c| c.at_ms != 2500).collect();
        assert_eq!(after.len(), 3);
        assert_eq!(after[0].at_ms, 3000);
        assert_eq!(after[1].token_alias, None);
        assert_eq!(after[1].token_fingerprint.as_deref(), Some("fp9"));
        assert_eq!(after[1].app_id, None);
        assert_eq!(after[1].error_code, Some(100));
        assert_eq!(after[1].error_subcode, Some(33));
        assert_eq!(after[1].error_class.as_deref(), Some("bad_request"));
        assert_eq!(
            after[1].change,
            graphwarden_core::call::ChangeType::BudgetChange
        );
        assert_eq!(after[1].batch_index, Some(0));
        assert_eq!(after[1].usage, None);
        assert_eq!(&*after[1].outcome, "refused");
        assert_eq!(after[2].usage.as_deref(), Some("{\"app\":1}"));
        assert_eq!(after[2].usage_pct, Some(10.0));
        assert_eq!(&*after[2].path, "/{version}/me");
        assert_eq!(after[2].object_id.as_deref(), Some("me"));
        // One token's calls under both fingerprints, merged newest first, and the limit kept.
        let ana = store.recent_calls(Some("ana"), 10).await.unwrap();
        assert_eq!(
            ana.iter().map(|c| c.at_ms).collect::<Vec<_>>(),
            [3000, 2500, 1000]
        );
        let ana = store.recent_calls(Some("ana"), 2).await.unwrap();
        assert_eq!(
            ana.iter().map(|c| c.at_ms).collect::<Vec<_>>(),
            [3000, 2500]
        );
        assert_eq!(store.call_count().await.unwrap(), 4);
        let mut next = after[0].clone();
        next.at_ms = 4000;
        store.insert_calls(&[next], &[]).await.unwrap();
        assert_eq!(
            store.recent_calls(Some("ana"), 1).await.unwrap()[0].at_ms,
            4000
        );
        assert_eq!(store.call_count().await.unwrap(), 5);
    }

    /// Then a prune at 2,600: the calls before it go, and what only they shared (the unknown
    /// token's caller and kind, ana's old fingerprint); what later calls share stays readable.
    pub async fn prune_keeps_what_later_calls_share(store: &impl Store) {
        store.prune_calls(2600, 0).await.unwrap();
        let left = store.recent_calls(None, 10).await.unwrap();
        assert_eq!(
            left.iter().map(|c| c.at_ms).collect::<Vec<_>>(),
            [4000, 3000]
        );
        assert!(left.iter().all(|c| c.token_alias.as_deref() == Some("ana")
            && c.token_fingerprint.as_deref() == Some("fp1")
            && c.usage.as_deref() == Some("{\"app\":1}")));
    }
}
