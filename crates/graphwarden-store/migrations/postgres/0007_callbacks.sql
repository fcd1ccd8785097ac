-- Meta's data-deletion callbacks: each request, with the confirmation code Meta shows the user
-- and the status page answers for.
CREATE TABLE data_deletion_requests (
    code TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
