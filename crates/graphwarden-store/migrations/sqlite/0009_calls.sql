-- The proxy's call records: one row per Graph call (and per batch item), written in batches by
-- one writer task, kept for `proxy.record_retention`; and per-minute rollups, kept longer
-- (`proxy.rollup_retention`), which `graphwarden usage` and the metrics read. Neither holds a
-- secret: tokens are named by alias and keyed fingerprint.

CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    token_alias TEXT,
    token_fingerprint TEXT,
    app_id TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    object_id TEXT,
    change TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    error_code INTEGER,
    error_subcode INTEGER,
    error_class TEXT,
    duration_us INTEGER NOT NULL,
    usage_pct REAL,
    usage TEXT,
    batch_index INTEGER,
    outcome TEXT NOT NULL
);
CREATE INDEX calls_at ON calls (at);
CREATE INDEX calls_token_at ON calls (token_alias, at);

-- Empty strings, not NULLs, in the key columns, so the primary key groups them.
CREATE TABLE call_rollups (
    minute INTEGER NOT NULL,
    token_alias TEXT NOT NULL,
    app_id TEXT NOT NULL,
    account TEXT NOT NULL,
    path TEXT NOT NULL,
    error_class TEXT NOT NULL,
    error_code INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    max_usage_pct REAL NOT NULL,
    PRIMARY KEY (minute, token_alias, app_id, account, path, error_class, error_code)
);
