
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    channel_id  INTEGER,
    guild_id    INTEGER,
    author_id   INTEGER,
    -- 1 once the message itself was seen (create, history, or a reply's referenced copy);
    -- 0 while only its updates or its deletion are known.
    seen        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    prompt      TEXT,
    prompt_norm TEXT,
    -- 64-bit digests of prompt_norm and job_uuid: small keys for the indexes every event
    -- probes (the text columns are still compared, so a digest collision costs nothing).
    prompt_key  INTEGER,
    job_key     INTEGER,
    -- posted_at / 86400000: the leading key of the lookup indexes
    day         INTEGER,
    params      TEXT,
    user_id     INTEGER,
    mode        TEXT,
    stealth     INTEGER NOT NULL DEFAULT 0,
    tile        INTEGER,
    -- results: the action; progress: the action under way (NULL for /imagine)
    action      TEXT,
    job_uuid    TEXT,
    detail      TEXT,
    stage       TEXT,
    error_title TEXT,
    posted_at   INTEGER,
    edited_at   INTEGER,
    deleted_at  INTEGER,
    -- start/progress messages: running | completed | failed | unknown
    outcome     TEXT,
    final_id    INTEGER
);

-- The merged state of each message (see merge.rs), apart from the row above so that the
-- tables every event queries stay small.
CREATE TABLE docs (
    id  INTEGER PRIMARY KEY REFERENCES messages(id),
    doc TEXT NOT NULL
);
-- Both lookup indexes lead with the day a message was posted, so that new entries land in
-- a small, recent part of each index instead of anywhere in it: lookups are always bounded
-- by a time window, and the cost of an event does not grow with the history kept.
CREATE INDEX messages_by_prompt ON messages(day, channel_id, user_id, prompt_key, posted_at)
    WHERE prompt_key IS NOT NULL;
CREATE INDEX messages_by_job ON messages(day, job_key) WHERE job_key IS NOT NULL;

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_id   INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    url          TEXT NOT NULL,
    size         INTEGER,
    width        INTEGER,
    height       INTEGER,
    content_type TEXT
);
CREATE INDEX attachments_by_message ON attachments(message_id);

-- Exactly one row per result message. parent_id is not a foreign key on purpose: a parent
-- known only through a reply's reference (never seen, or deleted) is still the parent.
CREATE TABLE links (
    child_id   INTEGER PRIMARY KEY REFERENCES messages(id),
    parent_id  INTEGER,
    action     TEXT NOT NULL,
    tile       INTEGER,
    signal     TEXT,
    status     TEXT NOT NULL,
    candidates TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX links_by_parent ON links(parent_id, tile);

-- The processed-event set: (message id, event kind, digest of the payload).
CREATE TABLE processed (
    message_id INTEGER NOT NULL,
    event      INTEGER NOT NULL,
    digest     INTEGER NOT NULL,
    PRIMARY KEY (message_id, event, digest)
) WITHOUT ROWID;
