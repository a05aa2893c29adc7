-- Multipart uploads to the S3 archive backend in progress (see src/archive/backend.rs): one
-- row per object key, with the file's SHA-256 (an upload is resumed only for the very same
-- bytes), the part size and the parts the store has confirmed, in order. A crash or a store
-- outage mid-upload resumes from the last confirmed part; the row goes when the object is
-- complete. No credential is stored.
CREATE TABLE uploads (
    key        TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL,
    upload_id  TEXT NOT NULL,
    part_bytes INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE TABLE upload_parts (
    key        TEXT NOT NULL REFERENCES uploads(key) ON DELETE CASCADE,
    part       INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    PRIMARY KEY (key, part)
) WITHOUT ROWID;
