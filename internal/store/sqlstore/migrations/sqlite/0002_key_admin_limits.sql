-- Limits an admin imposed on an API key, kept apart from the key's effective status,
-- concurrency and expiry (which the owner may change within them): a disabled flag the owner
-- cannot clear, a concurrency cap (0: none) and an expiry (NULL: none) the owner cannot exceed.
ALTER TABLE api_keys ADD COLUMN admin_disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN admin_concurrency INTEGER NOT NULL DEFAULT 0 CHECK (admin_concurrency >= 0);
ALTER TABLE api_keys ADD COLUMN admin_expires_at INTEGER;
