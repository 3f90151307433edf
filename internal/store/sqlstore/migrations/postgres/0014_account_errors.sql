-- Failed upstream attempts per UTC day and account (the account's own fault or a transient
-- upstream problem; the request may still have been served by another account). The ledger
-- holds only served requests, so an account's error count lives here. Nodes add their counts
-- in batches; deleting an account leaves its rows, like its ledger rows.
CREATE TABLE account_errors (
    day        TEXT   NOT NULL CHECK (length(day) = 10),
    account_id BIGINT NOT NULL,
    errors     BIGINT NOT NULL CHECK (errors >= 0),
    PRIMARY KEY (account_id, day)
);
