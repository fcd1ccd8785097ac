-- The encrypted token inventory. Times are Unix epoch milliseconds.
-- Keep version numbers in step with migrations/postgres (a test checks it).

-- One row: this installation, and its fingerprint key wrapped by the master key.
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,
    fingerprint_key BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

-- Data keys, each wrapped by the master key. The newest active one seals new secrets; retired
-- ones still open what they sealed until `key rotate` has moved every secret off them.
CREATE TABLE data_keys (
    version INTEGER PRIMARY KEY CHECK (version > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    wrapped BLOB NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE apps (
    app_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret BLOB NOT NULL,
    secret_key_version INTEGER NOT NULL REFERENCES data_keys (version),
    approved INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
    notes TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    alias TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'page', 'app', 'system_user')),
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    secret BLOB NOT NULL,
    secret_key_version INTEGER NOT NULL REFERENCES data_keys (version),
    fingerprint TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    meta_user_id TEXT,
    page_id TEXT,
    business_id TEXT,
    parent_id TEXT REFERENCES tokens (id) ON DELETE SET NULL,
    owner TEXT NOT NULL DEFAULT '',
    requested_by TEXT NOT NULL DEFAULT '',
    purpose TEXT NOT NULL DEFAULT '',
    scopes_needed TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown',
    status_cause TEXT NOT NULL DEFAULT '',
    expires_at INTEGER,
    data_access_expires_at INTEGER,
    issued_at INTEGER,
    scopes TEXT,
    granular_scopes TEXT,
    last_checked_at INTEGER,
    last_used_at INTEGER
);
CREATE INDEX tokens_app ON tokens (app_id);
CREATE INDEX tokens_parent ON tokens (parent_id);
CREATE INDEX tokens_secret_key_version ON tokens (secret_key_version);

CREATE TABLE token_tags (
    token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (token_id, tag)
);
CREATE INDEX token_tags_tag ON token_tags (tag);

-- Append-only: who did what to which token, when. Never a secret.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    token_id TEXT,
    token_alias TEXT,
    app_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_token ON events (token_id, id);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only');
END;
