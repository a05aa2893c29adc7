
-- Each channel's newest message id seen: where catching up after a disconnection starts.
CREATE TABLE channels (
    id              INTEGER PRIMARY KEY,
    last_message_id INTEGER NOT NULL
);
