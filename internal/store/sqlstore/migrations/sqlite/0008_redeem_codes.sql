-- Redeem codes: single use, each worth a balance credit, a concurrency raise or days of a
-- subscription. Only a keyed hash of a code is stored, like an API key's. used_by and
-- group_id keep no foreign key, so a used code stays listed after its user or group goes.
CREATE TABLE redeem_codes (
    id          INTEGER PRIMARY KEY,
    hash        BLOB    NOT NULL UNIQUE CHECK (length(hash) > 0),
    prefix      TEXT    NOT NULL DEFAULT '',
    kind        TEXT    NOT NULL CHECK (kind IN ('balance', 'concurrency', 'subscription')),
    amount      INTEGER NOT NULL DEFAULT 0,
    concurrency INTEGER NOT NULL DEFAULT 0,
    group_id    INTEGER NOT NULL DEFAULT 0,
    days        INTEGER NOT NULL DEFAULT 0,
    note        TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    created_by  INTEGER NOT NULL DEFAULT 0,
    used_by     INTEGER NOT NULL DEFAULT 0,
    used_at     INTEGER,
    created_at  INTEGER NOT NULL,
    CHECK ((kind = 'balance' AND amount > 0) OR (kind = 'concurrency' AND concurrency > 0)
        OR (kind = 'subscription' AND group_id > 0 AND days > 0))
);
