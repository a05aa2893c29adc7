-- 0011: who settled a result's parent by hand (`mjlink link set`) and when. The link itself
-- is the result's row in `links`, with signal 'manual'; this row says who set it.
CREATE TABLE manual_links (
    child_id  INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL,
    set_by    TEXT NOT NULL,
    set_at_ms INTEGER NOT NULL
);
