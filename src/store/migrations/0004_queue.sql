
-- The nonce of an interaction response (Midjourney's start message, its error embeds): ties
-- a prompt-queue submission to what Midjourney answered.
ALTER TABLE messages ADD COLUMN nonce TEXT;
CREATE INDEX messages_by_nonce ON messages(nonce) WHERE nonce IS NOT NULL;

-- The prompt queue (see src/queue). `results` and `pressed` are JSON objects keyed by tile.
CREATE TABLE queue_items (
    id               TEXT PRIMARY KEY,
    prompt           TEXT NOT NULL,
    upscales         TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    nonce            TEXT,
    job_uuid         TEXT,
    start_message_id INTEGER,
    grid_message_id  INTEGER,
    results          TEXT NOT NULL DEFAULT '{}',
    pressed          TEXT NOT NULL DEFAULT '{}',
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    submitted_at     INTEGER,
    progress_at      INTEGER,
    not_before       INTEGER,
    waiting          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX queue_items_active ON queue_items(status)
    WHERE status NOT IN ('done', 'partial', 'failed', 'cancelled');
CREATE INDEX queue_items_by_grid ON queue_items(grid_message_id) WHERE grid_message_id IS NOT NULL;

-- Every change of status, with its time and why.
CREATE TABLE queue_transitions (
    item_id TEXT NOT NULL REFERENCES queue_items(id),
    at      INTEGER NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note    TEXT NOT NULL
);
CREATE INDEX queue_transitions_by_item ON queue_transitions(item_id, at);
CREATE INDEX queue_transitions_by_time ON queue_transitions(to_status, at);
