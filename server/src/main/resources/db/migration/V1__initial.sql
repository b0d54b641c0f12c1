-- Portable SQL: the same migrations run on SQLite and PostgreSQL. Times are epoch milliseconds (BIGINT) because
-- SQLite has no timestamp type; JSON is TEXT; secrets (envd token, env vars) are AES-GCM ciphertext (see SecretBox).
CREATE TABLE templates (
    id           VARCHAR(64) PRIMARY KEY,
    cpu_count    INTEGER     NOT NULL,
    memory_mb    INTEGER     NOT NULL,
    disk_size_mb INTEGER     NOT NULL,
    created_at   BIGINT      NOT NULL
);

CREATE TABLE template_aliases (
    alias       VARCHAR(128) PRIMARY KEY,
    template_id VARCHAR(64)  NOT NULL REFERENCES templates (id) ON DELETE CASCADE
);

CREATE TABLE sandboxes (
    id                    VARCHAR(20) PRIMARY KEY,
    template_id           VARCHAR(64) NOT NULL,
    alias                 VARCHAR(128),
    state                 VARCHAR(16) NOT NULL,
    started_at            BIGINT      NOT NULL,
    end_at                BIGINT      NOT NULL,
    cpu_count             INTEGER     NOT NULL,
    memory_mb             INTEGER     NOT NULL,
    disk_size_mb          INTEGER     NOT NULL,
    metadata              TEXT        NOT NULL,
    env_vars              TEXT        NOT NULL,
    envd_access_token     TEXT        NOT NULL,
    allow_internet_access BOOLEAN,
    network               TEXT,
    on_timeout            VARCHAR(8)  NOT NULL,
    auto_resume           BOOLEAN     NOT NULL,
    auto_pause_memory     BOOLEAN     NOT NULL,
    address               VARCHAR(64),
    runtime               VARCHAR(16) NOT NULL
);
CREATE INDEX sandboxes_by_state_and_start ON sandboxes (state, started_at, id);

CREATE TABLE api_keys (
    id           VARCHAR(16)  PRIMARY KEY,
    key_hash     VARCHAR(64)  NOT NULL,
    name         VARCHAR(200) NOT NULL,
    created_at   BIGINT       NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE events (
    id         VARCHAR(36) PRIMARY KEY,
    sandbox_id VARCHAR(20) NOT NULL,
    type       VARCHAR(64) NOT NULL,
    data       TEXT,
    created_at BIGINT      NOT NULL
);
CREATE INDEX events_by_sandbox ON events (sandbox_id, created_at);

-- The template every fresh install has; the runtime driver builds its rootfs on first start.
INSERT INTO templates (id, cpu_count, memory_mb, disk_size_mb, created_at) VALUES ('base', 2, 512, 4096, 0);
INSERT INTO template_aliases (alias, template_id) VALUES ('base', 'base');
