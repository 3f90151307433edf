-- Subscription logins: a version on the credentials, so that a refreshed token is written
-- only over the token it replaces (an older token never overwrites a newer one); the usage
-- windows the upstream last reported, as JSON for display; and the last run of each
-- background job, written only by the holder of the newest lease (the fence).
ALTER TABLE accounts ADD COLUMN credentials_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN usage_windows TEXT NOT NULL DEFAULT '';

CREATE TABLE job_runs (
    name        TEXT PRIMARY KEY,
    fence       INTEGER NOT NULL,
    node        TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    result      TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT ''
);
