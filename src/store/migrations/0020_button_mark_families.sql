-- What a channel's exact links showed about the marks of each family of buttons
-- (mjlink_core::marks::Family: `upscale`, `variation`, `video_cell`, `solo`), in one table; the
-- two tables of the U and V marks (0017, 0018) are moved into it (made first if absent, so the
-- migration can run again).
CREATE TABLE IF NOT EXISTS button_mark_trust (
    channel_id INTEGER NOT NULL,
    family TEXT NOT NULL,
    before INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, family)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mark_trust (channel_id INTEGER PRIMARY KEY, before INTEGER, not_before INTEGER);
CREATE TABLE IF NOT EXISTS variation_mark_trust (channel_id INTEGER PRIMARY KEY, before INTEGER, not_before INTEGER);
INSERT OR IGNORE INTO button_mark_trust (channel_id, family, before, not_before)
    SELECT channel_id, 'upscale', before, not_before FROM mark_trust;
INSERT OR IGNORE INTO button_mark_trust (channel_id, family, before, not_before)
    SELECT channel_id, 'variation', before, not_before FROM variation_mark_trust;
DROP TABLE IF EXISTS mark_trust;
DROP TABLE IF EXISTS variation_mark_trust;
-- The marks of video grids, images and clips are followed from now on (those of grids since
-- `marks_followed.since`); those of the ones already stored (an id up to `since`) are not known.
CREATE TABLE IF NOT EXISTS solo_marks_followed (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    since INTEGER NOT NULL
);
INSERT OR IGNORE INTO solo_marks_followed (one, since) SELECT 1, coalesce(max(id), 0) FROM messages;
