-- The notifications' durable outbox (see src/notify). One row per event and target, written
-- in the same transaction as the change it tells of; `key` is the idempotency key, the same
-- for every attempt, so an event enqueued twice for a target is stored once. No address and
-- no secret is stored: `target` is the name of a `[[notify]]` target.
CREATE TABLE notify_outbox (
    id           INTEGER PRIMARY KEY,
    key          TEXT NOT NULL UNIQUE,
    target       TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    summary      TEXT NOT NULL,
    file         TEXT,
    jump_url     TEXT,
    created_at   INTEGER NOT NULL,
    -- 'pending', 'delivered' or 'dead' (given up: the dead-letter list).
    state        TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    first_try_at INTEGER,
    next_try_at  INTEGER,
    last_error   TEXT,
    done_at      INTEGER
);
CREATE INDEX notify_outbox_due ON notify_outbox(next_try_at) WHERE state = 'pending';
CREATE INDEX notify_outbox_dead ON notify_outbox(done_at) WHERE state = 'dead';
