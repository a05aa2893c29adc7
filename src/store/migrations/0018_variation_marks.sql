-- What a channel's exact variations on grids showed about their V marks (issue 11 reports a
-- pressed V turning `style: 1` too): trusted apart from the U marks (`mark_trust`), on their
-- own evidence (mjlink_core::marks::Family).
CREATE TABLE IF NOT EXISTS variation_mark_trust (
    channel_id INTEGER PRIMARY KEY,
    before INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0
);
