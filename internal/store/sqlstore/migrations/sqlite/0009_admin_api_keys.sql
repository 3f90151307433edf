-- Admin API keys (api/admin_keys.go): a keyed hash of each, never the key. A key acts for its
-- creator; it goes with them. Revoked keys stay, so the audit log's admin_key_id still names one.
CREATE TABLE admin_api_keys (
    id           INTEGER PRIMARY KEY,
    created_by   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL CHECK (name <> ''),
    hash         BLOB    NOT NULL UNIQUE CHECK (length(hash) > 0),
    prefix       TEXT    NOT NULL DEFAULT '',
    last_used_at INTEGER,
    revoked_at   INTEGER,
    created_at   INTEGER NOT NULL
);
CREATE INDEX admin_api_keys_creator ON admin_api_keys (created_by);

-- The admin API key an audited change was made through; 0 for a signed-in session.
ALTER TABLE audit_log ADD COLUMN admin_key_id INTEGER NOT NULL DEFAULT 0;
