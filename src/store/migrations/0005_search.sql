
-- Full-text search over prompts (/search): the prompts of grids, and of remixes (whose
-- prompt was edited); other results echo their parent's prompt. External content: the text
-- stays in `messages`. Indexing is off the hot path: a new row is born with
-- `fts_state = 0`, and a search first indexes whatever is pending (`Store::index_prompts`).
-- A prompt that changes after it was indexed is taken out and marked pending again.
-- `detail = none`: every query term is one token (see `fts_query`), so positions are not
-- needed.
CREATE VIRTUAL TABLE prompts_fts USING fts5(
    prompt, content = 'messages', content_rowid = 'id', detail = none,
    tokenize = 'unicode61 remove_diacritics 2'
);
ALTER TABLE messages ADD COLUMN fts_state INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_fts_pending ON messages(id)
    WHERE fts_state = 0 AND prompt IS NOT NULL AND kind IN ('imagine', 'blend', 'remix', 'remix_strong', 'remix_subtle');
CREATE TRIGGER prompts_fts_changed AFTER UPDATE OF prompt, kind ON messages
    WHEN OLD.fts_state = 1 AND (OLD.prompt IS NOT NEW.prompt OR OLD.kind IS NOT NEW.kind)
BEGIN
    INSERT INTO prompts_fts(prompts_fts, rowid, prompt) VALUES ('delete', OLD.id, OLD.prompt);
    UPDATE messages SET fts_state = 0 WHERE id = OLD.id;
END;

-- Settings of the queue that commands change (`paused`).
CREATE TABLE queue_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
