-- Per-key policies and per-key and per-user rate limits (gateway/policy.go). Allowed models
-- and client networks are newline-separated lists ('' = any); limits of 0 mean none.
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (rpm_limit >= 0);
ALTER TABLE api_keys ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (tpm_limit >= 0);
ALTER TABLE users ADD COLUMN rpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (rpm_limit >= 0);
ALTER TABLE users ADD COLUMN tpm_limit INTEGER NOT NULL DEFAULT 0 CHECK (tpm_limit >= 0);
