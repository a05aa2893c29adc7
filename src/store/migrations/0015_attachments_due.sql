-- An archive pass reads the attachments due by a partial index of their own: pending and of
-- a kind whose images are archived (`archivable`, written by the pipeline from the core's
-- table of kinds, src/store/message_rows.rs). Before, it walked every pending attachment,
-- progress previews included, which stay pending forever: 1.3 million rows at 10 million
-- events. Rows stored before this migration are marked by the store right after it (the
-- list of kinds is the core's, not written here).
ALTER TABLE attachments ADD COLUMN archivable INTEGER NOT NULL DEFAULT 1;
DROP INDEX attachments_by_state;
CREATE INDEX attachments_due ON attachments(id) WHERE state = 'pending' AND archivable = 1;
