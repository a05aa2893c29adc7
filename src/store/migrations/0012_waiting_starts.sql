-- Every new grid or result asks which start/progress messages without a job UUID, in its
-- scope (channel, user, prompt) and time window, wait for a final; every new start asks the
-- same of its rivals (store/lineage.rs `progress_waiting_for`). Through `messages_by_prompt`
-- SQLite visited every message of the prompt in the window (grids, results, their repeats in
-- an identical-prompt burst) and read each row to keep only the starts. This index holds the
-- starts alone, so the lookup reads only what it returns. The query states the same
-- condition (`kind = 'progress' AND job_key IS NULL`), or SQLite would not use the index.
CREATE INDEX messages_waiting_by_scope ON messages(day, channel_id, user_id, prompt_key, posted_at)
    WHERE kind = 'progress' AND job_key IS NULL AND prompt_key IS NOT NULL;
