
-- The archive state of each attachment (see src/archive): a file is `archived` only once it
-- is on disk, fsynced, and its SHA-256 verified.
ALTER TABLE attachments ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE attachments ADD COLUMN path TEXT;
ALTER TABLE attachments ADD COLUMN sha256 TEXT;
ALTER TABLE attachments ADD COLUMN bytes INTEGER;
ALTER TABLE attachments ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attachments ADD COLUMN last_error TEXT;
-- Set when the bytes are identical to another tile's upscale of the same grid.
ALTER TABLE attachments ADD COLUMN same_bytes_as INTEGER;
CREATE INDEX attachments_by_state ON attachments(state) WHERE state = 'pending';
CREATE INDEX attachments_by_sha256 ON attachments(sha256) WHERE sha256 IS NOT NULL;
