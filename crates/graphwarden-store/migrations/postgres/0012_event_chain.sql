-- The event log becomes a hash chain (see src/chain.rs): each row carries the hash of the one
-- before it and its own keyed hash; the head row names the last event under a MAC. Rows written
-- before this migration are counted in the head, not hashed.
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;

CREATE TABLE event_chain (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    legacy_through BIGINT NOT NULL,
    legacy_count BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    count BIGINT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT
);

INSERT INTO event_chain (id, legacy_through, legacy_count, event_id, count, hash)
SELECT 1, COALESCE(MAX(id), 0), COUNT(*), 0, 0,
    '0000000000000000000000000000000000000000000000000000000000000000'
FROM events;
