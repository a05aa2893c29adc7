-- Format drift (mjlink_core::drift): Midjourney messages that parse to nothing known.
-- Those that decoded are stored with kind 'other'; this index counts them by day, reading
-- only them (the text of its WHERE is the core's name for the kind, checked by a test).
CREATE INDEX messages_unknown_by_day ON messages(day) WHERE kind = 'other';

-- Midjourney payloads the wire decoder rejected (they have no row in `messages`): one row per
-- distinct payload (its digest), counted by the day of the message.
CREATE TABLE undecodable (
    digest     INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    day        INTEGER NOT NULL
);
CREATE INDEX undecodable_by_day ON undecodable(day);

-- Up to `drift.keep_samples` of both, to become fixtures (`mjlink messages --kind unknown
-- --raw`): `raw` is a gateway dispatch line that `mjlink replay` reads, the payload as received
-- (undecodable) or the message as mjlink merged it (unknown). One sample per unknown message
-- (`digest` 0, its newest state) and per distinct undecodable payload.
CREATE TABLE drift_samples (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    digest     INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    raw        TEXT NOT NULL,
    UNIQUE (message_id, reason, digest)
);

-- What an archived file is, by its signature (mjlink_core::layout::MediaKind): png, webp,
-- webp_animated, jpeg, gif, mp4. Written by the archiver with the rest of the archive columns.
ALTER TABLE attachments ADD COLUMN media TEXT;
