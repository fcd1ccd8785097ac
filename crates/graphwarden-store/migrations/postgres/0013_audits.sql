-- Security audits (`graphwarden audit`, the weekly `audit` job): each run's findings as JSON,
-- kept so the next report can say what is new and what was resolved. Never a secret.
CREATE TABLE audits (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    findings TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX audits_at ON audits (at);
