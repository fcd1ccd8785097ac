-- Call records, stored compactly: what many rows share (the caller's token alias, fingerprint
-- and app; the method, path template, change type and outcome; the usage values) is stored
-- once, in its own table, and a row refers to it by id. A row then binds a few integers
-- instead of seven strings, which halves the cost of writing one (BENCHMARKS.md, proxy run 12).
-- `calls` stays, as a view with the columns it had. Shared rows hold empty strings, not NULLs,
-- so their UNIQUE keys match; the view turns them back into NULLs. `used_at` is the latest
-- `at` of the rows that refer to a shared row: once every row before the retention cutoff is
-- gone, shared rows used only before it can go too.

CREATE TABLE call_callers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_alias TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    app_id TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    UNIQUE (token_alias, token_fingerprint, app_id)
);
CREATE TABLE call_kinds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    change TEXT NOT NULL,
    outcome TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    UNIQUE (method, path, change, outcome)
);
CREATE TABLE call_usages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    usage TEXT NOT NULL UNIQUE,
    used_at INTEGER NOT NULL
);
CREATE TABLE call_rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    caller INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    object_id TEXT,
    http_status INTEGER NOT NULL,
    error_code INTEGER,
    error_subcode INTEGER,
    error_class TEXT,
    duration_us INTEGER NOT NULL,
    usage_pct REAL,
    usage INTEGER,
    batch_index INTEGER
);

INSERT INTO call_callers (token_alias, token_fingerprint, app_id, used_at)
SELECT COALESCE(token_alias, ''), COALESCE(token_fingerprint, ''), COALESCE(app_id, ''), MAX(at)
FROM calls GROUP BY COALESCE(token_alias, ''), COALESCE(token_fingerprint, ''), COALESCE(app_id, '');
INSERT INTO call_kinds (method, path, change, outcome, used_at)
SELECT method, path, change, outcome, MAX(at) FROM calls GROUP BY method, path, change, outcome;
INSERT INTO call_usages (usage, used_at)
SELECT usage, MAX(at) FROM calls WHERE usage IS NOT NULL GROUP BY usage;
INSERT INTO call_rows (id, at, caller, kind, object_id, http_status, error_code, error_subcode,
    error_class, duration_us, usage_pct, usage, batch_index)
SELECT c.id, c.at, cc.id, ck.id, c.object_id, c.http_status, c.error_code, c.error_subcode,
    c.error_class, c.duration_us, c.usage_pct, cu.id, c.batch_index
FROM calls c
JOIN call_callers cc ON cc.token_alias = COALESCE(c.token_alias, '')
    AND cc.token_fingerprint = COALESCE(c.token_fingerprint, '') AND cc.app_id = COALESCE(c.app_id, '')
JOIN call_kinds ck ON ck.method = c.method AND ck.path = c.path AND ck.change = c.change
    AND ck.outcome = c.outcome
LEFT JOIN call_usages cu ON cu.usage = c.usage;
DROP TABLE calls;

CREATE INDEX call_rows_at ON call_rows (at);
CREATE INDEX call_rows_caller_at ON call_rows (caller, at);

CREATE VIEW calls AS
SELECT r.id, r.at, NULLIF(cc.token_alias, '') AS token_alias,
    NULLIF(cc.token_fingerprint, '') AS token_fingerprint, NULLIF(cc.app_id, '') AS app_id,
    ck.method, ck.path, r.object_id, ck.change, r.http_status, r.error_code, r.error_subcode,
    r.error_class, r.duration_us, r.usage_pct, cu.usage, r.batch_index, ck.outcome
FROM call_rows r
JOIN call_callers cc ON cc.id = r.caller
JOIN call_kinds ck ON ck.id = r.kind
LEFT JOIN call_usages cu ON cu.id = r.usage;
