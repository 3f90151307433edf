-- Every billed request inserts one ledger row, and every index on the ledger is one more
-- B-tree written with it: on SQLite the ledger insert was most of what a request cost the
-- node (a CPU profile at 32 concurrent requests), and on PostgreSQL each index adds WAL. The
-- group and model indexes served only the admin's usage filters by group or model; those
-- filters now read the time range through usage_ledger_created, as the unfiltered admin
-- views already do. The indexes the users' own views (user, key) and the account figures
-- (account) read stay.
DROP INDEX usage_ledger_group;
DROP INDEX usage_ledger_model;
