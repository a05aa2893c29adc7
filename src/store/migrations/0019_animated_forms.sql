-- Where an animation's fallback finds the image it animates (issue 11): the video grid echoes
-- that image's prompt rewritten (wire notes section 9: `--ar`, `--no` dropped; `--raw`,
-- `--motion`, `--video 1`, `--aspect` added), so single images and animations are also kept
-- under the key of their animated form (mjlink_core::prompt::Prompt::animated_form). The rows
-- of the messages stored before are made by the store when it runs this migration.
CREATE TABLE IF NOT EXISTS animated_forms (
    channel_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    form_key INTEGER NOT NULL,
    posted_at INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id, form_key, posted_at, message_id)
) WITHOUT ROWID;
