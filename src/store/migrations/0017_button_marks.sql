-- Where each used-button mark of a grid was first seen (mjlink_core::marks::MarkLog as text:
-- `upsample::2@<message id> upsample::4@0`, 0 = at an unknown time), for the grids with a
-- mark. The marks of the grids stored from now on are followed from their first snapshot on
-- (no row: none yet); those of the grids already stored (an id up to `since`) are not known.
CREATE TABLE IF NOT EXISTS button_marks (
    message_id INTEGER PRIMARY KEY,
    log TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks_followed (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    since INTEGER NOT NULL
);
INSERT OR IGNORE INTO marks_followed (one, since) SELECT 1, coalesce(max(id), 0) FROM messages;
-- What a channel's exact links showed about its marks (mjlink_core::marks::Trust): how many
-- upscales came after their grid's U mark was seen, and how many did not.
CREATE TABLE IF NOT EXISTS mark_trust (
    channel_id INTEGER PRIMARY KEY,
    before INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0
);
-- Starts that kept another start's single final found by prompt from being certain (a rival
-- without a job UUID): when one names its job, the starts around it are settled again.
CREATE TABLE IF NOT EXISTS rival_starts (
    start_id INTEGER PRIMARY KEY
);
