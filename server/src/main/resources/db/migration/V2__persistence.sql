-- Persistence (pause without memory, cold resume, snapshots, fork). Portable SQL as in V1.

-- On a paused row: whether the pause keeps the sandbox's memory (false = filesystem only, so resuming cold-boots
-- it). On a running row: whether its last resume or restart kept its memory (false after a cold boot: its
-- processes started afresh). Restart recovery uses it to make the host match the row.
ALTER TABLE sandboxes ADD COLUMN memory_kept BOOLEAN NOT NULL DEFAULT TRUE;
-- The timeout the sandbox was created with, in ms: auto-resume and resumes that name none give it this again.
-- NULL on rows older than this migration (the server's default timeout applies to them).
ALTER TABLE sandboxes ADD COLUMN timeout_ms BIGINT;

-- Snapshots are templates: kind 'snapshot' (listed by GET /snapshots, deleted by DELETE /templates/{id}) or 'fork'
-- (internal to one fork call, never listed, deleted when the forks have started). A snapshot row is written before
-- the driver stores the files and marked ready after, so one left not ready by a crash is cleaned up at start.
-- Its name, if any, is its alias in template_aliases (names are unique: the same name again replaces the old one).
ALTER TABLE templates ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'template';
ALTER TABLE templates ADD COLUMN ready BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE templates ADD COLUMN source_sandbox_id VARCHAR(20);
ALTER TABLE templates ADD COLUMN size_bytes BIGINT;
CREATE INDEX templates_by_kind_and_creation ON templates (kind, created_at, id);
