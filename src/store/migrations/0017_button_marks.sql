-- Where each used-button mark of a grid was first seen (mjlink_core::marks::MarkLog as text:
-- `upsample::2@<message id> upsample::4@0`, 0 = at an unknown time). A row exists for every
-- grid whose marks mjlink followed from its first snapshot on.
CREATE TABLE IF NOT EXISTS button_marks (
    message_id INTEGER PRIMARY KEY,
    log TEXT NOT NULL
);
-- What a channel's exact links showed about its marks (mjlink_core::marks::Trust): how many
-- upscales came after their grid's U mark was seen, and how many did not.
CREATE TABLE IF NOT EXISTS mark_trust (
    channel_id INTEGER PRIMARY KEY,
    before INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0
);
