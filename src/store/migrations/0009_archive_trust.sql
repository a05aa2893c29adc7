-- Transient download failures are never permanent (mjlink_core::retry): a pending image
-- waiting after a failure is not tried again before `next_try_at` (Unix milliseconds; NULL:
-- now).
ALTER TABLE attachments ADD COLUMN next_try_at INTEGER;

-- Where this database's archive is: the folder as last opened and the id also written in the
-- folder's `.mjlink-archive` marker, so a command pointed at another folder stops instead of
-- calling every file missing (and repairing).
CREATE TABLE archive_root (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    archive_id TEXT NOT NULL,
    root       TEXT NOT NULL
);
