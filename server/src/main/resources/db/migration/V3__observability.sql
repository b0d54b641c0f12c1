-- Observability (issue 7): lifecycle events in E2B's shape, webhooks and their deliveries, sandbox metrics and
-- sandbox logs. Portable SQL as in V1: times are epoch milliseconds, JSON is TEXT, secrets are SecretBox ciphertext.
-- Row ids of events, deliveries and log lines are time-ordered UUIDs (version 7, monotonic within a server), so
-- ordering by id is ordering by time, ties included.

-- E2B's event fields that V1 did not keep: the template (kept after the sandbox row is gone, so a killed
-- sandbox's events still name it) and the execution (one per run: a create or a resume starts a new one).
ALTER TABLE events ADD COLUMN template_id VARCHAR(64);
ALTER TABLE events ADD COLUMN execution_id VARCHAR(36);
CREATE INDEX events_by_time ON events (created_at, id);

CREATE TABLE webhooks (
    id         VARCHAR(36)  PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    url        TEXT         NOT NULL,
    enabled    BOOLEAN      NOT NULL,
    events     TEXT         NOT NULL, -- JSON array of event types
    secret     TEXT         NOT NULL, -- the signature secret, sealed; never returned by the API
    created_at BIGINT       NOT NULL
);

-- One row per (webhook, event), written in the same transaction as the event, before any attempt: a restart
-- finds what is still pending. The id is the e2b-delivery-id header, the same on every attempt.
CREATE TABLE webhook_deliveries (
    id              VARCHAR(36) PRIMARY KEY,
    webhook_id      VARCHAR(36) NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        VARCHAR(36) NOT NULL,
    status          VARCHAR(16) NOT NULL, -- pending | delivered | failed
    attempts        INTEGER     NOT NULL,
    next_attempt_at BIGINT      NOT NULL,
    last_attempt_at BIGINT,
    last_status     INTEGER,              -- the receiver's HTTP status on the last attempt
    last_error      TEXT,
    created_at      BIGINT      NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, status, id);

CREATE TABLE sandbox_metrics (
    sandbox_id   VARCHAR(20)      NOT NULL,
    sampled_at   BIGINT           NOT NULL,
    cpu_count    INTEGER          NOT NULL,
    cpu_used_pct DOUBLE PRECISION NOT NULL,
    mem_used     BIGINT           NOT NULL,
    mem_total    BIGINT           NOT NULL,
    mem_cache    BIGINT           NOT NULL,
    disk_used    BIGINT           NOT NULL,
    disk_total   BIGINT           NOT NULL,
    PRIMARY KEY (sandbox_id, sampled_at)
);
CREATE INDEX sandbox_metrics_by_time ON sandbox_metrics (sampled_at);

CREATE TABLE sandbox_logs (
    id             VARCHAR(36) PRIMARY KEY,
    sandbox_id     VARCHAR(20) NOT NULL,
    logged_at      BIGINT      NOT NULL,
    level          VARCHAR(8)  NOT NULL, -- debug | info | warn | error
    message        TEXT        NOT NULL,
    fields         TEXT        NOT NULL, -- JSON object
    console_offset BIGINT                -- console lines: where in the console log the next line starts
);
CREATE INDEX sandbox_logs_by_sandbox ON sandbox_logs (sandbox_id, logged_at, id);
CREATE INDEX sandbox_logs_by_time ON sandbox_logs (logged_at);
