-- Pacing state shared by proxy instances on one database: each instance writes the keys its own
-- answers changed (one row per key and instance) and merges the rows the others wrote, so a
-- limit one instance sees holds the calls of all of them.
CREATE TABLE pacing_keys (
    key TEXT NOT NULL,
    instance TEXT NOT NULL,
    percent REAL NOT NULL,
    observed_at INTEGER NOT NULL,
    held_until INTEGER NOT NULL,
    hold TEXT,
    meta_code INTEGER,
    meta_subcode INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (key, instance)
);
CREATE INDEX pacing_keys_updated ON pacing_keys (updated_at);
