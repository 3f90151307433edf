-- Two-factor sign-in and the admin audit log.

-- secret and pending_secret hold secret.Keys.SealString of the base32 TOTP secret. pending_secret
-- is an enrolment not yet confirmed with a code; last_step is the last TOTP step accepted, so
-- a code is never accepted twice.
CREATE TABLE user_totp (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret         TEXT    NOT NULL DEFAULT '',
    pending_secret TEXT    NOT NULL DEFAULT '',
    enabled        INTEGER NOT NULL DEFAULT 0,
    last_step      INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL
);

-- Only a hash of each one-time recovery code is stored; using a code deletes its row.
CREATE TABLE totp_recovery_codes (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash    BLOB    NOT NULL,
    PRIMARY KEY (user_id, hash)
);

-- One row per admin change. before_json/after_json are the record's views with secrets removed.
-- actor_email is kept as it was, so the row still says who acted after the user is deleted.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    actor_user_id INTEGER NOT NULL,
    actor_email   TEXT    NOT NULL DEFAULT '',
    action        TEXT    NOT NULL CHECK (action <> ''),
    target_type   TEXT    NOT NULL DEFAULT '',
    target_id     TEXT    NOT NULL DEFAULT '',
    before_json   TEXT    NOT NULL DEFAULT '',
    after_json    TEXT    NOT NULL DEFAULT '',
    client_ip     TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX audit_log_created ON audit_log (created_at);
CREATE INDEX audit_log_actor ON audit_log (actor_user_id, created_at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
