-- The 2026 message formats (issue 11).
-- reply_to: the message this one replies to (message_reference, never a forward); for a
--   rating, the job it rates. A start without a marker that replies to a result is the
--   start of that result's child (section 9: Zoom and Pan starts).
-- used_buttons: the buttons Midjourney marked used (`style: 1`), as short keys without the
--   job UUID (`upsample::2 variation::1`); NULL when the message's buttons are unknown. The
--   fallback keeps only candidates whose button could have made the result.
-- rated_by: the favourite confirmation that rated this message.
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN used_buttons TEXT;
ALTER TABLE messages ADD COLUMN rated_by INTEGER;
-- The kinds with a prompt of their own gained `video` and `remix_region`: the partial index
-- of prompts waiting for the full-text index follows the list (`kinds::has_own_prompt_name`).
DROP INDEX messages_fts_pending;
CREATE INDEX messages_fts_pending ON messages(id)
    WHERE fts_state = 0 AND prompt IS NOT NULL AND kind IN ('imagine', 'blend', 'video', 'remix', 'remix_strong', 'remix_subtle', 'remix_region');
