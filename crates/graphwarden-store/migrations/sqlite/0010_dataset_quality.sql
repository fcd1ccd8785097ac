-- Event Match Quality of Conversions API datasets, as the scheduled `quality` job reads it from
-- Meta's Dataset Quality API: one row per dataset, event and pull, so a drop can be seen.
CREATE TABLE dataset_quality (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id TEXT NOT NULL,
    event_name TEXT NOT NULL,
    score REAL NOT NULL,
    checked_at INTEGER NOT NULL
);
CREATE INDEX dataset_quality_event ON dataset_quality (dataset_id, event_name, checked_at);
