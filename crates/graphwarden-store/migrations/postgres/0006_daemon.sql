-- The daemon (`graphwarden serve`): API keys, and the scheduler's jobs and their runs.

-- API keys are stored as a keyed hash (HMAC under the instance's fingerprint key) of the whole
-- key; `id` is the public part of the key, used to find the row.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

-- One row per scheduled job. `next_run_at` survives restarts; the lease makes one instance run
-- a job at a time when several share a database.
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    schedule TEXT NOT NULL,
    next_run_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE job_runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    owner TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    counts TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX job_runs_job ON job_runs (job, id);
