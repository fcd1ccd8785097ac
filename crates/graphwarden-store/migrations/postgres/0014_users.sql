-- Local users who sign in to the dashboard with a password (argon2id hash, PHC string); API
-- keys remain the other way in.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    last_login_at BIGINT
);
