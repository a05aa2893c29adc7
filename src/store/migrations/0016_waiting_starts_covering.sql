-- The starts waiting for a final, by scope (0012), with the columns of the index's condition
-- in the index itself. SQLite reads a table row for every column a query names that the
-- index does not hold, those of its condition included: with `kind` and `job_key` in it, the
-- lookup every new grid and every settled start makes reads the index alone, and the store
-- checks each start's facts in the writer's cache (store/lineage.rs `progress_waiting_for`).
DROP INDEX messages_waiting_by_scope;
CREATE INDEX messages_waiting_by_scope ON messages(day, channel_id, user_id, prompt_key, posted_at, kind, job_key)
    WHERE kind = 'progress' AND job_key IS NULL AND prompt_key IS NOT NULL;
