-- The gateway's requests per UTC day and outcome (ok, partial, client_error, upstream_error,
-- rejected_<reason>, an error kind, ...), served or not: the ledger holds only billed
-- requests, so the error rate over time is counted here. Nodes add their counts in batches.
CREATE TABLE request_outcomes (
    day      TEXT   NOT NULL CHECK (length(day) = 10),
    outcome  TEXT   NOT NULL CHECK (outcome <> ''),
    requests BIGINT NOT NULL CHECK (requests >= 0),
    PRIMARY KEY (day, outcome)
);
