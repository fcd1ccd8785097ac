-- The alert engine: the dispatcher's state (one row), silences, and the outbox of
-- notifications the senders drain. The state and the notifications a flush produced are written
-- in one transaction, so a restart neither loses a notification nor sends one twice.

CREATE TABLE alert_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX silences_ends_at ON silences (ends_at);

-- One row per notification to one receiver. Its id is the delivery id receivers see
-- (`webhook-id`), the same on every attempt. `state` is pending, delivered or failed.
CREATE TABLE alert_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    receiver TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
