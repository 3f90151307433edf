-- FluxCode schema, SQLite dialect. Times are INTEGER microseconds since the Unix epoch (UTC),
-- so they compare and sort as numbers; money is INTEGER nano-dollars.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL COLLATE NOCASE UNIQUE CHECK (email <> ''),
    password_hash TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    balance       INTEGER NOT NULL DEFAULT 0,
    concurrency   INTEGER NOT NULL DEFAULT 0 CHECK (concurrency >= 0),
    token_version INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX users_role ON users (role);

CREATE TABLE groups (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE CHECK (name <> ''),
    description         TEXT    NOT NULL DEFAULT '',
    platform            TEXT    NOT NULL CHECK (platform IN ('anthropic', 'openai', 'gemini')),
    billing_type        TEXT    NOT NULL CHECK (billing_type IN ('balance', 'subscription')),
    rate_multiplier_ppm INTEGER NOT NULL CHECK (rate_multiplier_ppm >= 0),
    daily_limit         INTEGER NOT NULL DEFAULT 0 CHECK (daily_limit >= 0),
    weekly_limit        INTEGER NOT NULL DEFAULT 0 CHECK (weekly_limit >= 0),
    monthly_limit       INTEGER NOT NULL DEFAULT 0 CHECK (monthly_limit >= 0),
    status              TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- Only the keyed hash of a key is stored; hash is the lookup path of every gateway request.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id     INTEGER NOT NULL REFERENCES groups (id) ON DELETE RESTRICT,
    name         TEXT    NOT NULL DEFAULT '',
    hash         BLOB    NOT NULL UNIQUE CHECK (length(hash) > 0),
    prefix       TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    concurrency  INTEGER NOT NULL DEFAULT 0 CHECK (concurrency >= 0),
    expires_at   INTEGER,
    last_used_at INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE INDEX api_keys_group ON api_keys (group_id);

-- password holds secret.Keys.SealString of the password, never the password.
CREATE TABLE proxies (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL DEFAULT '',
    protocol   TEXT    NOT NULL CHECK (protocol IN ('http', 'https', 'socks5', 'socks5h')),
    host       TEXT    NOT NULL CHECK (host <> ''),
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    username   TEXT    NOT NULL DEFAULT '',
    password   TEXT    NOT NULL DEFAULT '',
    status     TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- credentials holds only secret.Keys.SealString of the JSON of store.Credentials.
CREATE TABLE accounts (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL DEFAULT '',
    platform            TEXT    NOT NULL CHECK (platform IN ('anthropic', 'openai', 'gemini')),
    type                TEXT    NOT NULL CHECK (type IN ('apikey', 'oauth')),
    credentials         TEXT    NOT NULL,
    base_url            TEXT    NOT NULL DEFAULT '',
    proxy_id            INTEGER REFERENCES proxies (id) ON DELETE SET NULL,
    priority            INTEGER NOT NULL DEFAULT 0,
    concurrency         INTEGER NOT NULL DEFAULT 0 CHECK (concurrency >= 0),
    model_mapping       TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(model_mapping)),
    status              TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'error')),
    error_message       TEXT    NOT NULL DEFAULT '',
    schedulable         INTEGER NOT NULL DEFAULT 1,
    rate_limited_until  INTEGER,
    overloaded_until    INTEGER,
    temp_unsched_until  INTEGER,
    temp_unsched_reason TEXT    NOT NULL DEFAULT '',
    last_used_at        INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX accounts_proxy ON accounts (proxy_id);

CREATE TABLE account_groups (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, group_id)
);
CREATE INDEX account_groups_group ON account_groups (group_id);

CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE error_rules (
    id          INTEGER PRIMARY KEY,
    status_code INTEGER NOT NULL CHECK (status_code BETWEEN 100 AND 599),
    keyword     TEXT    NOT NULL DEFAULT '',
    minutes     INTEGER NOT NULL CHECK (minutes > 0),
    enabled     INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
);

CREATE TABLE subscriptions (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id      INTEGER NOT NULL REFERENCES groups (id) ON DELETE RESTRICT,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'expired')),
    starts_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    daily_used    INTEGER NOT NULL DEFAULT 0,
    daily_start   INTEGER NOT NULL,
    weekly_used   INTEGER NOT NULL DEFAULT 0,
    weekly_start  INTEGER NOT NULL,
    monthly_used  INTEGER NOT NULL DEFAULT 0,
    monthly_start INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (user_id, group_id)
);
CREATE INDEX subscriptions_group ON subscriptions (group_id);

-- created_by is the admin's id, kept even when that admin is later deleted.
CREATE TABLE balance_transactions (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount     INTEGER NOT NULL CHECK (amount <> 0),
    note       TEXT    NOT NULL DEFAULT '',
    created_by INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX balance_transactions_user ON balance_transactions (user_id, id);

-- The ledger keeps no foreign keys: a served request stays billed and listed after its key,
-- account or group is deleted, and one vanished user must not fail a whole batch.
CREATE TABLE usage_ledger (
    id                       INTEGER PRIMARY KEY,
    request_id               TEXT    NOT NULL UNIQUE CHECK (request_id <> ''),
    user_id                  INTEGER NOT NULL,
    api_key_id               INTEGER NOT NULL,
    account_id               INTEGER NOT NULL,
    group_id                 INTEGER NOT NULL,
    platform                 TEXT    NOT NULL DEFAULT '',
    model                    TEXT    NOT NULL DEFAULT '',
    upstream_model           TEXT    NOT NULL DEFAULT '',
    input_tokens             INTEGER NOT NULL DEFAULT 0,
    output_tokens            INTEGER NOT NULL DEFAULT 0,
    cache_creation_5m_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_1h_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens        INTEGER NOT NULL DEFAULT 0,
    cost                     INTEGER NOT NULL DEFAULT 0,
    rate_multiplier_ppm      INTEGER NOT NULL DEFAULT 0,
    charged                  INTEGER NOT NULL DEFAULT 0,
    billing_type             TEXT    NOT NULL CHECK (billing_type IN ('balance', 'subscription')),
    stream                   INTEGER NOT NULL DEFAULT 0,
    partial                  INTEGER NOT NULL DEFAULT 0,
    status_code              INTEGER NOT NULL DEFAULT 0,
    duration_ms              INTEGER NOT NULL DEFAULT 0,
    first_byte_ms            INTEGER NOT NULL DEFAULT 0,
    created_at               INTEGER NOT NULL
);
CREATE INDEX usage_ledger_created ON usage_ledger (created_at);
CREATE INDEX usage_ledger_user ON usage_ledger (user_id, created_at);
CREATE INDEX usage_ledger_key ON usage_ledger (api_key_id, created_at);
CREATE INDEX usage_ledger_account ON usage_ledger (account_id, created_at);
CREATE INDEX usage_ledger_group ON usage_ledger (group_id, created_at);
CREATE INDEX usage_ledger_model ON usage_ledger (model, created_at);
