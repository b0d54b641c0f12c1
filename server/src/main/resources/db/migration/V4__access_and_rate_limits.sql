-- Access and rate limits (issue 5). Portable SQL: runs on SQLite and PostgreSQL.
-- A sandbox's traffic access token (AES-GCM ciphertext like envd_access_token; NULL when its user ports are public)
-- and the id of the API key that created it (NULL for rows older than this migration), which the per-key sandbox
-- quota counts.
ALTER TABLE sandboxes ADD COLUMN traffic_access_token TEXT;
ALTER TABLE sandboxes ADD COLUMN api_key_id VARCHAR(16);
CREATE INDEX sandboxes_by_api_key ON sandboxes (api_key_id, state);

-- Per-key overrides of the server's rate limits and quota; NULL = the server's setting, 0 = no limit.
ALTER TABLE api_keys ADD COLUMN max_requests INTEGER;
ALTER TABLE api_keys ADD COLUMN max_creates_per_second INTEGER;
ALTER TABLE api_keys ADD COLUMN max_sandboxes INTEGER;
