-- The partial index of the prompts waiting for the full-text index (migrations 0005, 0006)
-- named its kinds with `kind IN (...)`. SQLite evaluates a constant list of more than two
-- values by building a temporary table, and a partial index's condition is evaluated at every
-- insert and update of a message: that was a temporary table per message written. The same
-- index, holding the same rows (the seven kinds of 0006), with a condition SQLite evaluates
-- as comparisons. (`search.rs` asks with the same text, or SQLite would not use the index.)
DROP INDEX messages_fts_pending;
CREATE INDEX messages_fts_pending ON messages(id)
    WHERE fts_state = 0 AND prompt IS NOT NULL
        AND (kind = 'imagine' OR kind = 'blend' OR kind = 'video' OR kind = 'remix' OR kind = 'remix_strong' OR kind = 'remix_subtle' OR kind = 'remix_region');
