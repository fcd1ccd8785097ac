//! The SQL of [`crate::service::ServiceStore`], shared by both backends like `sql.rs`.

/// Expands to the `ServiceStore` implementation for one backend (same requirements as
/// `impl_sql_store!`, whose helpers it uses).
macro_rules! impl_service_store {
    ($store:ident, $db:ty) => {
        mod service_sql {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use $crate::error::{Result, StoreError};
            use $crate::model::NewEvent;
            use $crate::service::{
                AlertDelivery, ApiKey, ApiKeyRecord, AuditRecord, User, UserRecord, DeletionRequest, JobClaim, JobRecord, JobRun,
                NewDelivery, ServiceStore, SilenceRecord,
            };
            use graphwarden_core::alert::{Matchers, Silence};
            use $crate::sql;

            type DbRow = <$db as sqlx::Database>::Row;

            fn api_key_from_row(row: &DbRow) -> Result<ApiKeyRecord> {
                let role: String = row.try_get("role")?;
                let aliases: String = row.try_get("aliases")?;
                let aliases: Vec<String> = serde_json::from_str(&aliases)
                    .map_err(|e| StoreError::corrupt(format!("stored key aliases: {e}")))?;
                Ok(ApiKeyRecord {
                    key: ApiKey {
                        id: row.try_get("id")?,
                        name: row.try_get("name")?,
                        role: role
                            .parse()
                            .map_err(|e: String| StoreError::corrupt(format!("stored role: {e}")))?,
                        aliases: aliases.iter().map(|a| sql::alias(a)).collect::<Result<_>>()?,
                        created_at: sql::ts(row.try_get("created_at")?)?,
                        created_by: row.try_get("created_by")?,
                        last_used_at: sql::opt_ts(row.try_get("last_used_at")?)?,
                        revoked_at: sql::opt_ts(row.try_get("revoked_at")?)?,
                    },
                    hash: row.try_get("hash")?,
                })
            }

            fn job_from_row(row: &DbRow) -> Result<JobRecord> {
                Ok(JobRecord {
                    name: row.try_get("name")?,
                    schedule: row.try_get("schedule")?,
                    next_run_at: sql::opt_ts(row.try_get("next_run_at")?)?,
                    lease_owner: row.try_get("lease_owner")?,
                    lease_until: sql::opt_ts(row.try_get("lease_until")?)?,
                })
            }

            fn run_from_row(row: &DbRow) -> Result<JobRun> {
                let counts: String = row.try_get("counts")?;
                Ok(JobRun {
                    id: row.try_get("id")?,
                    job: row.try_get("job")?,
                    trigger: row.try_get("trigger")?,
                    owner: row.try_get("owner")?,
                    started_at: sql::ts(row.try_get("started_at")?)?,
                    finished_at: sql::opt_ts(row.try_get("finished_at")?)?,
                    outcome: row.try_get("outcome")?,
                    summary: row.try_get("summary")?,
                    counts: serde_json::from_str(&counts)
                        .map_err(|e| StoreError::corrupt(format!("stored run counts: {e}")))?,
                })
            }

            fn delivery_from_row(row: &DbRow) -> Result<AlertDelivery> {
                let notification: String = row.try_get("notification")?;
                let state: String = row.try_get("state")?;
                let attempts: i64 = row.try_get::<i32, _>("attempts")?.into();
                Ok(AlertDelivery {
                    id: row.try_get("id")?,
                    receiver: row.try_get("receiver")?,
                    notification: serde_json::from_str(&notification)
                        .map_err(|e| StoreError::corrupt(format!("stored notification: {e}")))?,
                    attempts,
                    next_attempt_at: sql::ts(row.try_get("next_attempt_at")?)?,
                    state: $crate::service::delivery_state(&state)?,
                    last_error: row.try_get("last_error")?,
                    created_at: sql::ts(row.try_get("created_at")?)?,
                    delivered_at: sql::opt_ts(row.try_get("delivered_at")?)?,
                })
            }

            fn silence_from_row(row: &DbRow) -> Result<SilenceRecord> {
                let matchers: String = row.try_get("matchers")?;
                Ok(SilenceRecord {
                    silence: Silence {
                        id: row.try_get("id")?,
                        matchers: Matchers::parse(&matchers)
                            .map_err(|e| StoreError::corrupt(format!("stored matchers: {e}")))?,
                        starts_at: sql::ts(row.try_get("starts_at")?)?,
                        ends_at: sql::ts(row.try_get("ends_at")?)?,
                        created_by: row.try_get("created_by")?,
                        comment: row.try_get("comment")?,
                    },
                    created_at: sql::ts(row.try_get("created_at")?)?,
                })
            }

            fn attempts(n: i64) -> i32 {
                i32::try_from(n).unwrap_or(i32::MAX)
            }

            const DELIVERY_SELECT: &str = "SELECT id, receiver, notification, attempts, \
                next_attempt_at, state, last_error, created_at, delivered_at FROM alert_deliveries";
            const SILENCE_SELECT: &str = "SELECT id, matchers, starts_at, ends_at, created_by, \
                comment, created_at FROM silences";

            const USER_SELECT: &str = "SELECT name, role, password_hash, created_at, created_by, last_login_at FROM users";

            fn user_from_row(row: &DbRow) -> Result<UserRecord> {
                let role: String = row.try_get("role")?;
                Ok(UserRecord {
                    user: User {
                        name: row.try_get("name")?,
                        role: role
                            .parse()
                            .map_err(|_| StoreError::corrupt(format!("stored user role `{role}`")))?,
                        created_at: sql::ts(row.try_get("created_at")?)?,
                        created_by: row.try_get("created_by")?,
                        last_login_at: sql::opt_ts(row.try_get("last_login_at")?)?,
                    },
                    password_hash: row.try_get("password_hash")?,
                })
            }

            const AUDIT_SELECT: &str = "SELECT id, at, actor, findings, summary FROM audits";

            fn audit_from_row(row: &DbRow) -> Result<AuditRecord> {
                let json = |column: &str| -> Result<serde_json::Value> {
                    let text: String = row.try_get(column)?;
                    serde_json::from_str(&text)
                        .map_err(|e| StoreError::corrupt(format!("stored audit {column}: {e}")))
                };
                Ok(AuditRecord {
                    id: row.try_get("id")?,
                    at_ms: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    findings: json("findings")?,
                    summary: json("summary")?,
                })
            }

            const JOB_SELECT: &str =
                "SELECT name, schedule, next_run_at, lease_owner, lease_until FROM jobs";
            const RUN_SELECT: &str = "SELECT id, job, trigger, owner, started_at, finished_at, \
                outcome, summary, counts FROM job_runs";

            #[async_trait]
            impl ServiceStore for super::$store {
                async fn insert_api_key(&self, key: &ApiKeyRecord, event: &NewEvent) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    let aliases: Vec<&str> = key.key.aliases.iter().map(|a| a.as_str()).collect();
                    let inserted = sqlx::query(
                        "INSERT INTO api_keys (id, name, role, aliases, hash, created_at, created_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&key.key.id)
                    .bind(&key.key.name)
                    .bind(key.key.role.as_str())
                    .bind(sql::to_json(&aliases))
                    .bind(&key.hash)
                    .bind(key.key.created_at.as_millisecond())
                    .bind(&key.key.created_by)
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = inserted {
                        if sql::is_unique_violation(&e) {
                            return Err(StoreError::NameTaken {
                                what: "API key",
                                name: key.key.name.clone(),
                            });
                        }
                        return Err(e.into());
                    }
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
                    let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(api_key_from_row).transpose()
                }

                async fn api_keys(&self) -> Result<Vec<ApiKey>> {
                    let rows = sqlx::query("SELECT * FROM api_keys ORDER BY name")
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(|r| api_key_from_row(r).map(|k| k.key)).collect()
                }

                async fn revoke_api_key(&self, name: &str, at_ms: i64, event: &NewEvent) -> Result<bool> {
                    let mut tx = self.writer().begin().await?;
                    let done = sqlx::query(
                        "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
                    )
                    .bind(at_ms)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn touch_api_key(&self, id: &str, at_ms: i64) -> Result<()> {
                    sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                        .bind(at_ms)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn upsert_job(
                    &self,
                    name: &str,
                    schedule: &str,
                    next_ms: Option<i64>,
                    now_ms: i64,
                ) -> Result<JobRecord> {
                    let mut tx = self.writer().begin().await?;
                    sqlx::query(
                        "INSERT INTO jobs (name, schedule, next_run_at, updated_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO UPDATE SET schedule = excluded.schedule, \
                         next_run_at = excluded.next_run_at, updated_at = excluded.updated_at \
                         WHERE jobs.schedule <> excluded.schedule",
                    )
                    .bind(name)
                    .bind(schedule)
                    .bind(next_ms)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    let row = sqlx::query(&format!("{JOB_SELECT} WHERE name = $1"))
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    job_from_row(&row)
                }

                async fn jobs(&self) -> Result<Vec<JobRecord>> {
                    let rows = sqlx::query(&format!("{JOB_SELECT} ORDER BY name"))
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(job_from_row).collect()
                }

                async fn set_job_next_run(&self, name: &str, next_ms: i64) -> Result<()> {
                    sqlx::query("UPDATE jobs SET next_run_at = $1 WHERE name = $2")
                        .bind(next_ms)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn claim_job(&self, claim: &JobClaim<'_>) -> Result<bool> {
                    let free = "(lease_owner IS NULL OR lease_until IS NULL OR lease_until < $3 OR lease_owner = $2)";
                    let (statement, expected) = match claim.expected_next_ms {
                        None => (
                            format!("UPDATE jobs SET lease_owner = $2, lease_until = $4, next_run_at = COALESCE($5, next_run_at) WHERE name = $1 AND {free}"),
                            None,
                        ),
                        Some(None) => (
                            format!("UPDATE jobs SET lease_owner = $2, lease_until = $4, next_run_at = $5 WHERE name = $1 AND {free} AND next_run_at IS NULL"),
                            None,
                        ),
                        Some(Some(at)) => (
                            format!("UPDATE jobs SET lease_owner = $2, lease_until = $4, next_run_at = $5 WHERE name = $1 AND {free} AND next_run_at = $6"),
                            Some(at),
                        ),
                    };
                    let mut query = sqlx::query(&statement)
                        .bind(claim.name)
                        .bind(claim.owner)
                        .bind(claim.now_ms)
                        .bind(claim.lease_until_ms)
                        .bind(claim.new_next_ms);
                    if let Some(at) = expected {
                        query = query.bind(at);
                    }
                    Ok(query.execute(self.writer()).await?.rows_affected() == 1)
                }

                async fn release_job(&self, name: &str, owner: &str) -> Result<()> {
                    sqlx::query(
                        "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE name = $1 AND lease_owner = $2",
                    )
                    .bind(name)
                    .bind(owner)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn start_job_run(
                    &self,
                    job: &str,
                    trigger: &str,
                    owner: &str,
                    started_ms: i64,
                ) -> Result<i64> {
                    let row = sqlx::query(
                        "INSERT INTO job_runs (job, trigger, owner, started_at, outcome) \
                         VALUES ($1, $2, $3, $4, 'running') RETURNING id",
                    )
                    .bind(job)
                    .bind(trigger)
                    .bind(owner)
                    .bind(started_ms)
                    .fetch_one(self.writer())
                    .await?;
                    Ok(row.try_get("id")?)
                }

                async fn finish_job_run(
                    &self,
                    id: i64,
                    finished_ms: i64,
                    outcome: &str,
                    summary: &str,
                    counts: &serde_json::Value,
                ) -> Result<()> {
                    sqlx::query(
                        "UPDATE job_runs SET finished_at = $1, outcome = $2, summary = $3, counts = $4 WHERE id = $5",
                    )
                    .bind(finished_ms)
                    .bind(outcome)
                    .bind(summary)
                    .bind(sql::to_json(counts))
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn interrupt_stale_runs(&self, now_ms: i64) -> Result<Vec<String>> {
                    let rows = sqlx::query(
                        "UPDATE job_runs SET outcome = 'interrupted', finished_at = $1, \
                         summary = 'the process running it stopped before it finished' \
                         WHERE outcome = 'running' AND NOT EXISTS (SELECT 1 FROM jobs j \
                         WHERE j.name = job_runs.job AND j.lease_owner = job_runs.owner AND j.lease_until >= $1) \
                         RETURNING job",
                    )
                    .bind(now_ms)
                    .fetch_all(self.writer())
                    .await?;
                    let mut jobs = rows
                        .iter()
                        .map(|r| r.try_get::<String, _>("job"))
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    jobs.sort();
                    jobs.dedup();
                    Ok(jobs)
                }

                async fn prune_job_runs(&self, before_ms: i64) -> Result<u64> {
                    let done = sqlx::query(
                        "DELETE FROM job_runs WHERE started_at < $1 AND outcome <> 'running'",
                    )
                    .bind(before_ms)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn insert_deletion_request(
                    &self,
                    request: &DeletionRequest,
                    event: &NewEvent,
                ) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    sqlx::query(
                        "INSERT INTO data_deletion_requests (code, app_id, user_id, requested_at, status, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&request.code)
                    .bind(&request.app_id)
                    .bind(&request.user_id)
                    .bind(request.requested_at.as_millisecond())
                    .bind(&request.status)
                    .bind(&request.detail)
                    .execute(&mut *tx)
                    .await?;
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn deletion_request(&self, code: &str) -> Result<Option<DeletionRequest>> {
                    let row = sqlx::query(
                        "SELECT code, app_id, user_id, requested_at, status, detail FROM data_deletion_requests WHERE code = $1",
                    )
                    .bind(code)
                    .fetch_optional(self.reader())
                    .await?;
                    row.map(|row| {
                        Ok(DeletionRequest {
                            code: row.try_get("code")?,
                            app_id: row.try_get("app_id")?,
                            user_id: row.try_get("user_id")?,
                            requested_at: sql::ts(row.try_get("requested_at")?)?,
                            status: row.try_get("status")?,
                            detail: row.try_get("detail")?,
                        })
                    })
                    .transpose()
                }

                async fn job_runs(&self, job: Option<&str>, limit: i64) -> Result<Vec<JobRun>> {
                    let rows = match job {
                        Some(job) => {
                            sqlx::query(&format!("{RUN_SELECT} WHERE job = $1 ORDER BY id DESC LIMIT $2"))
                                .bind(job)
                                .bind(limit)
                                .fetch_all(self.reader())
                                .await?
                        }
                        None => {
                            sqlx::query(&format!("{RUN_SELECT} ORDER BY id DESC LIMIT $1"))
                                .bind(limit)
                                .fetch_all(self.reader())
                                .await?
                        }
                    };
                    rows.iter().map(run_from_row).collect()
                }

                async fn insert_user(&self, user: &UserRecord, event: &NewEvent) -> Result<()> {
                    let mut tx = self.writer().begin().await?;
                    let inserted = sqlx::query(
                        "INSERT INTO users (name, role, password_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&user.user.name)
                    .bind(user.user.role.as_str())
                    .bind(&user.password_hash)
                    .bind(user.user.created_at.as_millisecond())
                    .bind(&user.user.created_by)
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = inserted {
                        if sql::is_unique_violation(&e) {
                            return Err(StoreError::NameTaken {
                                what: "user",
                                name: user.user.name.clone(),
                            });
                        }
                        return Err(e.into());
                    }
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
                    let row = sqlx::query(&format!("{USER_SELECT} WHERE name = $1"))
                        .bind(name)
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(user_from_row).transpose()
                }

                async fn users(&self) -> Result<Vec<User>> {
                    let rows = sqlx::query(&format!("{USER_SELECT} ORDER BY name"))
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(|r| user_from_row(r).map(|u| u.user)).collect()
                }

                async fn delete_user(&self, name: &str, event: &NewEvent) -> Result<bool> {
                    let mut tx = self.writer().begin().await?;
                    let done = sqlx::query("DELETE FROM users WHERE name = $1")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn set_user_login(&self, name: &str, at_ms: i64) -> Result<()> {
                    sqlx::query("UPDATE users SET last_login_at = $1 WHERE name = $2")
                        .bind(at_ms)
                        .bind(name)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn insert_audit(&self, audit: &AuditRecord, event: &NewEvent) -> Result<i64> {
                    let mut tx = self.writer().begin().await?;
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO audits (at, actor, findings, summary) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(audit.at_ms)
                    .bind(&audit.actor)
                    .bind(sql::to_json(&audit.findings))
                    .bind(sql::to_json(&audit.summary))
                    .fetch_one(&mut *tx)
                    .await?;
                    super::insert_event(&mut tx, self.chain(), event).await?;
                    tx.commit().await?;
                    Ok(id)
                }

                async fn audit(&self, id: i64) -> Result<Option<AuditRecord>> {
                    let row = sqlx::query(&format!("{AUDIT_SELECT} WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(audit_from_row).transpose()
                }

                async fn latest_audit(&self) -> Result<Option<AuditRecord>> {
                    let row = sqlx::query(&format!("{AUDIT_SELECT} ORDER BY id DESC LIMIT 1"))
                        .fetch_optional(self.reader())
                        .await?;
                    row.as_ref().map(audit_from_row).transpose()
                }

                async fn audit_before(&self, id: i64) -> Result<Option<AuditRecord>> {
                    let row = sqlx::query(&format!(
                        "{AUDIT_SELECT} WHERE id < $1 ORDER BY id DESC LIMIT 1"
                    ))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                    row.as_ref().map(audit_from_row).transpose()
                }

                async fn audits(&self, limit: i64) -> Result<Vec<AuditRecord>> {
                    let rows = sqlx::query(
                        "SELECT id, at, actor, 'null' AS findings, summary FROM audits ORDER BY id DESC LIMIT $1",
                    )
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(audit_from_row).collect()
                }

                async fn prune_audits(&self, before_ms: i64) -> Result<u64> {
                    let done = sqlx::query(
                        "DELETE FROM audits WHERE at < $1 AND id < (SELECT MAX(id) FROM audits)",
                    )
                    .bind(before_ms)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn alert_state(&self) -> Result<Option<String>> {
                    let row = sqlx::query("SELECT state FROM alert_state WHERE id = 1")
                        .fetch_optional(self.reader())
                        .await?;
                    Ok(row.map(|r| r.try_get("state")).transpose()?)
                }

                async fn save_alert_state(
                    &self,
                    state: &str,
                    deliveries: &[NewDelivery],
                    now_ms: i64,
                ) -> Result<Vec<i64>> {
                    let mut tx = self.writer().begin().await?;
                    sqlx::query(
                        "INSERT INTO alert_state (id, state, updated_at) VALUES (1, $1, $2) \
                         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                    )
                    .bind(state)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    let mut ids = Vec::with_capacity(deliveries.len());
                    for d in deliveries {
                        let row = sqlx::query(
                            "INSERT INTO alert_deliveries (receiver, notification, next_attempt_at, created_at) \
                             VALUES ($1, $2, $3, $3) RETURNING id",
                        )
                        .bind(&d.receiver)
                        .bind(sql::to_json(&d.notification))
                        .bind(now_ms)
                        .fetch_one(&mut *tx)
                        .await?;
                        ids.push(row.try_get("id")?);
                    }
                    tx.commit().await?;
                    Ok(ids)
                }

                async fn due_deliveries(&self, now_ms: i64, limit: i64) -> Result<Vec<AlertDelivery>> {
                    let rows = sqlx::query(&format!(
                        "{DELIVERY_SELECT} WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
                    ))
                    .bind(now_ms)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                    rows.iter().map(delivery_from_row).collect()
                }

                async fn next_delivery_at(&self) -> Result<Option<jiff::Timestamp>> {
                    let row = sqlx::query(
                        "SELECT MIN(next_attempt_at) AS next FROM alert_deliveries WHERE state = 'pending'",
                    )
                    .fetch_one(self.reader())
                    .await?;
                    sql::opt_ts(row.try_get("next")?)
                }

                async fn deliveries(&self, limit: i64) -> Result<Vec<AlertDelivery>> {
                    let rows = sqlx::query(&format!("{DELIVERY_SELECT} ORDER BY id DESC LIMIT $1"))
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(delivery_from_row).collect()
                }

                async fn mark_delivered(&self, id: i64, attempts_made: i64, at_ms: i64) -> Result<()> {
                    sqlx::query(
                        "UPDATE alert_deliveries SET state = 'delivered', attempts = $1, delivered_at = $2, \
                         last_error = NULL WHERE id = $3",
                    )
                    .bind(attempts(attempts_made))
                    .bind(at_ms)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn retry_delivery(
                    &self,
                    id: i64,
                    attempts_made: i64,
                    next_ms: i64,
                    error: &str,
                ) -> Result<()> {
                    sqlx::query(
                        "UPDATE alert_deliveries SET attempts = $1, next_attempt_at = $2, last_error = $3 \
                         WHERE id = $4 AND state = 'pending'",
                    )
                    .bind(attempts(attempts_made))
                    .bind(next_ms)
                    .bind(error)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn fail_delivery(
                    &self,
                    id: i64,
                    attempts_made: i64,
                    error: &str,
                    at_ms: i64,
                ) -> Result<()> {
                    sqlx::query(
                        "UPDATE alert_deliveries SET state = 'failed', attempts = $1, last_error = $2, \
                         next_attempt_at = $3 WHERE id = $4",
                    )
                    .bind(attempts(attempts_made))
                    .bind(error)
                    .bind(at_ms)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(())
                }

                async fn insert_silence(&self, silence: &Silence, created_ms: i64) -> Result<()> {
                    let inserted = sqlx::query(
                        "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&silence.id)
                    .bind(silence.matchers.to_string())
                    .bind(silence.starts_at.as_millisecond())
                    .bind(silence.ends_at.as_millisecond())
                    .bind(&silence.created_by)
                    .bind(&silence.comment)
                    .bind(created_ms)
                    .execute(self.writer())
                    .await;
                    match inserted {
                        Ok(_) => Ok(()),
                        Err(e) if sql::is_unique_violation(&e) => Err(StoreError::NameTaken {
                            what: "silence",
                            name: silence.id.clone(),
                        }),
                        Err(e) => Err(e.into()),
                    }
                }

                async fn silences(&self) -> Result<Vec<SilenceRecord>> {
                    let rows = sqlx::query(&format!("{SILENCE_SELECT} ORDER BY created_at DESC, id"))
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(silence_from_row).collect()
                }

                async fn live_silences(&self, now_ms: i64) -> Result<Vec<Silence>> {
                    let rows = sqlx::query(&format!("{SILENCE_SELECT} WHERE ends_at > $1 ORDER BY id"))
                        .bind(now_ms)
                        .fetch_all(self.reader())
                        .await?;
                    rows.iter().map(|r| silence_from_row(r).map(|s| s.silence)).collect()
                }

                async fn expire_silence(&self, id: &str, now_ms: i64) -> Result<bool> {
                    // A silence that has not started yet ends before it starts: keep the two
                    // ordered, so it is simply over.
                    let done = sqlx::query(
                        "UPDATE silences SET ends_at = $1, \
                         starts_at = CASE WHEN starts_at > $1 THEN $1 ELSE starts_at END \
                         WHERE id = $2 AND ends_at > $1",
                    )
                    .bind(now_ms)
                    .bind(id)
                    .execute(self.writer())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn prune_alert_history(&self, before_ms: i64) -> Result<(u64, u64)> {
                    let mut tx = self.writer().begin().await?;
                    let deliveries = sqlx::query(
                        "DELETE FROM alert_deliveries WHERE created_at < $1 AND state <> 'pending'",
                    )
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    let silences = sqlx::query("DELETE FROM silences WHERE ends_at < $1")
                        .bind(before_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                    Ok((deliveries, silences))
                }
            }
        }
    };
}

pub(crate) use impl_service_store;
