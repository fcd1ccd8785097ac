-- Crash-safe renewal (design.md §2): the new secret is written here, sealed, before anything
-- else; it replaces `secret` only once Meta has confirmed it. A lease makes renewal of one token
-- single-flight across processes and instances.
ALTER TABLE tokens ADD COLUMN pending_secret BLOB;
ALTER TABLE tokens ADD COLUMN pending_key_version INTEGER REFERENCES data_keys (version);
ALTER TABLE tokens ADD COLUMN pending_fingerprint TEXT;
ALTER TABLE tokens ADD COLUMN pending_hint TEXT;
ALTER TABLE tokens ADD COLUMN pending_since INTEGER;
ALTER TABLE tokens ADD COLUMN lease_owner TEXT;
ALTER TABLE tokens ADD COLUMN lease_until INTEGER;
ALTER TABLE tokens ADD COLUMN renewal_failures INTEGER NOT NULL DEFAULT 0;
