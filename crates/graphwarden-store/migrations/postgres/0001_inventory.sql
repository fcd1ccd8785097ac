-- The encrypted token inventory. Times are Unix epoch milliseconds.
-- Keep version numbers in step with migrations/sqlite (a test checks it).

CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,
    fingerprint_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE data_keys (
    version BIGINT PRIMARY KEY CHECK (version > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
    wrapped BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE apps (
    app_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret BYTEA NOT NULL,
    secret_key_version BIGINT NOT NULL REFERENCES data_keys (version),
    approved BOOLEAN NOT NULL DEFAULT FALSE,
    notes TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    alias TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'page', 'app', 'system_user')),
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    secret BYTEA NOT NULL,
    secret_key_version BIGINT NOT NULL REFERENCES data_keys (version),
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
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unknown',
    status_cause TEXT NOT NULL DEFAULT '',
    expires_at BIGINT,
    data_access_expires_at BIGINT,
    issued_at BIGINT,
    scopes TEXT,
    granular_scopes TEXT,
    last_checked_at BIGINT,
    last_used_at BIGINT
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

CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    token_id TEXT,
    token_alias TEXT,
    app_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_token ON events (token_id, id);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only';
END;
$$;

CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
